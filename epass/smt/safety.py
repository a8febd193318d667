"""Can a program perform an unsafe operation on some input? The repair engine's first
question about a rejected program.

    w = find_fault(insns, inputs)   # None: no input makes any access leave its region
    w.packet, w.run["fault"]        # an input that does, and the interpreter's replay

An access outside its region (stack, packet, context, map value, a NULL or
made-up pointer) is a fault in the semantics (epass/semantics): the symbolic
run collects, over every path, the condition under which one happens. A
witness is replayed on the interpreter with the model's world (map contents,
helper results, stack bytes); it is `confirmed` when the replay faults too.
A fault on any path followed, cut off by the bounds or not, is an answer; "no
fault" covers every path within the unroll bound, and a path past it raises
UnknownAnswer instead, as does Z3 giving up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import z3

from epass.isa import Insn
from epass.semantics import step as st
from epass.semantics.memory import MemoryFault
from epass.semantics.symbolic import ETH_HLEN, MAX_PACKET, SymbolicEnv, run_symbolic
from epass.smt.prove import (
    DEFAULT_UNROLL,
    MAX_TOTAL_STEPS,
    ProofInputs,
    _Checks,
    distinct_keys,
)
from epass.smt.query import UnknownAnswer
from epass.smt.solver import PortfolioSolver


@dataclass
class FaultWitness:
    packet: bytes
    ctx: bytes
    maps: dict[str, dict[bytes, bytes]]  # initial contents
    run: dict[str, Any]  # the interpreter's replay: r0, packet, maps, fault
    confirmed: bool  # the replay faults as well


def find_fault(insns: list[Insn], inputs: ProofInputs, *, timeout: float = 30.0,
               unroll: int = DEFAULT_UNROLL,
               max_total_steps: int = MAX_TOTAL_STEPS) -> FaultWitness | None:
    """An input on which the program makes an access outside its region, or None.
    `max_total_steps` bounds the symbolic run over all paths (past it: UnknownAnswer)."""
    env = SymbolicEnv(prog_type=inputs.prog_type, packet_len=inputs.packet_len,
                      maps=inputs.maps, max_steps=unroll * len(insns),
                      max_total_steps=max_total_steps, strict_helpers=True)
    try:
        result = run_symbolic(insns, env)
    except (st.Unsupported, MemoryFault) as e:
        raise UnknownAnswer(str(e)) from None
    checks = _Checks(result, result, inputs, timeout)
    # the prover's solver assumes the verifier kept faulting inputs away: not here
    checks.solver = PortfolioSolver(int(timeout * 1000))
    if result.packet_len is not None and not z3.is_bv_value(result.packet_len):
        checks.solver.add(z3.ULE(ETH_HLEN, result.packet_len),
                          z3.ULE(result.packet_len, MAX_PACKET))
    checks.solver.add(*distinct_keys(result, result))
    # a fault on a path the bounds cut off is a fault all the same (its condition is
    # exact up to where the path stopped); only "no fault" needs every path
    answer = checks.solve(result.fault, timeout)
    if answer == z3.unknown:
        raise UnknownAnswer(f"Z3 gave up (timeout {timeout:g} s)")
    if answer == z3.unsat:
        if not result.complete:
            raise UnknownAnswer(f"a path runs past the unroll bound ({unroll}) or the paths "
                                f"past {max_total_steps} steps in all")
        return None
    cex = checks.counterexample(insns, insns)
    return FaultWitness(cex.packet, cex.ctx, cex.maps, cex.original,
                        cex.original.get("fault") is not None)
