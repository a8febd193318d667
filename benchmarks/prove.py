"""Translation validation: how long `epass.smt.prove` takes per program pair.

    .venv/bin/python benchmarks/prove.py [--out benchmarks/results/prove.md] [--only PATTERN]

Builds every tests/progs/*.bpf.c for -mcpu=v3 (a file that needs a later cpu,
v4_insns, is built for that cpu instead) and proves, for each program of each
object, the original bytecode (map references as map indices, as the
interpreter takes them) against:

1. round trip: lift, forget the register hints, compile_module (the allocator
   on its own, as tests/test_prove.py checks);
2. div_by_zero: lift, the div_by_zero pass, compile_module; the abort exits the
   pass inserted are passed to prove() (REFINES is then a success);
3. mutation: tests/test_prove.py's `mutate` with each kind (branch, const,
   drop_store, width) that has a place in the program.

and, for each case of the repair corpus (corpus/false_rejections, corpus/true_bugs: the
pinned prog.o), its program against:

4. round trip, as in 1;
5. repair: for a false rejection that epass.repair.repair repairs (Options(): its default
   timeout and unroll bound, the kernel's verifier deciding), the repaired program, with
   its abort exits, proven as the engine proved it (its bounds: unroll 32, or the deeper
   unroll and step bounds it retried with).

and benchmarks/progs/fnv_unrolled.bpf.c (an unrolled hash written for its size), built
with 40 and 160 rounds (260 and 1,014 slots), against 1-3 as for a test program.

Every proof runs once (timeout 30 s for the whole proof, unroll 8 unless said), after
one warm-up proof. Identical programs are decided by a syntax check in ~0 ms,
so statistics are given over all timed pairs and over the non-trivial ones;
UNKNOWN verdicts for an unsupported feature or the unroll bound are not timed
with the rest. Where the time goes is measured inside the same prove() call by
wrapping its internals (run_symbolic, the solver checks, counterexample
extraction, abort sites): nothing is run twice. The whole run takes about
3.5 minutes on 2 CPUs, most of it in the large programs, Z3 timeouts and loops that
run past the unroll bound, plus about a minute of repairs (verifier loads and proofs of
candidates, not timed here). `--only PATTERN` keeps the pairs whose name
("atomics.v3/atomics", "corpus/false_rejections/backend_mod_select/...") contains
PATTERN (a quick run; the report then says so). The report's header names the commit of
the epass measured.
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import z3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from irutil import strip_hints  # noqa: E402
from report import command_line, load_average, machine, now, source_state, tool_version  # noqa: E402
from test_prove import mutate  # noqa: E402

from epass.codegen import compile_module  # noqa: E402
from epass.commands.run import interpreter_inputs  # noqa: E402
from epass.ir.lift import lift_program  # noqa: E402
from epass.isa import Insn, format_insn, slot_count  # noqa: E402
from epass.obj.model import BpfObject, Program  # noqa: E402
from epass.obj.reader import read_object  # noqa: E402
from epass.passes import parse_passes, run_passes  # noqa: E402
from epass.repair import Options, repair  # noqa: E402
from epass.repair.engine import DEEPER_STEPS  # noqa: E402
from epass.smt import ProofInputs, ProofResult, Verdict, prove  # noqa: E402

import progs  # noqa: E402

CPU = "v3"
TIMEOUT = 30.0  # seconds for the whole proof (prove's `timeout`)
UNROLL = 8
MUTATIONS = ("branch", "const", "drop_store", "width")
KINDS = ("round trip", "div_by_zero", "mutation", "repair")
CORPUS = ROOT / "corpus"
LARGE = ROOT / "benchmarks" / "progs"  # programs written for their size
LARGE_BUILDS = (("fnv_unrolled", 40), ("fnv_unrolled", 160))  # (source, -DROUNDS=)
CORPUS_SETS = ("false_rejections", "true_bugs")
REPAIR_UNROLL = Options().unroll  # repaired pairs are proven as the engine proves them
TARGET_MEDIAN_MS, TARGET_P95_MS, TARGET_SIZE = 100.0, 1000.0, 1000
PHASES = ("symbolic", "solver", "counterexample", "abort sites")
PROVE = importlib.import_module("epass.smt.prove")  # the module (the package exports the function)


@dataclass
class Pair:
    obj: str  # object file stem with its cpu, "atomics.v3"
    program: str
    slots: int  # of the original
    kind: str  # one of KINDS
    variant: str = ""  # the mutation kind
    result: ProofResult | None = None
    phases: dict[str, float] = field(default_factory=dict)  # ms inside prove(), by phase
    error: str | None = None
    original: list[Insn] = field(default_factory=list)
    transformed: list[Insn] = field(default_factory=list)
    unroll: int = UNROLL
    max_total_steps: int | None = None  # prove's default unless set (the repair engine's)

    @property
    def source(self) -> str:
        if self.obj.startswith("corpus/"):
            return "corpus"
        return "large programs" if self.obj.startswith("large/") else "test programs"

    @property
    def name(self) -> str:
        return f"{self.obj}/{self.program}"

    @property
    def label(self) -> str:
        if self.kind == "repair":
            return f"repair (unroll {self.unroll})"
        return f"{self.kind}: {self.variant}" if self.variant else self.kind

    @property
    def time_ms(self) -> float:
        return self.result.time_ms if self.result else 0.0

    @property
    def outcome(self) -> str:
        """The verdict and what decided it, as one column of the counts table."""
        r = self.result
        if r is None:
            return "error"
        if r.verdict == Verdict.EQUIVALENT:
            return "EQUIVALENT (syntax)" if r.property == "syntax" else "EQUIVALENT"
        if r.verdict != Verdict.UNKNOWN:
            return r.verdict.name
        if r.property in ("unsupported", "bound"):
            return f"UNKNOWN ({r.property})"
        if "gave up" in r.reason:
            return "UNKNOWN (Z3 timeout)"
        return "UNKNOWN (other)"

    @property
    def timed(self) -> bool:
        return self.result is not None and self.outcome not in ("UNKNOWN (unsupported)",
                                                                "UNKNOWN (bound)")

    @property
    def nontrivial(self) -> bool:
        return self.timed and self.outcome != "EQUIVALENT (syntax)"


OUTCOMES = ("EQUIVALENT (syntax)", "EQUIVALENT", "REFINES", "NOT_EQUIVALENT",
            "UNKNOWN (Z3 timeout)", "UNKNOWN (other)", "UNKNOWN (bound)",
            "UNKNOWN (unsupported)", "error")


class PhaseClock:
    """Time spent in prove()'s internals, by wrapping them (attributes that are missing,
    should the module change, are skipped and their time counts as "other")."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.wrapped: list[str] = []
        self._wrap(PROVE, "run_symbolic", "symbolic")
        checks = getattr(PROVE, "_Checks", None)
        if checks is not None:
            self._wrap(checks, "solve", "solver")
            self._wrap(checks, "counterexample", "counterexample")
            self._wrap(checks, "abort_sites", "abort sites")

    def _wrap(self, owner: Any, attr: str, phase: str) -> None:
        original: Callable[..., Any] | None = getattr(owner, attr, None)
        if original is None:
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                ms = (time.perf_counter() - start) * 1000
                self.spent[phase] = self.spent.get(phase, 0.0) + ms

        setattr(owner, attr, timed)
        self.wrapped.append(phase)

    def run(self, pair: Pair, a: list[Insn], b: list[Insn], inputs: ProofInputs,
            aborts: list[int] | None = None) -> None:
        pair.original, pair.transformed = a, b
        self.spent = {}
        bounds = {} if pair.max_total_steps is None else \
            {"max_total_steps": pair.max_total_steps}
        try:
            pair.result = prove(a, b, inputs, timeout=TIMEOUT, unroll=pair.unroll,
                                aborts=aborts or (), **bounds)
        except Exception as e:  # report every failure verbatim, keep going
            pair.error = f"prove: {type(e).__name__}: {e}"
        pair.phases = dict(self.spent)


