"""Translation validation: does a transformed program behave like the original?

    result = prove(original, transformed, ProofInputs(prog_type=ProgType.XDP, maps=specs))
    result.verdict  # EQUIVALENT, NOT_EQUIVALENT (with a replayed counterexample), UNKNOWN

Both programs are bytecode (map references as map indices, as the
interpreter takes them) and run through the same Z3 encoding
(`epass.semantics.symbolic`) over the same inputs: one initial memory
(`mem0`: packet bytes, context fields, map values), one packet length, and
one uninterpreted function per unknown helper. The checks go cheapest
first, like Alive2, and the result says which property decided:

1. `syntax`: the same instructions;
2. `fault`: the transformed program makes an access out of bounds where the
   original does not;
3. `r0`: the return values differ;
4. `packet`, `maps`, `ctx`: the memory either program leaves differs
   (packet length and bytes, every map value, the context).

Inputs on which the original itself faults are excluded (the kernel
verifier does not let such programs load). A counterexample is replayed on
the interpreter; only a replay that shows the difference is reported as
confirmed. This module proves on bytecode through `semantics` and never
imports the compiler it judges (ir, codegen, passes).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import z3

from epass.isa import Insn, format_insn
from epass.isa.helpers import helper_arg_count
from epass.semantics import step as st
from epass.semantics.addresses import Addresses, tag_of
from epass.semantics.ctx import layout_for
from epass.semantics.interp import MapSpec
from epass.semantics.maps import ARRAY_TYPES, MapSet
from epass.semantics.memory import (
    CTX_BASE,
    MAP_BASE,
    MAP_STRIDE,
    PACKET_BASE,
    PACKET_HEADROOM,
    RECORD_STRIDE,
    RINGBUF_BASE,
    STACK_BASE,
    STACK_SIZE,
    STACK_STRIDE,
    Memory,
    MemoryFault,
)
from epass.semantics.symbolic import (
    ETH_HLEN,
    MAX_CALL_FRAMES,
    MAX_PACKET,
    HashArea,
    SymbolicEnv,
    SymbolicResult,
    distinct_keys,
    run_symbolic,
)
from epass.smt.loops import loop_headers, segments
from epass.smt.replay import replay
from epass.smt.solver import PortfolioSolver
from epass.uapi import ProgType

DEFAULT_UNROLL = 32  # each instruction at most this many times on a path
REPLAY_RECORDS, MAX_RECORD = 4, 4096  # ring buffer records whose first bytes replays get
SPLIT_OR = 8  # a difference with more disjuncts than this is solved one disjunct at a time
FIRST_ROUND_MIN = 0.05  # seconds: the least a disjunct gets in the first round
GROUP_MAX = 16  # disjuncts asked together at most (solve)
MAX_TOTAL_STEPS = 200_000  # over all paths of one program: past it the answer is UNKNOWN
ORIGINAL_RUNS = 8  # symbolic runs of originals kept for later proofs (see _run_original)


class Verdict(Enum):
    EQUIVALENT = "equivalent"
    REFINES = "refines"  # equal, except where the transformed program aborts
    NOT_EQUIVALENT = "not_equivalent"
    UNKNOWN = "unknown"


@dataclass
class AbortSite:
    """An exit a pass inserted to abort, and when it fires."""

    slot: int
    fires: bool  # some input reaches it
    packet: bytes | None  # an input that does (the shortest packet)
    original_unsafe: str  # on those inputs the original faults or divides by zero:
    # "always", "sometimes" or "never"


@dataclass
class ProofInputs:
    """What both programs get: their type and maps (contents are left unknown)."""

    prog_type: ProgType | int | None
    maps: list[MapSpec] = field(default_factory=list)
    packet_len: int | None = None  # None: any length from 14 to 4096 bytes


@dataclass
class Counterexample:
    packet: bytes
    ctx: bytes
    maps: dict[str, dict[bytes, bytes]]  # initial contents
    original: dict[str, Any]  # what the interpreter gives: r0, packet, maps, fault
    transformed: dict[str, Any]
    confirmed: bool  # the replay on the interpreter shows the difference


@dataclass
class ProofResult:
    verdict: Verdict
    property: str  # which check decided: syntax, fault, r0, packet, maps, ctx, all
    reason: str
    time_ms: float
    unroll: int
    paths: tuple[int, int] = (0, 0)  # finished paths of the original and the transformed
    counterexample: Counterexample | None = None
    aborts: list[AbortSite] = field(default_factory=list)


def prove(original: list[Insn], transformed: list[Insn], inputs: ProofInputs, *,
          timeout: float = 30.0, unroll: int = DEFAULT_UNROLL,
          aborts: Sequence[int] = (), loops: str = "auto",
          max_total_steps: int = MAX_TOTAL_STEPS) -> ProofResult:
    """Decide whether `transformed` behaves like `original` on every input.

    `aborts`: slots of `transformed`'s exits that a pass inserted to abort; where one
    is reached the programs may differ, and the verdict is REFINES if one can be.
    `loops`: "unroll" (paths up to the bound), "pair" (loop pairing only, loops.py) or
    "auto" (unroll; pair the loops when a path runs past the bound). `max_total_steps`
    bounds the unrolled run of each program over all its paths."""
    start = time.perf_counter()

    def done(verdict: Verdict, prop: str, reason: str, paths: tuple[int, int] = (0, 0),
             cex: Counterexample | None = None,
             sites: list[AbortSite] | None = None) -> ProofResult:
        return ProofResult(verdict, prop, reason, (time.perf_counter() - start) * 1000,
                           unroll, paths, cex, sites or [])

    if [format_insn(i) for i in original] == [format_insn(i) for i in transformed]:
        return done(Verdict.EQUIVALENT, "syntax", "the instructions are identical")
    env = SymbolicEnv(prog_type=inputs.prog_type, packet_len=inputs.packet_len,
                      maps=inputs.maps,
                      max_steps=unroll * max(len(original), len(transformed)),
                      max_total_steps=max_total_steps, strict_helpers=True,
                      addresses=Addresses())
    paired = ""
    if loops == "pair":
        return _prove_paired(original, transformed, inputs, env, start + timeout, aborts, done)
    first = None
    if loops == "auto" and loop_headers(original):
        # pairing first, registers equal by number (cheap): when it shows equivalence, the
        # unrolling (which may spend most of the timeout on paths past the bound) is not
        # needed; a weaker answer waits
        first = _prove_paired(original, transformed, inputs, env, start + timeout / 2, aborts,
                              done, inferred=False)
        if first.verdict == Verdict.EQUIVALENT:
            return first
    try:
        p, env.addresses = _run_original(original, env)
        t = run_symbolic(transformed, env)
    except (st.Unsupported, MemoryFault) as e:
        return done(Verdict.UNKNOWN, "unsupported", str(e))
    paths = (p.paths, t.paths)
    if not (p.complete and t.complete):
        # covering runs first: where they work, the checks tell whether an abort really
        # fires, which pairing (from any header state) cannot
        covering = _covering_runs(original, transformed, env, unroll, (p, t), start + timeout)
        if covering is None and loops == "auto":
            result = first
            if result is None or result.verdict == Verdict.UNKNOWN:  # with inference
                result = _prove_paired(original, transformed, inputs, env, start + timeout,
                                       aborts, done)
            if result.verdict != Verdict.UNKNOWN:
                return result
            paired = f"; loop pairing: {result.reason}"
        if covering is None:
            return done(Verdict.UNKNOWN, "bound",
                        f"a path runs past the unroll bound ({unroll} times each instruction) "
                        f"or the paths past {max_total_steps} steps in all{paired}", paths)
        p, t = covering
        paths = (p.paths, t.paths)
    checks = _Checks(p, t, inputs, timeout)
    aborting = _aborting(t, aborts)
    sites = checks.abort_sites(sorted(set(aborts))) if aborts else []
    properties = checks.properties()
    for i, (prop, differ) in enumerate(properties):
        if i == 1 and aborting:
            # an abort ends the program, it does not undo a fault before it: faults are
            # checked on every input, the rest where no abort fires
            checks.solver.add(z3.Not(z3.Or(*aborting)))
        left = timeout - (time.perf_counter() - start)  # the timeout is for the whole proof
        outcome = checks.solve(differ, left) if left > 0 else z3.unknown
        if outcome == z3.unknown:
            return done(Verdict.UNKNOWN, prop, f"Z3 gave up on the {prop} check "
                        f"(timeout {timeout:g} s for the proof)", paths)
        if outcome == z3.sat:
            cex = checks.counterexample(original, transformed)
            what = "confirmed on the interpreter" if cex.confirmed else \
                "not confirmed on the interpreter"
            shown = _replay_difference(cex)
            if shown is not None and shown != prop:
                # Z3's inputs differ in another way on the interpreter: report what it shows
                what = f"the interpreter shows a difference in {shown}"
                prop = shown
            verdict = Verdict.NOT_EQUIVALENT if cex.confirmed else Verdict.UNKNOWN
            return done(verdict, prop, f"the {prop} check fails ({what})", paths, cex, sites)
    agree = "r0, faults, packet, maps, context and helper calls agree"
    firing = [s for s in sites if s.fires]
    if firing:
        return done(Verdict.REFINES, "all", f"{agree} wherever the transformed program does "
                    f"not abort; {len(firing)} abort site(s) can fire", paths, None, sites)
    return done(Verdict.EQUIVALENT, "all", f"{agree} on every input", paths, None, sites)


_runs: OrderedDict[tuple, tuple[SymbolicEnv, SymbolicResult]] = OrderedDict()


def _run_original(original: list[Insn], env: SymbolicEnv) -> tuple[SymbolicResult, Any]:
    """run_symbolic(original, env) and the address caches it used, kept for the next proofs
    of the same original (the repair engine proves each candidate against one program):
    a run depends only on the program and the environment, and a complete run (no path
    cut) is also the run under any bounds its paths stay within."""
    key = (tuple(original), env.prog_type, env.packet_len, env.strict_helpers, env.mem_size,
           env.indirect_calls, env.observe,
           tuple((m.name, m.type, m.key_size, m.value_size, m.max_entries,
                  tuple(sorted(m.contents.items()))) for m in env.maps))
    hit = _runs.get(key)
    if hit is not None and env.helpers is None and env.start is None and env.cuts is None:
        old, run = hit
        same = (old.max_steps, old.max_total_steps) == (env.max_steps, env.max_total_steps)
        if same or run.complete and run.longest <= env.max_steps and \
                run.steps <= env.max_total_steps:
            _runs.move_to_end(key)
            return run, old.addresses
    run = run_symbolic(original, env)
    if env.helpers is None and env.start is None and env.cuts is None:
        _runs[key] = (replace(env), run)
        while len(_runs) > ORIGINAL_RUNS:
            _runs.popitem(last=False)
    return run, env.addresses


DEEPEN = (4, 6, 8, 12, 16, 24)  # unroll bounds tried below the given one, shallowest first
DEEPEN_CUT = 100  # cut-off paths past which shallower bounds are not tried (path explosion)


def _covering_runs(original: list[Insn], transformed: list[Insn], env: SymbolicEnv,
                   unroll: int, runs: tuple[SymbolicResult, SymbolicResult],
                   deadline: float) -> tuple[SymbolicResult, SymbolicResult] | None:
    """Runs of both programs whose cut-off paths no input takes, or None. Depth-first
    exploration spends the step budget on the deepest (often infeasible) paths first, so
    shallower bounds are tried too: the first that covers every real trip count wins. That
    helps a few long paths (a loop whose end the branch conditions do not show), not many
    (paths that fork on every trip): then it is not tried."""
    n = max(len(original), len(transformed))
    few = len(runs[0].unfinished) + len(runs[1].unfinished) <= DEEPEN_CUT
    for k in [unroll, *(k for k in DEEPEN if k < unroll and few)]:
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        if k != unroll:
            try:  # a shallower run may reach code the deeper one's step budget did not
                runs = (run_symbolic(original, replace(env, max_steps=k * n)),
                        run_symbolic(transformed, replace(env, max_steps=k * n)))
            except (st.Unsupported, MemoryFault):
                return None
        if _cut_off_infeasible(*runs, left / 2):
            return runs
    return None


def _cut_off_infeasible(p: SymbolicResult, t: SymbolicResult, seconds: float) -> bool:
    """Whether no input takes a path the bounds cut off (Z3 says their conditions cannot
    hold): then the finished paths cover every input, as for a complete run. A loop whose
    branch conditions do not show, term by term, where it ends (`while (n & (n - 1))`)
    still ends within the bound on every real path."""
    cut = p.unfinished + t.unfinished
    if not cut or seconds <= 0:
        return False
    solver = PortfolioSolver(int(seconds * 1000))
    if p.packet_len is not None and not z3.is_bv_value(p.packet_len):
        solver.add(z3.ULE(ETH_HLEN, p.packet_len), z3.ULE(p.packet_len, MAX_PACKET))
    solver.add(z3.Not(p.fault), *distinct_keys(p, t))  # as in the checks below
    return solver.check(z3.Or(*cut)) == z3.unsat


def _aborting(t: SymbolicResult, aborts: Sequence[int]) -> list[Any]:
    """The conditions of the transformed program's paths that end at an inserted abort."""
    slots = set(aborts)
    return [c for c, pc, _ in t.path_ends if pc is not None and pc in slots]


