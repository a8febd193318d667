"""zext: remove `<<32 >>32` zero-extension pairs, or narrow them to `mov.32`.

Without ALU32 (-mcpu=v2) clang zero-extends a 32-bit value with
`r <<= 32; r >>= 32`. For `%c = rsh (lsh %x, 32), 32` (64-bit; 64-bit
copies of %x and between the shifts looked through):

- when %x is known zero-extended, %c's readers read %x and the pair goes;
- otherwise the pair becomes `%c = mov.32 %x` (one instruction; ALU32 is in
  every eBPF version, so a v2 program stays loadable where it was).

Known zero-extended are only facts the verifier tracks itself, so no bound
it relied on is lost: a 32-bit ALU result, an unsigned load of 1, 2 or 4
bytes, `mov` of an immediate >= 0 (or an lddw below 2^32), a 64-bit copy,
`and` or `rsh` of a known one, `and` with an immediate >= 0, `or` of two
known ones, `rsh` by 32 or more. Block parameters and call results count as
unknown (the verifier widens in some loops; callees are not analysed).

The sign-extending pair `arsh (lsh %x, 32), 32` goes only when %x is known
sign-extended from 32 bits (a signed load of up to 4 bytes, movsx, a mov
of an immediate); it never becomes `movsx32`, which needs cpu v4.

Copies are not forwarded in general: a copy splits a live range (around a
call, say) and the register allocator uses it; forwarding every copy made 2
of the 84 test programs shorter and 5 longer. Only copies feeding a pair are
looked through, which turns `r1 = r0; r1 <<= 32; r1 >>= 32` into
`w1 = w0`. See docs/passes/zext.md.
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.analysis import remove_dead_values, replace
from epass.ir.model import Function, Module, Value
from epass.isa.opcodes import AluOp
from epass.passes.registry import Pass, register

SIGN_EXTENDING = (AluOp.MOVSX8, AluOp.MOVSX16, AluOp.MOVSX32)


def _alu(op: ir.Operand, *ops: AluOp) -> ir.Alu | None:
    """The 64-bit ALU instruction defining op, if it is one of ops."""
    d = op.definition if isinstance(op, Value) else None
    return d if isinstance(d, ir.Alu) and d.bits == 64 and d.op in ops else None


def _source(op: ir.Operand) -> ir.Operand:
    """op with 64-bit copies looked through."""
    while (d := _alu(op, AluOp.MOV)) is not None and isinstance(d.operands[0], Value):
        op = d.operands[0]
    return op


def zero_extended(op: ir.Operand, depth: int = 0) -> bool:
    """Whether the upper 32 bits of op are zero, in a way the verifier also sees."""
    if isinstance(op, int):
        return op >= 0  # immediates are sign-extended
    d = op.definition if isinstance(op, Value) else None
    if depth > 16 or d is None or isinstance(d, ir.Block):
        return False
    if isinstance(d, ir.Alu) and d.bits == 32 or isinstance(d, ir.Load) and \
            not d.signed and d.size <= 4:
        return True
    if isinstance(d, ir.LoadImm):
        return d.value >> 32 == 0
    if not isinstance(d, ir.Alu):
        return False
    a, b = d.operands[0], d.operands[-1]
    match d.op:
        case AluOp.MOV:
            return zero_extended(a, depth + 1)
        case AluOp.AND:
            return zero_extended(a, depth + 1) or zero_extended(b, depth + 1)
        case AluOp.OR:
            return zero_extended(a, depth + 1) and zero_extended(b, depth + 1)
        case AluOp.RSH:
            return isinstance(b, int) and b & 63 >= 32 or zero_extended(a, depth + 1)
    return False


def sign_extended(op: ir.Operand) -> bool:
    """Whether op equals its low 32 bits sign-extended, in a way the verifier also sees."""
    op = _source(op)
    d = op.definition if isinstance(op, Value) else None
    imm = d.operands[0] if isinstance(d, ir.Alu) and d.op == AluOp.MOV else None
    return isinstance(d, ir.Load) and d.signed and d.size <= 4 or \
        _alu(op, *SIGN_EXTENDING) is not None or \
        isinstance(imm, int) and (d.bits == 64 or imm >= 0)  # mov.32 zero-extends


def _pair(inst: ir.Alu) -> Value | None:
    """x, when inst is `rsh|arsh (lsh x, 32), 32` (64-bit)."""
    if inst.bits != 64 or inst.operands[1] != 32:
        return None
    shl = _alu(_source(inst.operands[0]), AluOp.LSH)
    x = _source(shl.operands[0]) if shl is not None and shl.operands[1] == 32 else None
    return x if isinstance(x, Value) else None


def narrow(func: Function) -> None:
    for inst in list(func.instructions()):
        if not isinstance(inst, ir.Alu) or inst.op not in (AluOp.RSH, AluOp.ARSH):
            continue
        x, res = _pair(inst), inst.result
        if x is None or res is None:
            continue
        if zero_extended(x) if inst.op == AluOp.RSH else sign_extended(x):
            res.replace_all_uses(x)
        elif inst.op == AluOp.RSH:
            replace(inst, ir.Alu(AluOp.MOV, 32, [x], res))


def run(module: Module, options: dict[str, int]) -> None:
    for func in module.functions:
        narrow(func)
        remove_dead_values(func)


register(Pass(name="zext", kind="optimization", round="final",
              description="remove <<32 >>32 zero-extension pairs or narrow them to mov.32",
              run=run))