def slots(insns: list[Insn]) -> int:
    return sum(slot_count(i) for i in insns)


def build_all(work: Path, notes: list[str]) -> list[tuple[str, Path]]:
    objects = []
    for src in sorted(progs.PROGS_DIR.glob("*.bpf.c")):
        name = src.name.removesuffix(".bpf.c")
        entry = progs.BY_NAME.get(name)
        cpu = CPU if entry is None or CPU in entry.cpus else entry.min_cpu
        if cpu != CPU:
            notes.append(f"{name}.bpf.c built with -mcpu={cpu} (it needs it)")
        try:
            objects.append((f"{name}.{cpu}", progs.build(name, cpu, work)))
        except progs.BuildError as e:
            notes.append(f"{name}.bpf.c skipped: does not build for -mcpu={cpu}: "
                         f"{e.stderr.strip().splitlines()[0]}")
    for name, rounds in LARGE_BUILDS:
        out = work / f"{name}{rounds}.{CPU}.o"
        cmd = [progs.CLANG, *progs.CFLAGS, f"-mcpu={CPU}", *progs.INCLUDES,
               f"-DROUNDS={rounds}", "-c", str(LARGE / f"{name}.bpf.c"), "-o", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            notes.append(f"{name}.bpf.c (ROUNDS={rounds}) does not build: "
                         f"{proc.stderr.strip().splitlines()[0]}")
            continue
        objects.append((f"large/{name}{rounds}.{CPU}", out))
    return objects


def prove_program(clock: PhaseClock, stem: str, obj: BpfObject, program: Program,
                  errors: list[str]) -> list[Pair]:
    a, maps = interpreter_inputs(obj, program)
    inputs = ProofInputs(program.kind.prog_type if program.kind else None, maps)
    pairs = []

    def pair(kind: str, variant: str = "") -> Pair:
        p = Pair(stem, program.name, slots(a), kind, variant)
        pairs.append(p)
        return p

    p = pair("round trip")
    try:
        new = compile_module(strip_hints(lift_program(program, obj.maps)))
        clock.run(p, a, interpreter_inputs(obj, new)[0], inputs)
    except Exception as e:
        p.error = f"lift/compile: {type(e).__name__}: {e}"

    p = pair("div_by_zero")
    try:
        module = lift_program(program, obj.maps)
        run_passes(module, parse_passes("div_by_zero"))
        new = compile_module(module)
        clock.run(p, a, interpreter_inputs(obj, new)[0], inputs, new.aborts)
    except Exception as e:
        p.error = f"lift/div_by_zero/compile: {type(e).__name__}: {e}"

    for kind in MUTATIONS:
        try:
            b = mutate(a, kind)
        except AssertionError:
            continue  # no place for this kind
        clock.run(pair("mutation", kind), a, b, inputs)
    for p in pairs:
        if p.error is not None:
            errors.append(f"{p.name} ({p.label}): {p.error}")
    return pairs


@dataclass
class CaseRepair:
    """What epass.repair made of one false rejection of the corpus."""

    name: str  # "corpus/false_rejections/<case>"
    status: str  # RepairResult.status, or "error"
    strategies: list[str]
    time_ms: float
    error: str = ""


def corpus_cases() -> list[Path]:
    return [p.parent for s in CORPUS_SETS for p in sorted((CORPUS / s).glob("*/case.toml"))]


def prove_corpus_case(clock: PhaseClock, case: Path, errors: list[str],
                      repairs: list[CaseRepair], only: str = "") -> list[Pair]:
    """The round trip of the case's program and, for a false rejection the engine repairs,
    the original against the repaired program."""
    stem = f"corpus/{case.parent.name}/{case.name}"
    obj = read_object(str(case / "prog.o"))
    pairs = []
    for program in obj.programs:
        if only not in f"{stem}/{program.name}":
            continue
        a, maps = interpreter_inputs(obj, program)
        inputs = ProofInputs(program.kind.prog_type if program.kind else None, maps)
        p = Pair(stem, program.name, slots(a), "round trip")
        pairs.append(p)
        try:
            new = compile_module(strip_hints(lift_program(program, obj.maps)))
            clock.run(p, a, interpreter_inputs(obj, new)[0], inputs)
        except Exception as e:
            p.error = f"lift/compile: {type(e).__name__}: {e}"
        if case.parent.name != "false_rejections":
            continue
        start = time.perf_counter()
        try:
            fixed = repair(obj, program, Options())
        except Exception as e:  # no bpf() permission, a bug: reported, the rest goes on
            repairs.append(CaseRepair(stem, "error", [], (time.perf_counter() - start) * 1000,
                                      f"{type(e).__name__}: {e}"))
            continue
        repairs.append(CaseRepair(stem, fixed.status, [r.strategy for r in fixed.rounds
                                                       if r.strategy], fixed.time_ms))
        if fixed.status != "repaired":
            continue
        # the engine's own bounds (it retries deeper when a loop runs past the default)
        unroll = fixed.proof.unroll if fixed.proof is not None else REPAIR_UNROLL
        p = Pair(stem, program.name, slots(a), "repair", unroll=unroll,
                 max_total_steps=DEEPER_STEPS if unroll > REPAIR_UNROLL else None)
        pairs.append(p)
        clock.run(p, a, interpreter_inputs(obj, fixed.program)[0], inputs,
                  fixed.program.aborts)
    for p in pairs:
        if p.error is not None:
            errors.append(f"{p.name} ({p.label}): {p.error}")
    return pairs


def warm_up(objects: list[tuple[str, Path]]) -> None:
    """One proof before the timed ones (imports, Z3's first context, caches): the first
    program with a place for a const mutation, against it."""
    for _, path in objects:
        obj = read_object(str(path))
        for program in obj.programs:
            a, maps = interpreter_inputs(obj, program)
            try:
                b = mutate(a, "const")
            except AssertionError:
                continue
            kind = program.kind.prog_type if program.kind else None
            prove(a, b, ProofInputs(kind, maps), timeout=TIMEOUT, unroll=UNROLL)
            return


# ---------------------------------------------------------------- statistics


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of the values at or
    below it."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def ms(x: float) -> str:
    if x >= 1000:
        return f"{x / 1000:.1f} s"
    return f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def stats_cells(group: list[Pair]) -> str:
    """n | median | p95 | max (program) over these pairs."""
    if not group:
        return "0 | | | |"
    times = [p.time_ms for p in group]
    worst = max(group, key=lambda p: p.time_ms)
    return (f"{len(group)} | {ms(statistics.median(times))} | {ms(percentile(times, 0.95))} | "
            f"{ms(worst.time_ms)} ({worst.name}, {worst.label}) |")


def groups(pairs: list[Pair]) -> list[tuple[str, list[Pair]]]:
    out = [(kind, [p for p in pairs if p.kind == kind]) for kind in KINDS]
    out += [(f"mutation: {v}", [p for p in pairs if p.variant == v]) for v in MUTATIONS]
    out += [(source, [p for p in pairs if p.source == source])
            for source in ("test programs", "corpus", "large programs")]
    out.append(("**all pairs**", pairs))
    return out


def size_range(pairs: list[Pair]) -> str:
    return f" ({min(p.slots for p in pairs)} to {max(p.slots for p in pairs)} slots)" \
        if pairs else ""


def repair_table(repairs: list[CaseRepair]) -> list[str]:
    """What the repair engine made of each false rejection (its proofs of candidates are
    not among the timed pairs; the repaired program's proof is, as a "repair" pair)."""
    if not repairs:
        return []
    lines = ["## Corpus repairs", "",
             "epass.repair.repair(obj, program, Options()) on each false rejection; its time "
             "includes verifier loads and the proofs of every candidate it tried.", "",
             "| case | status | strategies | repair time |", "|---|---|---|---:|"]
    for r in repairs:
        status = f"{r.status}: {r.error}" if r.error else r.status
        lines.append(f"| {r.name.removeprefix('corpus/')} | {status} | "
                     f"{', '.join(r.strategies)} | {ms(r.time_ms)} |")
    counts = Counter(r.status for r in repairs)
    lines += ["", "By status: " + ", ".join(f"{k} {n}" for k, n in counts.most_common()) + "."]
    return lines


def count_table(pairs: list[Pair]) -> list[str]:
    present = [o for o in OUTCOMES if any(p.outcome == o for p in pairs)]
    lines = ["## Verdicts", "",
             "| pairs | count | " + " | ".join(present) + " |",
             "|---|---:|" + "---:|" * len(present)]
    for name, group in groups(pairs):
        c = Counter(p.outcome for p in group)
        lines.append(f"| {name} | {len(group)} | "
                     + " | ".join(str(c[o]) if c[o] else "" for o in present) + " |")
    return lines


def timing_tables(pairs: list[Pair]) -> list[str]:
    lines = ["## Time per proof", "",
             "`time_ms` as prove() reports it (wall clock, one run each). *Timed* pairs: "
             "every verdict except UNKNOWN (unsupported) and UNKNOWN (bound), which are "
             "reported below; Z3 timeouts are included (a proof may take up to "
             f"{TIMEOUT:g} s and some symbolic execution). *Non-trivial*: timed "
             "pairs not decided by the syntax check (the programs differ). p95 is the "
             "nearest-rank percentile.", "",
             "| pairs | set | n | median | p95 | max (program, pair) |",
             "|---|---|---:|---:|---:|---|"]
    for name, group in groups(pairs):
        lines.append(f"| {name} | timed | {stats_cells([p for p in group if p.timed])}")
        lines.append(f"| {name} | non-trivial | "
                     f"{stats_cells([p for p in group if p.nontrivial])}")
    decided = [p for p in pairs if p.nontrivial and p.outcome != "UNKNOWN (Z3 timeout)"]
    lines += ["", "Non-trivial pairs by verdict:", "",
              "| verdict | n | median | p95 | max (program, pair) |", "|---|---:|---:|---:|---|"]
    for o in ("EQUIVALENT", "REFINES", "NOT_EQUIVALENT", "UNKNOWN (Z3 timeout)",
              "UNKNOWN (other)"):
        group = [p for p in pairs if p.nontrivial and p.outcome == o]
        if group:
            lines.append(f"| {o} | {stats_cells(group)}")
    if decided:
        lines.append(f"| decided (all but Z3 timeouts) | {stats_cells(decided)}")

    bound = [p for p in pairs if p.outcome == "UNKNOWN (bound)"]
    lines += ["", "## Not in the statistics above", ""]
    if bound:
        times = [p.time_ms for p in bound]
        sym = sum(p.phases.get("symbolic", 0.0) for p in bound)
        lines.append(f"- UNKNOWN (bound), loops past the unroll bound ({UNROLL}; repaired "
                     f"programs {REPAIR_UNROLL}): {len(bound)} "
                     f"pairs of {', '.join(sorted({p.name for p in bound}))}; median "
                     f"{ms(statistics.median(times))}, max {ms(max(times))}, "
                     f"{sum(times) / 1000:.1f} s in all, "
                     f"{sym / max(sum(times), 1e-9):.0%} of it in run_symbolic "
                     "(the solver is never asked).")
    unsupported = [p for p in pairs if p.outcome == "UNKNOWN (unsupported)"]
    if unsupported:
        times = [p.time_ms for p in unsupported]
        lines.append(f"- UNKNOWN (unsupported): {len(unsupported)} pairs, median "
                     f"{ms(statistics.median(times))}, max {ms(max(times))} (symbolic "
                     "execution stops at the first unsupported instruction). By reason:")
        reasons = Counter(unsupported_reason(p) for p in unsupported)
        for reason, n in reasons.most_common():
            names = sorted({p.name for p in unsupported if unsupported_reason(p) == reason})
            lines.append(f"  - {reason}: {n} pairs ({', '.join(names)})")
    if not bound and not unsupported:
        lines.append("Nothing: every pair was timed.")
    return lines


def unsupported_reason(p: Pair) -> str:
    reason = p.result.reason if p.result else ""
    head, sep, tail = reason.partition(": ")  # "insn 27: hash maps have no ..."
    return tail if sep and head.startswith("insn ") else reason


def phase_table(pairs: list[Pair], wrapped: list[str]) -> list[str]:
    lines = ["## Where the time goes", "",
             "Measured inside each prove() call by wrapping its internals: *symbolic* is "
             "run_symbolic on both programs (paths explored into Z3 terms), *solver* the "
             "Z3 checks of the properties (with the search for a shorter packet after a "
             "sat answer), *counterexample* reading the input from the model and "
             "replaying both programs on the interpreter, *abort sites* the div_by_zero "
             "abort analysis, *other* the rest (syntax comparison, building the property "
             "terms).", ""]
    missing = [p for p in PHASES if p not in wrapped]
    if missing:
        lines += [f"(Could not wrap {', '.join(missing)}: epass.smt.prove changed; that "
                  "time counts as other.)", ""]
    lines += ["| non-trivial pairs | n | total | " + " | ".join(PHASES) + " | other |",
              "|---|---:|---:|" + "---:|" * (len(PHASES) + 1)]
    rows = [("all", [p for p in pairs if p.nontrivial])]
    for o in ("EQUIVALENT", "REFINES", "NOT_EQUIVALENT", "UNKNOWN (Z3 timeout)"):
        rows.append((o, [p for p in pairs if p.nontrivial and p.outcome == o]))
    for name, group in rows:
        if not group:
            continue
        total = sum(p.time_ms for p in group)
        cells = []
        accounted = 0.0
        for phase in PHASES:
            t = sum(p.phases.get(phase, 0.0) for p in group)
            accounted += t
            cells.append(f"{t / 1000:.2f} s ({t / total:.0%})" if total else "")
        other = total - accounted
        lines.append(f"| {name} | {len(group)} | {total / 1000:.2f} s | " + " | ".join(cells)
                     + f" | {other / 1000:.2f} s ({other / total:.0%}) |")
    refuted = [p for p in pairs if p.nontrivial and p.outcome == "NOT_EQUIVALENT"
               and "counterexample" in p.phases]
    if refuted:
        cex = statistics.median(p.phases["counterexample"] for p in refuted)
        total = statistics.median(p.time_ms for p in refuted)
        lines += ["", f"Per NOT_EQUIVALENT proof, the counterexample step takes a median "
                  f"{ms(cex)} of a median total {ms(total)}."]
    return lines


def detail_table(pairs: list[Pair]) -> list[str]:
    lines = ["## Every pair the syntax check did not decide", "",
             "| object/program | slots | pair | verdict | property | time | symbolic | "
             "solver | counterexample | paths |", "|---|---:|---|---|---|---:|---:|---:|---:|---|"]
    for p in pairs:
        if p.result is None or p.outcome == "EQUIVALENT (syntax)":
            continue
        r = p.result

        def phase(name: str, p: Pair = p) -> str:
            return ms(p.phases[name]) if name in p.phases else ""

        lines.append(f"| {p.name} | {p.slots} | {p.label} | {r.verdict.name} | {r.property} | "
                     f"{ms(r.time_ms)} | {phase('symbolic')} | {phase('solver')} | "
                     f"{phase('counterexample')} | {r.paths[0]}/{r.paths[1]} |")
    syntax = [p for p in pairs if p.outcome == "EQUIVALENT (syntax)"]
    by_kind = Counter(p.kind for p in syntax)
    lines += ["", f"Decided by the syntax check (identical programs): {len(syntax)} pairs ("
              + ", ".join(f"{k}: {by_kind[k]}" for k in KINDS if by_kind[k]) + ")."]
    return lines


def listing(insns: list[Insn]) -> list[str]:
    out, slot = [], 0
    for i in insns:
        out.append(f"{slot:4}: {format_insn(i)}")
        slot += slot_count(i)
    return out


def findings(pairs: list[Pair]) -> list[str]:
    """Pairs that contradict what a correct compiler and a sound prover give."""
    lines = ["## Findings", ""]
    wrong = [p for p in pairs if p.kind != "mutation" and p.result is not None
             and p.result.verdict == Verdict.NOT_EQUIVALENT]
    for p in wrong:
        r = p.result
        assert r is not None
        cex = r.counterexample
        lines += [f"- **BUG**: {p.name} ({p.label}) is NOT_EQUIVALENT ({r.property}): "
                  f"{r.reason}", "", "```", "original:", *listing(p.original), "",
                  "transformed:", *listing(p.transformed)]
        if cex is not None:
            lines += ["", f"packet: {cex.packet.hex()}", f"original: {cex.original}",
                      f"transformed: {cex.transformed}"]
        lines += ["```", ""]
    unproven = [p for p in pairs if p.kind != "mutation" and p.result is not None
                and p.result.verdict == Verdict.UNKNOWN]
    if unproven:
        lines.append("- Round trip / div_by_zero / repair pairs left UNKNOWN: " + "; ".join(
            f"{p.name} ({p.label}, {p.result.property})" for p in unproven if p.result))
    same = [p for p in pairs if p.kind == "mutation" and p.result is not None
            and p.result.verdict in (Verdict.EQUIVALENT, Verdict.REFINES)]
    if same:
        lines.append("- Mutations proven EQUIVALENT (the changed instruction does not change "
                     "the behaviour, or the prover misses it):")
        for p in same:
            k = next(k for k, (x, y) in enumerate(zip(p.original, p.transformed, strict=True))
                     if x != y)
            lines.append(f"  - {p.name} ({p.variant}): insn {k} `{format_insn(p.original[k])}` "
                         f"-> `{format_insn(p.transformed[k])}`")
    if not wrong:
        lines.append("- No round trip, div_by_zero or repair pair is NOT_EQUIVALENT.")
    return lines


def target_sentence(pairs: list[Pair]) -> str:
    nontrivial = [p for p in pairs if p.nontrivial]
    if not nontrivial:
        return "No non-trivial pair was timed."
    times = [p.time_ms for p in nontrivial]
    med, p95 = statistics.median(times), percentile(times, 0.95)
    biggest = max(p.slots for p in pairs)
    correct = [p.time_ms for p in nontrivial if p.kind != "mutation"]
    timeouts = sum(p.outcome == "UNKNOWN (Z3 timeout)" for p in nontrivial)
    text = (f"Targets (programs up to {TARGET_SIZE} instructions): median <= "
            f"{TARGET_MEDIAN_MS:.0f} ms, p95 <= {TARGET_P95_MS / 1000:.0f} s; K2 reports "
            f"4-302 ms per equivalence query. Over the {len(nontrivial)} non-trivial pairs "
            f"here the median is {ms(med)} "
            f"({'meets' if med <= TARGET_MEDIAN_MS else 'misses'} the target) and the p95 "
            f"{ms(p95)} ({'meets' if p95 <= TARGET_P95_MS else 'misses'} it")
    text += (f", because {timeouts} mutated pairs run into Z3 timeouts)" if timeouts and
             p95 > TARGET_P95_MS else ")")
    if correct:
        text += (f"; the {len(correct)} non-trivial pairs of real transformations (round trip, "
                 f"div_by_zero, repair) take at most {ms(max(correct))}")
    text += f". The largest program has {biggest} slots"
    large = [p for p in nontrivial if p.slots >= TARGET_SIZE * 3 // 4]
    if large:
        times = [p.time_ms for p in large]
        text += (f"; the {len(large)} non-trivial pairs of programs past "
                 f"{TARGET_SIZE * 3 // 4} slots take a median {ms(statistics.median(times))}, "
                 f"at most {ms(max(times))}.")
    else:
        text += f": nothing here measures programs near {TARGET_SIZE} instructions."
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "prove.md"))
    ap.add_argument("--only", default="", metavar="PATTERN",
                    help="only the pairs whose object/program name contains PATTERN")
    args = ap.parse_args()

    started = time.perf_counter()
    load_before = load_average()
    source = source_state()  # at the start: the modules are imported already
    work = Path(tempfile.mkdtemp(prefix="epass-bench-"))
    notes: list[str] = []
    errors: list[str] = []
    objects = build_all(work, notes)
    clock = PhaseClock()
    warm_up(objects)
    pairs: list[Pair] = []
    repairs: list[CaseRepair] = []

    def show(new: list[Pair]) -> None:
        for p in new:
            print(f"{p.name:45} {p.label:22} {p.outcome:22} {ms(p.time_ms):>8}",
                  file=sys.stderr, flush=True)
        pairs.extend(new)

    for stem, path in objects:
        obj = read_object(str(path))
        for program in obj.programs:
            if args.only in f"{stem}/{program.name}":
                show(prove_program(clock, stem, obj, program, errors))
    cases = corpus_cases()
    for case in cases:
        show(prove_corpus_case(clock, case, errors, repairs, args.only))
    if not pairs:
        sys.exit(f"no pair matches --only {args.only!r}")
    tests = [p for p in pairs if p.source == "test programs"]
    corpus = [p for p in pairs if p.source == "corpus"]
    large = [p for p in pairs if p.source == "large programs"]

    lines = ["# Translation validation (epass.smt.prove) benchmarks", "",
             f"- command: `{command_line()}`",
             f"- date: {now()}",
             f"- machine: {machine()}; load average "
             f"{load_before} before the run, {load_average()} after; "
             f"Z3 {z3.get_version_string()}; "
             f"{tool_version([progs.CLANG, '--version'])}",
             f"- epass source: {source}",
             f"- test programs: {len(objects) - len(LARGE_BUILDS)} object files from "
             f"tests/progs/*.bpf.c "
             f"(-mcpu={CPU} unless noted), {len({p.name for p in tests})} programs"
             f"{size_range(tests)}, {len(tests)} pairs",
             f"- corpus: {len(cases)} cases of corpus/{{{','.join(CORPUS_SETS)}}}, "
             f"{len({p.name for p in corpus})} programs{size_range(corpus)}, {len(corpus)} "
             f"pairs ({sum(p.kind == 'repair' for p in corpus)} repaired programs)",
             f"- large programs: benchmarks/progs/fnv_unrolled.bpf.c with ROUNDS "
             f"{', '.join(str(r) for _, r in LARGE_BUILDS)}, {len({p.name for p in large})} "
             f"programs{size_range(large)}, {len(large)} pairs",
             f"- prove(timeout={TIMEOUT:g}, unroll={UNROLL}; repaired programs with the "
             f"repair engine's bound, {REPAIR_UNROLL} or the deeper one it retried with); "
             "one run per pair; wall-clock times."]
    if args.only:
        lines.append(f"- **partial run**: only the pairs whose name contains `{args.only}`")
    lines += [""] + [f"- note: {n}" for n in notes] + [""]
    lines += [target_sentence(pairs), ""]
    lines += count_table(pairs) + [""]
    lines += timing_tables(pairs) + [""]
    lines += phase_table(pairs, clock.wrapped) + [""]
    lines += findings(pairs) + [""]
    lines += repair_table(repairs) + [""]
    lines += detail_table(pairs) + [""]
    lines += ["## Errors", ""]
    lines += [f"- `{e}`" for e in errors] if errors else ["None: every pair was built and "
                                                          "proved without an exception."]
    lines += ["", f"Run took {time.perf_counter() - started:.0f} s. Reproduce: "
              "`.venv/bin/python benchmarks/prove.py`.", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