def _prove_paired(original: list[Insn], transformed: list[Insn], inputs: ProofInputs,
                  env: SymbolicEnv, deadline: float, aborts: Sequence[int],
                  done: Any, inferred: bool = True) -> ProofResult:
    """Loop pairing (loops.py): every segment's checks, with the state at cut points
    (`inferred`: also with a relation relation.infer finds)."""
    fires = []

    def check(p: SymbolicResult, t: SymbolicResult) -> tuple[bool, str]:
        checks = _Checks(p, t, inputs, max(deadline - time.perf_counter(), 0.001))
        aborting = _aborting(t, aborts)
        if aborting:
            fires.append(checks.solver.check(z3.Or(*aborting)) == z3.sat)
        for i, (prop, differ) in enumerate([*checks.properties(),
                                            ("state", checks.state_differs())]):
            if i == 1 and aborting:
                checks.solver.add(z3.Not(z3.Or(*aborting)))
            left = deadline - time.perf_counter()
            outcome = checks.solve(differ, left) if left > 0 else z3.unknown
            if outcome == z3.unknown:
                return False, f"Z3 gave up on the {prop} check"
            if outcome == z3.sat:
                return False, f"the {prop} check fails from some state"
        return True, ""

    pairing = segments(original, transformed, env, check, deadline, inferred)
    paths = (sum(p.paths for p, _ in pairing.segments),
             sum(t.paths for _, t in pairing.segments))
    if not pairing.proven:
        return done(Verdict.UNKNOWN, "bound", pairing.reason, paths)
    agree = (f"{pairing.reason}: r0, faults, packet, maps, context and helper calls agree, "
             "and registers and memory at every loop header")
    if any(fires):
        return done(Verdict.REFINES, "all", f"{agree}, wherever the transformed program does "
                    "not abort; an abort may fire", paths)
    return done(Verdict.EQUIVALENT, "all", f"{agree}, on every input", paths)


