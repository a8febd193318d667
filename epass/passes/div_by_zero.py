"""div_by_zero: abort instead of dividing by a divisor that is zero.

eBPF defines division by zero (the quotient is 0, the remainder the
dividend), so the verifier allows it; a program that divides by zero has
almost always a bug. Every DIV/MOD (signed or not, 32 or 64 bits) whose
divisor is a register gets a check before it; a constant divisor needs none.
"""

from __future__ import annotations

from epass.ir.builder import Builder
from epass.ir.model import Alu, Module, Value
from epass.isa.opcodes import AluOp, JmpOp
from epass.passes.registry import Option, Pass, register

DIVISIONS = (AluOp.DIV, AluOp.SDIV, AluOp.MOD, AluOp.SMOD)


def run(module: Module, options: dict[str, int]) -> None:
    for func in module.functions:
        for inst in list(func.instructions()):
            if isinstance(inst, Alu) and inst.op in DIVISIONS and \
                    isinstance(inst.operands[1], Value):
                # a 32-bit division only looks at the low half of the divisor
                Builder.before(inst).guard(JmpOp.EQ, inst.operands[1], 0,
                                           code=options["code"], bits=inst.bits)


register(Pass(
    name="div_by_zero",
    kind="safety",
    round="final",
    description="abort when a DIV or MOD is about to divide by zero",
    run=run,
    options=(Option("code", 0, "the return value when the check fires"),),
))
