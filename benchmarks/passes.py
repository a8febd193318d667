"""Passes: how much code each adds or removes, and what it costs at run time in the kernel.

    .venv/bin/python benchmarks/passes.py [--out benchmarks/results/passes.md]
                                          [--repeat N] [--rounds R]

Builds every tests/progs/*.bpf.c the kernel accepts, for each -mcpu it builds
for (v2, v3, v4), and runs each pass configuration of CONFIGS (every registered
pass on its own, and the chains users are meant to run) on each program:

1. size: instruction slots (lddw counts 2) before and after, for every build.
   For the optimization passes this gives the share of clang -O2 programs that
   shrink and by how much.
2. run time (v3 builds of the programs BPF_PROG_TEST_RUN can run): the
   original and the transformed program are loaded side by side and run on
   the sample packet (tests/progs.py: 74-byte UDP frame) with `repeat` runs
   per BPF_PROG_TEST_RUN call, alternating original and transformed for
   `rounds` rounds, pinned to one CPU. The time per run is the kernel's own
   measure (BPF_PROG_TEST_RUN's `duration`: the mean over `repeat` runs, in
   whole nanoseconds, rounded down; half a nanosecond is added back, and the
   rounds' noise dithers the rest). Wall-clock time around the call is no
   use here: an XDP test run has a fixed cost of about 16 ms per call. The
   overhead of a pass on a program is median(transformed) /
   median(original). Part of each run is BPF_PROG_TEST_RUN's own loop,
   measured per program type on a two-instruction program (`empty`): the
   report gives the raw ratio and the ratio with that cost taken off both
   sides ("net"), which is what the program itself costs.

A program whose result differs after the pass (a check fired on the sample
packet) is measured all the same and marked. The run takes a few minutes.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from report import command_line, load_average, machine, now, source_state, tool_version  # noqa: E402,I001

from epass.commands.compile import compile_program, slots  # noqa: E402
from epass.errors import EpassError  # noqa: E402
from epass.isa import encode  # noqa: E402
from epass.isa.insn import Alu, Exit  # noqa: E402
from epass.isa.opcodes import AluOp  # noqa: E402
from epass.kernel import syscall  # noqa: E402
from epass.kernel.loader import open_object  # noqa: E402
from epass.obj.model import BpfObject, Program  # noqa: E402
from epass.obj.reader import read_object  # noqa: E402
from epass.obj.writer import write_object  # noqa: E402
from epass.passes import REGISTRY, load_all, parse_passes  # noqa: E402
from epass.uapi import ProgType  # noqa: E402

import progs  # noqa: E402

RUN_CPU = "v3"
# chains: a safety pass followed by redundant-check elimination and dead-code
# elimination (what removes the bookkeeping of the checks rce removed), and the
# optimizations together
CHAINS = ("div_by_zero,rce,dce", "msan,rce,dce", "insn_counter,rce,dce", "asan,rce,dce",
          "const_fold,zext,dce")
TARGETS = {"insn_counter": 1.30, "msan": 1.30, "insn_counter,rce,dce": 1.05,
           "msan,rce,dce": 1.05}
SHRINK_CLAIMS = "ePass reports 32% of programs shrink, by 7% on average; K2 reports 6-26%"


@dataclass
class Row:
    build: str  # "atomics.v3"
    program: str
    config: str
    before: int
    after: int | None = None
    error: str | None = None
    empty_ns: float = 0.0  # the test run's own cost for this program type
    original_ns: list[float] = field(default_factory=list)
    transformed_ns: list[float] = field(default_factory=list)
    changed_result: bool = False

    @property
    def ratio(self) -> float | None:
        if not self.original_ns or not self.transformed_ns:
            return None
        return statistics.median(self.transformed_ns) / statistics.median(self.original_ns)

    @property
    def net_ratio(self) -> float | None:
        if not self.original_ns or not self.transformed_ns:
            return None
        a = statistics.median(self.original_ns) - self.empty_ns
        b = statistics.median(self.transformed_ns) - self.empty_ns
        return b / a if a > 0 and b > 0 else None


def configs() -> list[str]:
    load_all()
    return sorted(REGISTRY) + [c for c in CHAINS if all(n in REGISTRY for n in c.split(","))]


def build_all(work: Path, notes: list[str]) -> list[tuple[str, str, Path]]:
    built = []
    for entry in progs.PROGS:
        if entry.verdict != "accept":
            continue
        for cpu in entry.cpus:
            try:
                built.append((entry.name, cpu, progs.build(entry.name, cpu, work)))
            except progs.BuildError as e:
                notes.append(f"{entry.name} skipped for -mcpu={cpu}: "
                             f"{e.stderr.strip().splitlines()[0]}")
    return built


def timed_run(fd: int, packet: bytes, repeat: int) -> tuple[float, int]:
    result = syscall.prog_test_run(fd, data_in=packet, data_size_out=len(packet) + 4096,
                                   repeat=repeat)
    return result.duration_ns + 0.5, result.retval  # the kernel rounds the mean down


def measure_empty(prog_type: ProgType, packet: bytes, repeat: int, rounds: int) -> float:
    """BPF_PROG_TEST_RUN's own cost per run: a program of this type that only returns."""
    code = encode([Alu(op=AluOp.MOV, dst=0, imm=0), Exit()])
    loaded = syscall.prog_load(prog_type, code, license="GPL")
    assert loaded.fd is not None, loaded.log
    try:
        return statistics.median(timed_run(loaded.fd, packet, repeat)[0] for _ in range(rounds))
    finally:
        syscall.close(loaded.fd)