# the properties in the order they are checked, and the replay's entries that show each
REPLAY_PROPERTIES = (("fault", ("fault", "error")), ("r0", ("r0",)), ("packet", ("packet",)),
                     ("maps", ("maps",)), ("ctx", ("ctx",)), ("calls", ("calls", "output")))


def _replay_difference(cex: Counterexample) -> str | None:
    """The first property in which the two replays differ."""
    for prop, keys in REPLAY_PROPERTIES:
        if any(cex.original.get(k) != cex.transformed.get(k) for k in keys):
            return prop
    return None


class _Checks:
    def __init__(self, p: SymbolicResult, t: SymbolicResult, inputs: ProofInputs,
                 timeout: float) -> None:
        self.p, self.t = p, t
        self.inputs = inputs
        self.timeout_ms = int(timeout * 1000)
        self.solver = PortfolioSolver(self.timeout_ms)
        if p.packet_len is not None and not z3.is_bv_value(p.packet_len):
            self.solver.add(z3.ULE(ETH_HLEN, p.packet_len), z3.ULE(p.packet_len, MAX_PACKET))
        self.solver.add(z3.Not(p.fault))  # the verifier keeps such inputs away
        self.layout = layout_for(inputs.prog_type) if inputs.prog_type is not None else None
        maps = MapSet(Memory())  # the symbolic run's allocation: same value addresses
        for spec in inputs.maps:
            maps.add(spec.name, spec.type, spec.key_size, spec.value_size, spec.max_entries,
                     spec.contents)
        self.map_state = maps
        self.solver.add(*distinct_keys(p, t))
        self._mem0: tuple[dict[int, int], int] | None = None
        # the runs' own caches when they shared them (prove's runs do): their memories are
        # taken apart already
        shared = p.addresses is not None and p.addresses is t.addresses
        self.addresses = p.addresses if shared else Addresses()

    def abort_sites(self, slots: list[int]) -> list[AbortSite]:
        """When each abort fires and whether the original was unsafe there (a solver of its
        own: inputs on which the original faults matter here)."""
        solver = PortfolioSolver(self.timeout_ms)
        solver.add(*distinct_keys(self.p, self.t))
        if self.p.packet_len is not None and not z3.is_bv_value(self.p.packet_len):
            solver.add(z3.ULE(ETH_HLEN, self.p.packet_len),
                       z3.ULE(self.p.packet_len, MAX_PACKET))
        unsafe = z3.Or(self.p.fault, self.p.div_zero)
        out = []
        for slot in slots:
            conds = [c for c, pc, _ in self.t.path_ends if pc == slot]
            fires = z3.Or(*conds) if conds else z3.BoolVal(False)
            packet = None
            if solver.check(fires) == z3.sat:
                model = solver.model()
                length = self.inputs.packet_len
                if length is None and self.p.packet_len is not None:
                    length = model.eval(self.p.packet_len, model_completion=True).as_long()
                packet = bytes(model.eval(z3.Select(self.p.memory0, PACKET_BASE +
                                                    PACKET_HEADROOM + k),
                                          model_completion=True).as_long()
                               for k in range(length or 0))
            if packet is None:
                how = "never"
            elif solver.check(fires, z3.Not(unsafe)) == z3.unsat:
                how = "always"
            elif solver.check(fires, unsafe) == z3.unsat:
                how = "never"
            else:
                how = "sometimes"
            out.append(AbortSite(slot, packet is not None, packet, how))
        return out

    def properties(self) -> list[tuple[str, Any]]:
        """(property, a condition under which it differs). Memory is compared only where
        either program wrote: elsewhere both still hold the initial bytes, and a handful
        of addresses is far easier on Z3 than "some index i" over whole regions."""
        p, t = self.p, self.t
        out = [("fault", _faults_beyond(t.fault, p.fault)), ("r0", _differ(p.r0, t.r0))]
        if p.packet_len is not None:
            data = z3.BitVecVal(PACKET_BASE + PACKET_HEADROOM, 64) if p.data is None else p.data
            # where data is at exit (bpf_xdp_adjust_head moves it): compared only when a
            # program may have moved it
            moved = [] if t.data is None or data.eq(t.data) else [data != t.data]
            out.append(("packet", z3.Or(*moved, p.data_end != t.data_end, *self._written_differ(
                tag_of(PACKET_BASE), lambda a: z3.And(z3.ULE(data, a), z3.ULT(a, p.data_end))))))
        maps = self._written_differ(tag_of(MAP_BASE), self._in_array_value)
        for area in p.hashes.values():
            maps += self._hash_differ(area)
        if self.map_state.maps:
            out.append(("maps", z3.Or(*maps)))
        if self.layout is not None:
            size = self.layout.size
            out.append(("ctx", z3.Or(*self._written_differ(tag_of(CTX_BASE), lambda a: z3.And(
                z3.ULE(CTX_BASE, a), z3.ULT(a, CTX_BASE + size))))))
        out.append(("calls", self._calls_differ()))
        return out

    def _in_array_value(self, a: Any) -> Any:
        arrays = [m for m in self.map_state.maps if m.type in ARRAY_TYPES and m.entries]
        if z3.is_bv_value(a):  # the common case: look the region up instead of asking Z3
            region = self.map_state.memory.region_at(a.as_long())
            return z3.BoolVal(any(region in m.entries.values() for m in arrays))
        shift = MAP_STRIDE.bit_length() - 1
        low = z3.ZeroExt(64 - shift, z3.Extract(shift - 1, 0, a))
        out = []
        for m in arrays:  # values MAP_STRIDE apart from the first one's
            base = m.entries[(0).to_bytes(4, "little")].base
            out.append(z3.And(z3.ULE(base, a), z3.ULT(a, base + len(m.entries) * MAP_STRIDE),
                              z3.ULT(low, m.value_size)))
        return z3.Or(*out)

    def state_differs(self) -> Any:
        """Loop pairing: a path ends at a cut point (not an exit) with any byte either
        program wrote different (the stack included)."""
        at_cut = z3.Extract(767, 704, self.p.r0) != z3.BitVecVal(-1, 64)
        return z3.And(at_cut, z3.Or(*[self._at(self.p.mem, a) != self._at(self.t.mem, a)
                                      for a in self._written(None)]))

    def _at(self, mem: Any, addr: Any) -> Any:
        return self.addresses.read(mem, z3.simplify(addr))

    def _written(self, tag: int | None) -> list[Any]:
        """Addresses either program wrote that may lie in the region tagged `tag` (None:
        all of them)."""
        seen: dict[int, Any] = {}
        for a, where in self.p.written + self.t.written:
            if tag is None or where is None or where == tag:
                seen.setdefault(a.get_id(), a)
        return list(seen.values())

    def _written_differ(self, tag: int, inside: Any) -> list[Any]:
        if self.p.mem.eq(self.t.mem):  # the same memory at every exit: no byte differs
            return []
        out = []
        for a in self._written(tag):
            ours, theirs = self._at(self.p.mem, a), self._at(self.t.mem, a)
            if not ours.eq(theirs):  # the same term: equal on every input
                out.append(z3.And(inside(a), ours != theirs))
        return out

    def _hash_differ(self, area: HashArea) -> list[Any]:
        """A slot is present in one program's map and not in the other's, or present in
        both with a different value byte."""
        if self.p.mem.eq(self.t.mem):
            return []
        out = []
        shift = area.shift
        for a in self._written(area.base >> 28):
            inside = z3.Extract(63, 32 + shift, a) == area.base >> (32 + shift)
            flag = z3.Concat(z3.Extract(63, shift, a), z3.BitVecVal(area.stride - 1, shift))
            here = self._at(self.p.mem, flag) != 0
            there = self._at(self.t.mem, flag) != 0
            value = z3.And(here, z3.ULT(z3.Extract(shift - 1, 0, a), area.value_size),
                           self._at(self.p.mem, a) != self._at(self.t.mem, a))
            out.append(z3.And(inside, z3.Or(here != there, value)))
        return out

    def _calls_differ(self) -> Any:
        """The k-th helper call differs on some input: its id, an argument (as a value) or
        a byte it sends out (a ring buffer record)."""
        none = z3.BitVecVal(-1, 64)
        no_byte = z3.BitVecVal(0x100, 9)  # past the end of a call's output

        def column(ends: list, k: int, part: int | str) -> Any:
            if isinstance(part, str):  # output byte int(part)
                j = int(part)
                term = no_byte
            else:
                term = none if part < 0 else z3.BitVecVal(0, 64)
            for cond, _, trace in ends:
                if k >= len(trace):
                    continue
                call = trace[k]
                if isinstance(part, str):
                    out = call.output
                    value = z3.ZeroExt(1, out[j]) if j < len(out) else no_byte
                elif part < 0:
                    value = z3.BitVecVal(call.helper, 64)
                elif part < helper_arg_count(call.helper):
                    value = call.args[part]
                else:
                    value = z3.BitVecVal(0, 64)
                if not value.eq(term):  # If(c, x, x) is x
                    term = z3.If(cond, value, term)
            return term

        ends = self.p.path_ends + self.t.path_ends
        longest = max((len(tr) for _, _, tr in ends), default=0)
        differ = []
        for k in range(longest):
            sent = max((len(tr[k].output) for _, _, tr in ends if k < len(tr)), default=0)
            for part in [*range(-1, 5), *(str(j) for j in range(sent))]:
                ours, theirs = column(self.p.path_ends, k, part), column(self.t.path_ends, k, part)
                if not ours.eq(theirs):
                    differ.append(ours != theirs)
        return z3.Or(*differ) if differ else z3.BoolVal(False)

    def solve(self, differ: Any, seconds: float) -> Any:
        """sat (with `self.model`), unsat or unknown for `differ` within `seconds`.

        A disjunction of many independent differences (one per written address) is asked
        in groups of disjuncts that double in size while Z3 answers unsat (up to GROUP_MAX):
        a group is one query where single disjuncts would each repeat the work they share
        (the path conditions), and the whole disjunction can make Z3 give up. A group Z3
        gives up on is asked one disjunct at a time. This first round gives each group a
        share of the time in proportion to its size, so that one hard disjunct does not
        hide an easy sat one; the hard ones share what is left."""
        if z3.is_false(differ):
            return z3.unsat
        deadline = time.perf_counter() + seconds
        parts = differ.children() if z3.is_or(differ) and differ.num_args() > SPLIT_OR \
            else [differ]
        hard = []

        def ask(group: list[Any], remaining: int) -> Any:
            """One query for `group` within its share of the time; None when out of time."""
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            share = left * len(group) / remaining
            query = group[0] if len(group) == 1 else z3.Or(*group)
            return self._check(query, min(left, max(share, FIRST_ROUND_MIN)))

        k, size = 0, 1
        while k < len(parts):
            group = parts[k:k + size]
            answer = ask(group, len(parts) - k)
            if answer is None:
                return z3.unknown
            if answer == z3.sat:
                return z3.sat
            if answer == z3.unknown:
                for j, part in enumerate(group if len(group) > 1 else ()):
                    answer = ask([part], len(parts) - k - j)
                    if answer is None:
                        return z3.unknown
                    if answer == z3.sat:
                        return z3.sat
                    if answer == z3.unknown:
                        hard.append(part)
                if len(group) == 1:
                    hard.append(group[0])
                size = 1
            else:
                size = min(2 * size, GROUP_MAX)
            k += len(group)
        for part in hard:  # one after the other, each with all the time left
            left = deadline - time.perf_counter()
            answer = self._check(part, left) if left > 0 else z3.unknown
            if answer != z3.unsat:
                return answer
        return z3.unsat

    def _check(self, part: Any, seconds: float) -> Any:
        """`part` with the shared facts, on the portfolio solver (solver.py says why)."""
        answer = self.solver.check(part, seconds=seconds)
        if answer == z3.sat:
            self.model = self.solver.model()
            self._shorten(part)
            self._mem0 = None
        return answer

    def _shorten(self, part: Any) -> None:
        """Prefer a model of `part` the interpreter can replay (no map full: replays have
        room) and then the shortest packet that still shows the difference (a smaller
        report)."""
        held = [part]
        prefer = [z3.Not(c) for c in self.p.choices + self.t.choices]
        start = z3.BitVecVal(PACKET_BASE + PACKET_HEADROOM, 64)
        if any(r.data is not None and not r.data.eq(start) for r in (self.p, self.t)):
            # bpf_xdp_adjust_head uncovered headroom: the interpreter's holds zeros
            prefer += [z3.Select(self.p.memory0, z3.BitVecVal(PACKET_BASE + k, 64)) == 0
                       for k in range(PACKET_HEADROOM)]
        if prefer and self.solver.check(*held, *prefer) == z3.sat:
            self.model = self.solver.model()
            held += prefer
        length = self.p.packet_len
        if length is not None and not z3.is_bv_value(length):
            for bound in (ETH_HLEN, 32, 64, 128, 256, 512, 1024):
                if self.solver.check(*held, z3.ULE(length, bound)) == z3.sat:
                    self.model = self.solver.model()
                    break

    # ------------------------------------------------------------ counterexamples

    def _bytes(self, base: int, size: int) -> bytes:
        """Initial memory bytes from the model (read off its Store chain when it is one:
        thousands of separate evaluations would dominate a counterexample's cost)."""
        if self._mem0 is None:
            self._mem0 = _array_bytes(self.model.eval(self.p.memory0, model_completion=True))
        known = self._mem0
        if known is not None:
            entries, default = known
            return bytes(entries.get(base + k, default) for k in range(size))
        mem0 = self.p.memory0
        return bytes(self.model.eval(z3.Select(mem0, base + k), model_completion=True).as_long()
                     for k in range(size))

    def _hash_contents(self, area: HashArea) -> dict[bytes, bytes]:
        """The initial entries of a hash map, for the keys either program looks up."""
        out: dict[bytes, bytes] = {}
        for name, key in self.p.keys + self.t.keys:
            if name != area.map_name:
                continue
            slot = area.slot(self.model.eval(key, model_completion=True))
            value = self.model.eval(slot.value, model_completion=True).as_long()
            flag = self.model.eval(slot.flag, model_completion=True).as_long()
            raw = self.model.eval(slot.key, model_completion=True).as_long()
            if self._initial(flag) != 0:
                out[raw.to_bytes(area.key_size, "little")] = bytes(
                    self._initial(value + i) for i in range(area.value_size))
        return out

    def _initial(self, addr: int) -> int:
        """An initial byte outside the regions (hash areas have an array of their own)."""
        return self.model.eval(z3.Select(self.p.start, z3.BitVecVal(addr, 64)),
                               model_completion=True).as_long()

    def _unwritten(self, run: SymbolicResult) -> dict[tuple[int, int], int]:
        """What the model chose for each read of a never-written register (the first read
        at a slot where a loop reads one more than once)."""
        out: dict[tuple[int, int], int] = {}
        for slot, n, value in run.unwritten:
            out.setdefault((slot, n), self.model.eval(value, model_completion=True).as_long())
        return out

    def counterexample(self, original: list[Insn], transformed: list[Insn]) -> Counterexample:
        # what the never-written stack bytes held in the model, for each call depth
        stacks = [self._bytes(STACK_BASE + k * STACK_STRIDE, STACK_SIZE)
                  for k in range(MAX_CALL_FRAMES)]
        length = self.inputs.packet_len
        if length is None and self.p.packet_len is not None:
            length = self.model.eval(self.p.packet_len, model_completion=True).as_long()
        packet = self._bytes(PACKET_BASE + PACKET_HEADROOM, length or 0)
        ctx = self._bytes(CTX_BASE, self.layout.size) if self.layout is not None else b""
        contents: dict[str, dict[bytes, bytes]] = {}
        specs = []
        for spec, state in zip(self.inputs.maps, self.map_state.maps, strict=True):
            if spec.type in ARRAY_TYPES:
                contents[spec.name] = {key: self._bytes(r.base, len(r.data))
                                       for key, r in state.entries.items()}
            elif spec.name in self.p.hashes:
                contents[spec.name] = self._hash_contents(self.p.hashes[spec.name])
            else:
                contents[spec.name] = dict(spec.contents)
            specs.append(MapSpec(spec.name, spec.type, spec.key_size, spec.value_size,
                                 spec.max_entries, contents[spec.name]))
        # what the first ring buffer records held before the programs wrote them
        records = {RINGBUF_BASE + n * RECORD_STRIDE: self._bytes(RINGBUF_BASE + n *
                                                                 RECORD_STRIDE, MAX_RECORD)
                   for n in range(REPLAY_RECORDS)}
        a = replay(original, self.inputs.prog_type, packet, ctx, specs, stacks, records,
                   self.model, self._unwritten(self.p))
        b = replay(transformed, self.inputs.prog_type, packet, ctx, specs, stacks, records,
                   self.model, self._unwritten(self.t))
        return Counterexample(packet, ctx, contents, a, b, a != b)


