"""Speed of the foundation: object reading, instruction codec and text, vmlinux BTF,
and loading into the kernel compared with bpftool.

    .venv/bin/python benchmarks/foundation.py [--out benchmarks/results/foundation.md]

Builds the test programs (tests/progs, -mcpu=v3), measures each step several
times and writes a Markdown table of medians and 95th percentiles.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from epass.isa import decode, encode, format_insn, parse_insn  # noqa: E402
from epass.kernel import syscall  # noqa: E402
from epass.kernel.loader import open_object  # noqa: E402
from epass.obj.btf import Btf  # noqa: E402
from epass.obj.reader import read_object  # noqa: E402

import progs  # noqa: E402


def timings(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def row(what: str, xs: list[float], unit: str = "ms", scale: float = 1e3) -> str:
    return f"| {what} | {statistics.median(xs) * scale:.2f} {unit} | {p95(xs) * scale:.2f} {unit} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "foundation.md"))
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="epass-bench-"))
    names = [p.name for p in progs.PROGS if "v3" in p.cpus]
    objs = {n: progs.build(n, "v3", work) for n in names}
    lines = ["# Foundation benchmarks", "",
             f"{len(objs)} test programs built with -mcpu=v3; {args.repeat} runs each; "
             "wall-clock time on this machine.", "",
             "| step | median | p95 |", "|---|---|---|"]

    per_object = [t for o in objs.values()
                  for t in timings(lambda o=o: read_object(str(o)), args.repeat)]
    lines.append(row("read_object, per object file", per_object))

    code = b"".join(encode(p.insns) for o in objs.values()
                    for p in read_object(str(o)).programs)
    n = len(decode(code))
    dec = timings(lambda: decode(code), args.repeat)
    insns = decode(code)
    enc = timings(lambda: encode(insns), args.repeat)
    fmt = timings(lambda: [format_insn(i) for i in insns], args.repeat)
    texts = [format_insn(i) for i in insns]
    par = timings(lambda: [parse_insn(t) for t in texts], args.repeat)
    for what, xs in (("decode", dec), ("encode", enc), ("format (pseudo-C)", fmt),
                     ("parse (pseudo-C)", par)):
        lines.append(row(f"{what}, per 1,000 instructions ({n} in the set)",
                         [x / n * 1000 for x in xs]))

    vmlinux = Path("/sys/kernel/btf/vmlinux").read_bytes()
    lines.append(row("parse /sys/kernel/btf/vmlinux "
                     f"({len(vmlinux) / 1e6:.1f} MB)", timings(lambda: Btf.parse(vmlinux), 5)))

    if syscall.bpf_permitted() is None:
        ours, theirs = [], []
        pin_root = Path("/sys/fs/bpf")
        for name, path in objs.items():
            entry = progs.get(name)
            if entry.verdict != "accept" or entry.bpftool != "load" or entry.requires:
                continue
            obj = read_object(str(path))

            def load(obj=obj) -> None:
                with open_object(obj) as lo:
                    for p in obj.programs:
                        lo.load_program(p)

            ours += timings(load, 5)
            pin = pin_root / f"epass-bench-{name}"
            for _ in range(5):
                start = time.perf_counter()
                subprocess.run(["bpftool", "prog", "loadall", str(path), str(pin)],
                               check=True, capture_output=True)
                theirs.append(time.perf_counter() - start)
                subprocess.run(["rm", "-rf", str(pin)], check=True)
        lines.append(row("load object into the kernel: epass (in process)", ours))
        lines.append(row("load object into the kernel: bpftool prog loadall "
                         "(whole process)", theirs))
    else:
        lines.append("| kernel loads | skipped: bpf() not permitted | |")

    lines += ["", "Reproduce: `.venv/bin/python benchmarks/foundation.py`.", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
