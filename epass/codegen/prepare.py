"""Make the calling convention explicit before register allocation.

Some operands and results must sit in particular registers: call arguments
in r1-r5, results in r0, the value `exit` returns in r0, the context of a
legacy packet load in r6, cmpxchg's expected value in r0, a function's
arguments in r1-r5 at entry. For each, a copy to or from a new *fixed*
value is inserted; the allocator colours fixed values first and tries to
give the other side of each copy the same register, so for an untouched
program every such copy disappears again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from epass.ir import model as ir
from epass.ir.model import Function, Value
from epass.isa.opcodes import AluOp, AtomicOp

CALL_CLOBBERS = frozenset({0, 1, 2, 3, 4, 5})


@dataclass
class Constraints:
    """What `prepare` decided: fixed registers and the registers each instruction destroys."""

    fixed: dict[Value, int] = field(default_factory=dict)
    clobbers: dict[ir.Inst, frozenset[int]] = field(default_factory=dict)
    undef: set[Value] = field(default_factory=set)  # values nothing ever wrote
    no_spill: set[Value] = field(default_factory=set)  # reloads: spilling them again is no help


def _copy(func: Function, src: ir.Operand, reg: int | None) -> tuple[ir.Inst, Value]:
    v = func.new_value(reg)
    return ir.Alu(AluOp.MOV, 64, [src], v), v


def prepare(func: Function) -> Constraints:
    c = Constraints()
    for inst in list(func.instructions()):
        if isinstance(inst, ir.Undef) and inst.result is not None:
            c.undef.add(inst.result)
    _fix_args(func, c)
    for block in func.blocks:
        i = 0
        while i < len(block.insts):
            inst = block.insts[i]
            before, after = _fix(func, inst, c)
            for j, new in enumerate(before):
                block.insert(i + j, new)
            i += len(before)
            for j, new in enumerate(after):
                block.insert(i + 1 + j, new)
            i += 1 + len(after)
    return c


def _fix(func: Function, inst: ir.Inst, c: Constraints) -> tuple[list[ir.Inst], list[ir.Inst]]:
    """Copies to put before and after `inst` so its fixed operands and result are fixed values."""
    before: list[ir.Inst] = []
    after: list[ir.Inst] = []

    def operand_in(index: int, reg: int) -> None:
        op = inst.operands[index]
        if isinstance(op, Value) and op in c.undef:
            return  # nothing to move: the register holds garbage either way
        copy, v = _copy(func, op, reg)
        c.fixed[v] = reg
        before.append(copy)
        inst.set_operand(index, v)

    def result_in(reg: int) -> None:
        old = inst.result
        assert old is not None
        fixed = func.new_value(reg)
        fixed.definition = inst
        inst.result = fixed
        c.fixed[fixed] = reg
        copy = ir.Alu(AluOp.MOV, 64, [fixed], old)
        after.append(copy)

    match inst:
        case ir.Call():
            for k in range(len(inst.operands)):
                operand_in(k, k + 1)
            result_in(0)
            c.clobbers[inst] = CALL_CLOBBERS
        case ir.LoadPacket():
            operand_in(0, 6)
            result_in(0)
            c.clobbers[inst] = CALL_CLOBBERS
        case ir.Ret():
            operand_in(0, 0)
        case ir.Atomic(op=AtomicOp.CMPXCHG):
            operand_in(1, 0)
            result_in(0)
    return before, after


def _fix_args(func: Function, c: Constraints) -> None:
    """Arguments are all in their registers from the start: define them first, then copy.

    Copying r1 away before r2's argument is read could overwrite it otherwise.
    """
    entry = func.entry
    args = [i for i in entry.insts if isinstance(i, ir.Arg)]
    for a in args:
        entry.insts.remove(a)
    copies = []
    for a in args:
        old = a.result
        assert old is not None
        fixed = func.new_value(a.index)
        fixed.definition = a
        a.result = fixed
        c.fixed[fixed] = a.index
        copies.append(ir.Alu(AluOp.MOV, 64, [fixed], old))
    for k, inst in enumerate(args + copies):
        entry.insert(k, inst)
