"""Ask Z3 whether a condition can hold when a program reaches an instruction.

    w = can_hold(insns, inputs, at=12, condition=lambda s: z3.UGT(s.reg(3), 16))
    if w is not None: w.packet  # an input that reaches slot 12 with r3 > 16

For passes and repairs: "can this access be out of bounds?", "can this
divisor be zero?". The condition sees the state before the instruction
runs: registers (`reg(n)`, 64-bit Z3 terms; reading one the program never
wrote raises) and memory (`load(addr, size)`). The answer covers every path
to the instruction within the unroll bound; `None` means no input can make
it hold there, and `UnknownAnswer` is raised when Z3 or the bound could not
decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import z3

from epass.isa import Insn
from epass.semantics import step as st
from epass.semantics.memory import PACKET_BASE, PACKET_HEADROOM, MemoryFault
from epass.semantics.symbolic import ETH_HLEN, MAX_PACKET, PathState, SymbolicEnv, run_symbolic
from epass.smt.prove import DEFAULT_UNROLL, MAX_TOTAL_STEPS, ProofInputs


class UnknownAnswer(Exception):
    """Z3 timed out, the unroll bound was reached, or the program uses something
    the encoding has no model for."""


@dataclass(frozen=True)
class PointState:
    """One path's state at the instruction, for writing conditions."""

    path: PathState

    def reg(self, n: int) -> Any:
        value = self.path.regs[n]
        if value is None:
            raise UnknownAnswer(f"r{n} is not initialized on a path to the instruction")
        return value

    def load(self, addr: Any, size: int) -> Any:
        value = z3.Select(self.path.mem, addr)
        for i in range(1, size):
            value = z3.Concat(z3.Select(self.path.mem, addr + i), value)
        return value


@dataclass(frozen=True)
class Witness:
    packet: bytes  # the packet that leads there with the condition true (shortest found)


def can_hold(insns: list[Insn], inputs: ProofInputs, at: int,
             condition: Callable[[PointState], Any], *, timeout: float = 30.0,
             unroll: int = DEFAULT_UNROLL) -> Witness | None:
    """An input on which the program reaches slot `at` with `condition` true, or None."""
    env = SymbolicEnv(prog_type=inputs.prog_type, packet_len=inputs.packet_len,
                      maps=inputs.maps, max_steps=unroll * len(insns),
                      max_total_steps=MAX_TOTAL_STEPS, observe=at, strict_helpers=True)
    try:
        result = run_symbolic(insns, env)
    except (st.Unsupported, MemoryFault) as e:
        raise UnknownAnswer(str(e)) from None
    if not result.complete:
        raise UnknownAnswer(f"a path runs past the unroll bound ({unroll})")
    # faults before the instruction rule an input out; faults at it or later do not
    holds = z3.Or(*[z3.And(p.cond, z3.Not(p.fault), condition(PointState(p)))
                    for p in result.observed]) if result.observed else z3.BoolVal(False)
    solver = z3.Solver()
    solver.set("timeout", int(timeout * 1000))
    length = result.packet_len
    if length is not None and not z3.is_bv_value(length):
        solver.add(z3.ULE(ETH_HLEN, length), z3.ULE(length, MAX_PACKET))
    solver.add(holds)
    outcome = solver.check()
    if outcome == z3.unknown:
        raise UnknownAnswer(f"Z3 gave up (timeout {timeout:g} s)")
    if outcome == z3.unsat:
        return None
    for bound in (ETH_HLEN, 64, 256, 1024, MAX_PACKET):  # prefer a short packet
        if length is None or z3.is_bv_value(length) or \
                solver.check(z3.ULE(length, bound)) == z3.sat:
            break
    model = solver.model()
    n = model.eval(length, model_completion=True).as_long() if length is not None else 0
    data = PACKET_BASE + PACKET_HEADROOM
    return Witness(bytes(model.eval(z3.Select(result.memory0, data + k),
                                    model_completion=True).as_long() for k in range(n)))
