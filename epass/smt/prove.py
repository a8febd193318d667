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
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import z3

from epass.isa import Insn, format_insn
from epass.isa.helpers import helper_arg_count
from epass.semantics import step as st
from epass.semantics.ctx import layout_for
from epass.semantics.interp import Environment, MapSpec, RunResult, StepLimit, run
from epass.semantics.maps import ARRAY_TYPES, MapSet
from epass.semantics.memory import (
    CTX_BASE,
    PACKET_BASE,
    PACKET_HEADROOM,
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
    SymbolicEnv,
    SymbolicResult,
    run_symbolic,
)
from epass.uapi import ProgType

DEFAULT_UNROLL = 32  # each instruction at most this many times on a path
MAX_TOTAL_STEPS = 200_000  # over all paths of one program: past it the answer is UNKNOWN


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
          aborts: Sequence[int] = ()) -> ProofResult:
    """Decide whether `transformed` behaves like `original` on every input.

    `aborts`: slots of `transformed`'s exits that a pass inserted to abort; where one
    is reached the programs may differ, and the verdict is REFINES if one can be."""
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
                      max_total_steps=MAX_TOTAL_STEPS, strict_helpers=True)
    try:
        p = run_symbolic(original, env)
        t = run_symbolic(transformed, env)
    except (st.Unsupported, MemoryFault) as e:
        return done(Verdict.UNKNOWN, "unsupported", str(e))
    paths = (p.paths, t.paths)
    if not (p.complete and t.complete):
        return done(Verdict.UNKNOWN, "bound",
                    f"a path runs past the unroll bound ({unroll} times each instruction) "
                    f"or the paths past {MAX_TOTAL_STEPS} steps in all", paths)
    checks = _Checks(p, t, inputs, timeout)
    aborting = [c for c, pc, _ in t.path_ends if pc is not None and pc in set(aborts)]
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
            verdict = Verdict.NOT_EQUIVALENT if cex.confirmed else Verdict.UNKNOWN
            return done(verdict, prop, f"the {prop} check fails ({what})", paths, cex, sites)
    agree = "r0, faults, packet, maps, context and helper calls agree"
    firing = [s for s in sites if s.fires]
    if firing:
        return done(Verdict.REFINES, "all", f"{agree} wherever the transformed program does "
                    f"not abort; {len(firing)} abort site(s) can fire", paths, None, sites)
    return done(Verdict.EQUIVALENT, "all", f"{agree} on every input", paths, None, sites)


