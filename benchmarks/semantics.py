"""Speed of the semantics: interpreter throughput, bpf_conformance on both engines,
and the Z3 encoding of the XDP test programs.

    .venv/bin/python benchmarks/semantics.py [--out benchmarks/results/semantics.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from epass.commands.run import interpreter_inputs  # noqa: E402
from epass.obj.reader import read_object  # noqa: E402
from epass.semantics.conformance import run_directory  # noqa: E402
from epass.semantics.interp import Environment, run  # noqa: E402
from epass.semantics.packets import sample_packet  # noqa: E402
from epass.semantics.symbolic import SymbolicEnv, run_symbolic  # noqa: E402
from epass.uapi import ProgType  # noqa: E402

import progs  # noqa: E402

SUITE = ROOT / "tests" / "data" / "bpf_conformance" / "tests"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "semantics.md"))
    args = ap.parse_args()
    lines = ["# Semantics benchmarks", "", "Wall-clock time on this machine.", "",
             "| what | figure |", "|---|---|"]

    for symbolic in (False, True):
        start = time.perf_counter()
        results = run_directory(SUITE, symbolic=symbolic)
        elapsed = time.perf_counter() - start
        passed = sum(r.status == "passed" for r in results)
        engine = "Z3 encoding (solve r0, check unique)" if symbolic else "interpreter"
        lines.append(f"| bpf_conformance, {engine} | {passed}/{len(results)} passed in "
                     f"{elapsed:.2f} s ({elapsed / len(results) * 1000:.1f} ms a case) |")

    work = Path(tempfile.mkdtemp(prefix="epass-bench-"))
    xdp = [p for p in progs.PROGS if p.verdict == "accept" and len(p.programs) == 1
           and p.programs[0][1] == "xdp"]
    rates, encodings = [], []
    for entry in xdp:
        cpu = "v4" if entry.min_cpu == "v4" else "v3"
        obj = read_object(str(progs.build(entry.name, cpu, work)))
        insns, maps = interpreter_inputs(obj, obj.programs[0])
        env = Environment(prog_type=ProgType.XDP, packet=sample_packet(), maps=maps)
        runs, executed = 0, 0
        start = time.perf_counter()
        while time.perf_counter() - start < 0.5:
            executed += run(insns, env).executed
            runs += 1
        rates.append(executed / (time.perf_counter() - start))
        start = time.perf_counter()
        try:
            result = run_symbolic(insns, SymbolicEnv(prog_type=ProgType.XDP, maps=maps,
                                                     max_total_steps=20_000))
            status = f"{result.paths} paths" + ("" if result.complete else ", incomplete")
        except Exception as e:  # a helper without a symbolic model
            status = f"not encoded: {e}"
        encodings.append((entry.name, len(insns), time.perf_counter() - start, status))
    lines.append(f"| interpreter, XDP test programs | median {statistics.median(rates):,.0f} "
                 "instructions a second |")
    lines += ["", "Z3 encoding of each XDP test program (symbolic packet length):", "",
              "| program | instructions | time | result |", "|---|---|---|---|"]
    for name, n, t, status in encodings:
        lines.append(f"| {name} | {n} | {t * 1000:.0f} ms | {status} |")
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/semantics.py`.", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