def _differ(a: Any, b: Any) -> Any:
    """`a != b`, False at once when they are the same term (programs that compute the same
    values in other registers give the same terms: Z3 need not see them)."""
    return z3.BoolVal(False) if a.eq(b) else a != b


def _faults_beyond(t_fault: Any, p_fault: Any) -> Any:
    """The transformed program's fault condition without the disjuncts that are also the
    original's: the checks assume the original does not fault, so those cannot hold."""
    ours = {c.get_id() for c in (p_fault.children() if z3.is_or(p_fault) else [p_fault])}
    parts = t_fault.children() if z3.is_or(t_fault) else [t_fault]
    left = [c for c in parts if c.get_id() not in ours]
    if len(left) == len(parts):
        return t_fault
    return z3.Or(*left) if left else z3.BoolVal(False)


def _array_bytes(term: Any) -> tuple[dict[int, int], int] | None:
    """A model's array as explicit entries and a default, when it is `Store(...K(d)...)`."""
    entries: dict[int, int] = {}
    while z3.is_app_of(term, z3.Z3_OP_STORE):
        index, value = term.arg(1), term.arg(2)
        if not (z3.is_bv_value(index) and z3.is_bv_value(value)):
            return None
        entries.setdefault(index.as_long(), value.as_long())  # the outermost store wins
        term = term.arg(0)
    if z3.is_app_of(term, z3.Z3_OP_CONST_ARRAY) and z3.is_bv_value(term.arg(0)):
        return entries, term.arg(0).as_long()
    return None