def measure(row: Row, obj: BpfObject, program: Program, new: Program, work: Path,
            repeat: int, rounds: int) -> None:
    path = work / f"{row.build}.{row.program}.{row.config.replace(',', '+')}.o"
    path.write_bytes(write_object(obj, {program.name: new}))
    transformed = read_object(str(path))
    packet = progs.sample_packet()
    with open_object(obj) as a, open_object(transformed) as b:
        la, lb = a.load_program(program), b.load_program(transformed.program(program.name))
        if not la.accepted or not lb.accepted:
            row.error = "the kernel rejects the " + ("original" if not la.accepted
                                                     else "transformed program")
            return
        for _ in range(rounds):  # alternate, so drift hits both alike
            t, ra = timed_run(la.fd, packet, repeat)
            row.original_ns.append(t)
            t, rb = timed_run(lb.fd, packet, repeat)
            row.transformed_ns.append(t)
            row.changed_result |= ra != rb


def geomean(xs: list[float]) -> float | None:
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def pct(r: float | None) -> str:
    return "-" if r is None else f"{(r - 1) * 100:+.1f}%"


def size_table(rows: list[Row], names: list[str]) -> list[str]:
    out = ["## Code size (every build of every accepted test program)", "",
           "| configuration | programs | grow | same | shrink | mean change | largest growth "
           "| errors |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in names:
        rs = [r for r in rows if r.config == c and r.after is not None]
        errors = sum(1 for r in rows if r.config == c and r.after is None)
        changes = [(r.after - r.before) / r.before for r in rs]
        worst = max(rs, key=lambda r: (r.after - r.before) / r.before, default=None)
        out.append(
            f"| `{c}` | {len(rs)} | {sum(x > 0 for x in changes)} | "
            f"{sum(x == 0 for x in changes)} | {sum(x < 0 for x in changes)} | "
            f"{statistics.mean(changes) * 100:+.1f}% | "
            + (f"{(worst.after - worst.before) / worst.before * 100:+.1f}% ({worst.build}) "
               if worst and changes else "- ")
            + f"| {errors} |")
    return out


def shrink_lines(rows: list[Row]) -> list[str]:
    out = ["## Optimizations: how many clang -O2 programs shrink", ""]
    for c in [n for n in configs() if n in ("const_fold", "dce", "zext", "const_fold,zext,dce")]:
        rs = [r for r in rows if r.config == c and r.after is not None]
        if not rs:
            continue
        shrunk = [(r.before - r.after) / r.before for r in rs if r.after < r.before]
        avg = statistics.mean(shrunk) * 100 if shrunk else 0.0
        out.append(f"- `{c}`: {len(shrunk)} of {len(rs)} programs shrink "
                   f"({len(shrunk) / len(rs) * 100:.0f}%), by {avg:.1f}% on average where they "
                   f"do; {sum(r.before - r.after for r in rs)} slots saved in all.")
    out += ["", f"For comparison: {SHRINK_CLAIMS}.", ""]
    return out


def runtime_tables(rows: list[Row], names: list[str], empty: dict[ProgType, float]) -> list[str]:
    costs = ", ".join(f"{t.name} {ns:.1f} ns" for t, ns in empty.items())
    out = ["## Run time in the kernel (v3 builds, BPF_PROG_TEST_RUN on the sample packet)", "",
           f"BPF_PROG_TEST_RUN's own cost per run (`empty`): {costs}.", "",
           "Geometric means over every program run (most passes leave most programs "
           "unchanged), and over the programs whose code the configuration changed.", "",
           "| configuration | programs | geomean overhead | net of test-run cost | changed "
           "| geomean of changed | max | target | met |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in names:
        rs = [r for r in rows if r.config == c and r.ratio is not None]
        if not rs:
            continue
        raw = geomean([r.ratio for r in rs if r.ratio])
        nets = [x for x in (r.net_ratio for r in rs) if x is not None]
        net = geomean(nets)
        target = TARGETS.get(c)
        met = "-" if target is None or net is None else ("yes" if net <= target else "no")
        changed = [r.ratio for r in rs if r.ratio and r.after != r.before]
        out.append(f"| `{c}` | {len(rs)} | {pct(raw)} | {pct(net)} | {len(changed)} | "
                   f"{pct(geomean(changed))} | {pct(max(r.ratio for r in rs if r.ratio))} | "
                   f"{pct(target) if target else '-'} | {met} |")
    out += ["", "Per program (ns per run, medians; * = the result on the sample packet "
            "differs: a check fired):", "",
            "| program | configuration | slots | original | transformed | overhead | net |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for r in sorted((r for r in rows if r.ratio is not None),
                    key=lambda r: (r.build, r.program, r.config)):
        out.append(f"| {r.build}/{r.program}{' *' if r.changed_result else ''} | `{r.config}` "
                   f"| {r.before} → {r.after} | {statistics.median(r.original_ns):.1f} | "
                   f"{statistics.median(r.transformed_ns):.1f} | {pct(r.ratio)} | "
                   f"{pct(r.net_ratio)} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "passes.md"))
    ap.add_argument("--repeat", type=int, default=200000, help="runs per BPF_PROG_TEST_RUN call")
    ap.add_argument("--rounds", type=int, default=9, help="alternating calls per program")
    args = ap.parse_args()

    started = time.perf_counter()
    load_before = load_average()
    source = source_state()
    os.sched_setaffinity(0, {0})  # one CPU: per-CPU maps, and no migration mid-run
    work = Path(tempfile.mkdtemp(prefix="epass-bench-"))
    notes: list[str] = []
    builds = build_all(work, notes)
    names = configs()
    rows: list[Row] = []
    empty: dict[ProgType, float] = {}
    for name, cpu, path in builds:
        obj = read_object(str(path))
        runnable = progs.get(name).test_run and cpu == RUN_CPU
        for program in obj.programs:
            for c in names:
                row = Row(f"{name}.{cpu}", program.name, c, slots(program))
                if runnable:
                    t = program.kind.prog_type
                    if t not in empty:
                        empty[t] = measure_empty(t, progs.sample_packet(), args.repeat,
                                                 args.rounds)
                    row.empty_ns = empty[t]
                rows.append(row)
                try:
                    new = compile_program(obj, program, parse_passes(c), check=False)
                except EpassError as e:
                    row.error = str(e)
                    continue
                row.after = slots(new)
                if runnable:
                    measure(row, obj, program, new, work, args.repeat, args.rounds)
                print(f"{row.build:28} {row.program:20} {c:24} {row.before:4} -> "
                      f"{row.after:4} {pct(row.ratio):>8}", file=sys.stderr, flush=True)

    lines = ["# Pass benchmarks: code size and kernel run time", "",
             f"- command: `{command_line()}`", f"- date: {now()}",
             f"- machine: {machine()}; load average {load_before} before the run, "
             f"{load_average()} after; {tool_version([progs.CLANG, '--version'])}; kernel "
             f"{os.uname().release}",
             f"- epass source: {source}",
             f"- {len(builds)} builds of {len({b[0] for b in builds})} accepted test programs; "
             f"run time: repeat={args.repeat}, {args.rounds} alternating rounds, CPU 0.", ""]
    lines += [f"- note: {n}" for n in notes] + [""]
    lines += runtime_tables(rows, names, empty) + [""]
    lines += size_table(rows, names) + [""]
    lines += shrink_lines(rows)
    errors = [r for r in rows if r.error]
    lines += ["## Errors", ""]
    lines += [f"- {r.build}/{r.program} `{r.config}`: {r.error}" for r in errors] or [
        "None: every configuration compiled every program, and the kernel accepted every "
        "program that was run."]
    lines += ["", f"Run took {time.perf_counter() - started:.0f} s. Reproduce: "
              "`.venv/bin/python benchmarks/passes.py`.", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
