"""What each ALU, byte-swap, jump and atomic operation computes, written once.

Every function takes a `Domain` `d` and 64-bit register values, so the same
code runs on Python integers (the interpreter) and on Z3 terms (proofs).
The Linux rules (kernel/bpf/core.c, RFC 9669):

- ALU32 operates on the low 32 bits and zero-extends the result;
- shift amounts are masked to the operand width (`& 63`, `& 31`);
- x / 0 == 0 and x % 0 == x, signed and unsigned, 32 and 64 bit;
- INT_MIN s/ -1 == INT_MIN and INT_MIN s% -1 == 0 (two's complement wrap);
- signed modulo takes the sign of the dividend;
- JMP32 compares the low 32 bits.
"""

from __future__ import annotations

from typing import Any

from epass.isa.opcodes import AluOp, AtomicOp, EndianKind, JmpOp
from epass.semantics.domain import Domain


def imm64(d: Domain, imm: int) -> Any:
    """A 32-bit immediate as a 64-bit operand: sign-extended, as the kernel does."""
    return d.const(imm, 64)


def alu(d: Domain, op: AluOp, bits: int, dst: Any, src: Any) -> Any:
    """The new 64-bit value of dst for `dst op= src` on `bits` (64 or 32)."""
    a = dst if bits == 64 else d.extract(31, 0, dst)
    b = src if bits == 64 else d.extract(31, 0, src)
    zero = d.const(0, bits)
    match op:
        case AluOp.ADD:
            r = d.add(a, b)
        case AluOp.SUB:
            r = d.sub(a, b)
        case AluOp.MUL:
            r = d.mul(a, b)
        case AluOp.DIV:
            r = d.ite(d.eq(b, zero), zero, d.udiv(a, b))
        case AluOp.SDIV:
            r = d.ite(d.eq(b, zero), zero, d.sdiv(a, b))
        case AluOp.MOD:
            r = d.ite(d.eq(b, zero), a, d.urem(a, b))
        case AluOp.SMOD:
            r = d.ite(d.eq(b, zero), a, d.srem(a, b))
        case AluOp.OR:
            r = d.or_(a, b)
        case AluOp.AND:
            r = d.and_(a, b)
        case AluOp.XOR:
            r = d.xor(a, b)
        case AluOp.LSH:
            r = d.shl(a, d.and_(b, d.const(bits - 1, bits)))
        case AluOp.RSH:
            r = d.lshr(a, d.and_(b, d.const(bits - 1, bits)))
        case AluOp.ARSH:
            r = d.ashr(a, d.and_(b, d.const(bits - 1, bits)))
        case AluOp.NEG:
            r = d.neg(a)
        case AluOp.MOV:
            r = b
        case AluOp.MOVSX8:
            r = d.sext(d.extract(7, 0, b), bits)
        case AluOp.MOVSX16:
            r = d.sext(d.extract(15, 0, b), bits)
        case AluOp.MOVSX32:
            r = d.sext(d.extract(31, 0, b), bits)
        case _:
            raise ValueError(op)
    return r if bits == 64 else d.zext(r, 64)


def _bswap(d: Domain, a: Any, bits: int) -> Any:
    """Reverse the bytes of the low `bits` of a; result zero-extended to 64."""
    out = d.extract(7, 0, a)
    for i in range(1, bits // 8):
        out = d.concat(out, d.extract(8 * i + 7, 8 * i, a))
    return d.zext(out, 64)


def endian(d: Domain, kind: EndianKind, bits: int, dst: Any) -> Any:
    """`dst = le16 dst` and friends on a little-endian machine: le truncates, be and bswap swap."""
    if kind == EndianKind.LE:
        return d.zext(d.extract(bits - 1, 0, dst), 64)
    return _bswap(d, dst, bits)


def condition(d: Domain, op: JmpOp, bits: int, a: Any, b: Any) -> Any:
    """Whether `if a op b` jumps; JMP32 compares the low halves."""
    if bits == 32:
        a, b = d.extract(31, 0, a), d.extract(31, 0, b)
    match op:
        case JmpOp.EQ:
            return d.eq(a, b)
        case JmpOp.NE:
            return d.not_(d.eq(a, b))
        case JmpOp.GT:
            return d.ult(b, a)
        case JmpOp.GE:
            return d.ule(b, a)
        case JmpOp.LT:
            return d.ult(a, b)
        case JmpOp.LE:
            return d.ule(a, b)
        case JmpOp.SGT:
            return d.slt(b, a)
        case JmpOp.SGE:
            return d.sle(b, a)
        case JmpOp.SLT:
            return d.slt(a, b)
        case JmpOp.SLE:
            return d.sle(a, b)
        case JmpOp.SET:
            return d.not_(d.eq(d.and_(a, b), d.const(0, d.bits(a))))
    raise ValueError(op)


def load_extend(d: Domain, value: Any, signed: bool) -> Any:
    """A loaded value of 1-8 bytes as a 64-bit register: zero- or sign-extended."""
    return d.sext(value, 64) if signed else d.zext(value, 64)


def atomic_new_value(d: Domain, op: AtomicOp, old: Any, src: Any) -> Any:
    """The value an atomic read-modify-write stores, from the old memory value and src.

    Both are of the access width; CMPXCHG is handled by the caller (it compares with r0).
    """
    match op:
        case AtomicOp.ADD | AtomicOp.FETCH_ADD:
            return d.add(old, src)
        case AtomicOp.OR | AtomicOp.FETCH_OR:
            return d.or_(old, src)
        case AtomicOp.AND | AtomicOp.FETCH_AND:
            return d.and_(old, src)
        case AtomicOp.XOR | AtomicOp.FETCH_XOR:
            return d.xor(old, src)
        case AtomicOp.XCHG:
            return src
    raise ValueError(op)
