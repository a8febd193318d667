"""The multi-round repair loop (docs/repair.md).

1. Verify the program at log level 2: the error, its class and the VI map.
2. Before any rewrite, ask Z3 whether the original program can leave its memory
   regions on some input (epass.smt.safety). If it can, that is a true bug: the
   input is replayed on the interpreter and the repair stops (unless guards are
   allowed, in which case the result may only REFINE the original).
3. The strategies for the error's class propose candidate rewrites near the
   rejected instruction. Each is applied to a fresh lift of this round's program,
   compiled, verified, and proven against the original: a candidate is kept when
   the verifier gets further (accepts, or stops at another place or for another
   reason) and Z3 shows it behaves as the original (EQUIVALENT: its checks never
   fire; REFINES with --allow-guards).
4. Repeat with the kept candidate until the verifier accepts or the rounds run out.

Nothing is returned as repaired that the kernel did not accept and Z3 did not prove.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from epass.codegen import compile_module
from epass.commands.run import interpreter_inputs
from epass.commands.verify import LOG_TAIL
from epass.errors import EpassError
from epass.isa import format_insn, slot_indices
from epass.kernel.loader import LoadedObject, ProgramLoad, open_object
from epass.kernel.verifier_log import VerifierError, parse_log
from epass.obj.model import BpfObject, Program
from epass.repair.site import Facts, make_site
from epass.repair.strategies import for_class
from epass.smt import ProofInputs, ProofResult, UnknownAnswer, Verdict, prove
from epass.smt.safety import FaultWitness, find_fault

DEFAULT_ROUNDS = 10


@dataclass
class Change:
    """One hunk of the rewrite: slots and text before and after."""

    before: list[tuple[int, str]]
    after: list[tuple[int, str]]


@dataclass
class Round:
    number: int
    error: VerifierError
    strategy: str | None = None
    candidate: str | None = None
    changes: list[Change] = field(default_factory=list)
    proof: ProofResult | None = None
    accepted: bool = False  # the verifier's verdict on this round's result
    tried: list[str] = field(default_factory=list)  # candidates that did not help, and why
    program: Program | None = None  # the program this round produced


@dataclass
class RepairResult:
    # already_accepted | repaired | true_bug | no_strategy | proof_unknown | max_rounds
    status: str
    program: Program  # the last program (the repaired one when status is "repaired")
    rounds: list[Round] = field(default_factory=list)
    first_error: VerifierError | None = None
    safety: str = "not asked"  # safe | unsafe | unknown: ... (the original, per Z3)
    bug: FaultWitness | None = None
    proof: ProofResult | None = None  # original against the repaired program
    time_ms: float = 0.0


@dataclass
class Options:
    max_rounds: int = DEFAULT_ROUNDS
    allow_guards: bool = False
    timeout: float = 30.0  # seconds per Z3 question
    unroll: int = 32
    # the symbolic run of the safety question over all paths: past it, "unknown" (long
    # loops would otherwise take minutes; the final proof decides anyway)
    safety_steps: int = 40_000


# a proof that runs past the unroll bound is tried once more, this much deeper (loops of
# up to a few hundred trips are common; their runs are cheap next to the solver's work)
DEEPER_UNROLL, DEEPER_STEPS = 4, 1_000_000


def _prove(original: list, transformed: list, inputs: ProofInputs, aborts: Sequence[int],
           opts: Options) -> ProofResult:
    """prove(), and when the unrolling ran past its bounds, again with deeper ones (the
    first try's time counted against the timeout)."""
    start = time.perf_counter()
    proof = prove(original, transformed, inputs, timeout=opts.timeout, unroll=opts.unroll,
                  aborts=aborts)
    left = opts.timeout - (time.perf_counter() - start)
    if proof.verdict != Verdict.UNKNOWN or proof.property != "bound" or left <= 1:
        return proof
    deeper = prove(original, transformed, inputs, timeout=left,
                   unroll=opts.unroll * DEEPER_UNROLL, aborts=aborts,
                   max_total_steps=DEEPER_STEPS)
    return deeper if deeper.verdict != Verdict.UNKNOWN else proof


def proof_insns(obj: BpfObject, program: Program) -> list:
    """Bytecode as the semantics takes it: map references as indices into obj.maps."""
    return interpreter_inputs(obj, program)[0]


def changes(before: Program, after: Program) -> list[Change]:
    a = [format_insn(i) for i in before.insns]
    b = [format_insn(i) for i in after.insns]
    sa, sb = slot_indices(before.insns), slot_indices(after.insns)
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            out.append(Change([(sa[k], a[k]) for k in range(i1, i2)],
                              [(sb[k], b[k]) for k in range(j1, j2)]))
    return out


def _error(load: ProgramLoad) -> VerifierError:
    # the error block is at the end; a log that hit the instruction limit is huge
    parsed = parse_log(load.log[-LOG_TAIL:])
    if parsed.error is not None:
        return parsed.error
    from epass.kernel.verifier_log import ErrorClass
    return VerifierError(None, "rejected, but the log names no error", ErrorClass.UNKNOWN)


def _same_failure(a: VerifierError, b: VerifierError, pa: Program, pb: Program) -> bool:
    """The verifier stopped at the same instruction for the same reason."""
    def at(e: VerifierError, p: Program) -> str | None:
        if e.insn is None or e.insn not in slot_indices(p.insns):
            return None
        return format_insn(p.insns[slot_indices(p.insns).index(e.insn)])
    return a.message == b.message and at(a, pa) == at(b, pb)


def repair(obj: BpfObject, program: Program, options: Options | None = None) -> RepairResult:
    opts = options or Options()
    start = time.perf_counter()
    with open_object(obj) as loaded:
        result = _repair(obj, program, loaded, opts)
    result.time_ms = (time.perf_counter() - start) * 1000
    return result


def _repair(obj: BpfObject, program: Program, loaded: LoadedObject,
            opts: Options) -> RepairResult:
    load = _load(loaded, program)
    if load.accepted:
        return RepairResult("already_accepted", program)
    error = _error(load)
    result = RepairResult("no_strategy", program, first_error=error)
    original, specs = interpreter_inputs(obj, program)
    inputs = ProofInputs(program.kind.prog_type if program.kind else None, specs)
    try:
        result.bug = find_fault(original, inputs, timeout=opts.timeout, unroll=opts.unroll,
                                max_total_steps=opts.safety_steps)
        result.safety = "safe" if result.bug is None else "unsafe"
    except UnknownAnswer as e:
        result.safety = f"unknown: {e}"
    if result.bug is not None and not opts.allow_guards:
        result.status = "true_bug"
        return result
    current = program

    def verify(p: Program) -> ProgramLoad:
        return loaded.load_program(p, log_level=2)

    for number in range(1, opts.max_rounds + 1):
        rnd = Round(number, error)
        result.rounds.append(rnd)
        facts = Facts(load.log)
        kept = None
        undecided = False  # a candidate the verifier liked, but Z3 could not decide
        for strategy in for_class(error.error_class):
            site = make_site(obj, current, error, facts, verify)
            if site is None:
                rnd.tried.append(f"{strategy.name}: the error names no instruction")
                break
            for candidate in strategy.propose(site):
                fresh = make_site(obj, current, error, facts, verify)
                assert fresh is not None
                try:
                    candidate.apply(fresh)
                    new = compile_module(fresh.module)
                except EpassError as e:
                    rnd.tried.append(f"{strategy.name}: {candidate.description}: {e.line()}")
                    continue
                new_load = _load(loaded, new)
                new_error = None if new_load.accepted else _error(new_load)
                if new_error is not None and _same_failure(error, new_error, current, new):
                    rnd.tried.append(f"{strategy.name}: {candidate.description}: the verifier "
                                     "still stops there")
                    continue
                proof = _prove(original, proof_insns(obj, new), inputs, new.aborts, opts)
                if not _proven(proof, opts):
                    undecided |= proof.verdict == Verdict.UNKNOWN
                    rnd.tried.append(f"{strategy.name}: {candidate.description}: proof "
                                     f"{proof.verdict.value}: {proof.reason}")
                    continue
                kept = (strategy.name, candidate.description, new, new_load, new_error, proof)
                break
            if kept is not None:
                break
        if kept is None:
            result.status = "proof_unknown" if undecided else "no_strategy"
            return result
        rnd.strategy, rnd.candidate, new, load, new_error, rnd.proof = kept
        rnd.changes = changes(current, new)
        rnd.program = new
        rnd.accepted = new_error is None
        current = result.program = new
        if rnd.accepted:
            result.proof = rnd.proof
            result.status = "repaired"
            return result
        error = new_error
    result.status = "max_rounds"
    return result


TRACE_LIMIT = 200_000  # processed instructions past which no level-2 trace is asked for


def _load(loaded: LoadedObject, p: Program) -> ProgramLoad:
    """The verifier's verdict, with the level-2 trace (the VI map's source) only when its
    walk was short: a walk to the 1M-instruction limit prints gigabytes at level 2. The
    statistics-only load is cheap; the error message is in its log too."""
    quick = loaded.load_program(p, log_level=0)
    processed = parse_log(quick.log).processed_insns
    if quick.accepted or (processed is not None and processed > TRACE_LIMIT):
        return quick
    return loaded.load_program(p, log_level=2)


def _proven(proof: ProofResult, opts: Options) -> bool:
    if proof.verdict == Verdict.EQUIVALENT:
        return True
    return opts.allow_guards and proof.verdict == Verdict.REFINES