class _Checks:
    def __init__(self, p: SymbolicResult, t: SymbolicResult, inputs: ProofInputs,
                 timeout: float) -> None:
        self.p, self.t = p, t
        self.inputs = inputs
        self.timeout_ms = int(timeout * 1000)
        self.solver = z3.Solver()
        self.solver.set("timeout", self.timeout_ms)
        if p.packet_len is not None and not z3.is_bv_value(p.packet_len):
            self.solver.add(z3.ULE(ETH_HLEN, p.packet_len), z3.ULE(p.packet_len, MAX_PACKET))
        self.solver.add(z3.Not(p.fault))  # the verifier keeps such inputs away
        self.layout = layout_for(inputs.prog_type) if inputs.prog_type is not None else None
        maps = MapSet(Memory())  # the symbolic run's allocation: same value addresses
        for spec in inputs.maps:
            maps.add(spec.name, spec.type, spec.key_size, spec.value_size, spec.max_entries,
                     spec.contents)
        self.map_state = maps
        self._mem0: tuple[dict[int, int], int] | None = None

    def abort_sites(self, slots: list[int]) -> list[AbortSite]:
        """When each abort fires and whether the original was unsafe there (a solver of its
        own: inputs on which the original faults matter here)."""
        solver = z3.Solver()
        solver.set("timeout", self.timeout_ms)
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
        p, t = self.p, self.t
        out = [("fault", t.fault), ("r0", p.r0 != t.r0)]
        if p.packet_len is not None:
            i = z3.BitVec("packet_index", 64)
            data = PACKET_BASE + PACKET_HEADROOM
            out.append(("packet", z3.Or(p.data_end != t.data_end, z3.And(
                z3.ULT(i, p.data_end - data),
                z3.Select(p.mem, data + i) != z3.Select(t.mem, data + i)))))
        regions = [(r.base, len(r.data)) for m in self.map_state.maps
                   for r in m.entries.values()]
        if regions:
            out.append(("maps", self._differ(regions, "map_index")))
        if self.layout is not None:
            out.append(("ctx", self._differ([(CTX_BASE, self.layout.size)], "ctx_index")))
        out.append(("calls", self._calls_differ()))
        return out

    def _calls_differ(self) -> Any:
        """The k-th helper call (id and arguments, as values) differs on some input."""
        none = z3.BitVecVal(-1, 64)

        def column(ends: list, k: int, part: int) -> Any:
            term = none if part < 0 else z3.BitVecVal(0, 64)
            for cond, _, trace in ends:
                if k < len(trace):
                    ident, args = trace[k]
                    value = z3.BitVecVal(ident, 64) if part < 0 else \
                        (args[part] if part < helper_arg_count(ident) else z3.BitVecVal(0, 64))
                    term = z3.If(cond, value, term)
            return term

        longest = max((len(tr) for _, _, tr in self.p.path_ends + self.t.path_ends), default=0)
        differ = []
        for k in range(longest):
            for part in range(-1, 5):
                differ.append(column(self.p.path_ends, k, part) !=
                              column(self.t.path_ends, k, part))
        return z3.Or(*differ) if differ else z3.BoolVal(False)

    def _differ(self, regions: list[tuple[int, int]], name: str) -> Any:
        i = z3.BitVec(name, 64)
        return z3.Or(*[z3.And(z3.ULT(i, size),
                              z3.Select(self.p.mem, base + i) != z3.Select(self.t.mem, base + i))
                       for base, size in regions])

    def solve(self, differ: Any, seconds: float) -> Any:
        self.solver.set("timeout", max(1, int(seconds * 1000)))
        self.solver.push()
        self.solver.add(differ)
        outcome = self.solver.check()
        if outcome == z3.sat:
            self.model = self.solver.model()
            self._shorten()
            self._mem0 = None
        self.solver.pop()
        return outcome

    def _shorten(self) -> None:
        """Prefer the shortest packet that still shows the difference (a smaller report)."""
        length = self.p.packet_len
        if length is None or z3.is_bv_value(length):
            return
        for bound in (ETH_HLEN, 32, 64, 128, 256, 512, 1024):
            self.solver.push()
            self.solver.add(z3.ULE(length, bound))
            if self.solver.check() == z3.sat:
                self.model = self.solver.model()
                self.solver.pop()
                return
            self.solver.pop()

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
            else:
                contents[spec.name] = dict(spec.contents)
            specs.append(MapSpec(spec.name, spec.type, spec.key_size, spec.value_size,
                                 spec.max_entries, contents[spec.name]))
        a = _replay(original, self.inputs.prog_type, packet, ctx, specs, stacks)
        b = _replay(transformed, self.inputs.prog_type, packet, ctx, specs, stacks)
        return Counterexample(packet, ctx, contents, a, b, a != b)


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


def _replay(insns: list[Insn], prog_type: Any, packet: bytes, ctx: bytes,
            maps: list[MapSpec], stacks: list[bytes]) -> dict[str, Any]:
    env = Environment(prog_type=prog_type, packet=packet, ctx=ctx or None, stacks=stacks,
                      maps=[MapSpec(m.name, m.type, m.key_size, m.value_size, m.max_entries,
                                    dict(m.contents)) for m in maps])
    try:
        r: RunResult = run(insns, env)
    except (st.Unsupported, StepLimit) as e:
        return {"error": str(e)}
    return {"r0": r.r0, "packet": r.packet.hex(), "ctx": r.ctx.hex(),
            "calls": [[name, [f"{a:#x}" for a in args]] for name, args in r.helper_calls],
            "maps": {
        name: {k.hex(): v.hex() for k, v in entries.items()} for name, entries in r.maps.items()},
        "fault": None if r.fault is None else str(r.fault)}
