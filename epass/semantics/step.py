"""One instruction's effect on a machine, written once for every executor.

`step()` reads and writes registers and memory through the `Machine`
protocol and tells the caller where control goes next. The concrete
interpreter and the symbolic executor each implement `Machine`; they differ
only in how they follow a `Branch` (pick one side vs. explore both) and in
what a memory access or a helper call does with its values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from epass.isa import (
    Alu,
    Atomic,
    Call,
    CallKind,
    CallReg,
    Endian,
    Exit,
    Goto,
    Insn,
    Jump,
    Load,
    LoadImm64,
    LoadPacket,
    MayGoto,
    Store,
)
from epass.isa.opcodes import AluOp, AtomicOp, PacketMode
from epass.semantics import ops
from epass.semantics.domain import Domain


class Machine(Protocol):
    """What an executor provides to `step`. Addresses and values are domain values."""

    d: Domain

    def reg(self, n: int, index: int) -> Any: ...
    def set_reg(self, n: int, value: Any) -> None: ...
    def load(self, addr: Any, size: int, index: int) -> Any: ...
    def store(self, addr: Any, size: int, value: Any, index: int) -> None: ...
    def call_helper(self, helper_id: int, index: int) -> None: ...
    def pseudo_address(self, insn: LoadImm64, index: int) -> Any: ...
    def packet_load(self, offset: Any, size: int, index: int) -> Any: ...


@dataclass(frozen=True)
class Next:
    """Fall through to the next instruction."""


@dataclass(frozen=True)
class Goto_:
    """Jump unconditionally to slot `target`."""

    target: int


@dataclass(frozen=True)
class Branch:
    """Jump to `target` when `cond` holds, else fall through to `fallthrough`."""

    cond: Any
    target: int
    fallthrough: int


@dataclass(frozen=True)
class CallLocal:
    """Enter the subprogram at slot `target`; return to `ret`."""

    target: int
    ret: int


@dataclass(frozen=True)
class Return:
    """`exit`: return from the current frame (or the program, with r0)."""


@dataclass(frozen=True)
class MayGotoOut:
    """`may_goto`: the executor decides whether its loop budget is spent."""

    target: int
    fallthrough: int


Outcome = Next | Goto_ | Branch | CallLocal | Return | MayGotoOut


_MOVES = frozenset({AluOp.MOV, AluOp.MOVSX8, AluOp.MOVSX16, AluOp.MOVSX32})


class Unsupported(Exception):
    """An instruction the semantics does not give meaning to (callx)."""


def _operand(m: Machine, src: int | None, imm: int, index: int) -> Any:
    return m.reg(src, index) if src is not None else ops.imm64(m.d, imm)


def step(m: Machine, insn: Insn, index: int) -> Outcome:
    """Execute `insn` at slot `index`."""
    d = m.d
    match insn:
        case Alu(op=op, dst=dst, src=src, imm=imm, bits=bits):
            # moves do not read dst, which may not be initialized yet
            old = d.const(0, 64) if op in _MOVES else m.reg(dst, index)
            value = ops.alu(d, op, bits, old, _operand(m, src, imm, index))
            m.set_reg(dst, value)
            return Next()
        case Endian(kind=kind, dst=dst, bits=bits):
            m.set_reg(dst, ops.endian(d, kind, bits, m.reg(dst, index)))
            return Next()
        case Jump(op=op, dst=dst, off=off, src=src, imm=imm, bits=bits):
            cond = ops.condition(d, op, bits, m.reg(dst, index), _operand(m, src, imm, index))
            return Branch(cond, index + 1 + off, index + 1)
        case Goto(off=off):
            return Goto_(index + 1 + off)
        case MayGoto(off=off):
            return MayGotoOut(index + 1 + off, index + 1)
        case Load(size=size, dst=dst, src=src, off=off, signed=signed):
            addr = d.add(m.reg(src, index), ops.imm64(d, off))
            m.set_reg(dst, ops.load_extend(d, m.load(addr, size, index), signed))
            return Next()
        case Store(size=size, dst=dst, off=off, src=src, imm=imm):
            addr = d.add(m.reg(dst, index), ops.imm64(d, off))
            value = _operand(m, src, imm, index)
            m.store(addr, size, d.extract(8 * size - 1, 0, value), index)
            return Next()
        case Atomic():
            _atomic(m, insn, index)
            return Next()
        case LoadImm64():
            m.set_reg(insn.dst, m.pseudo_address(insn, index))
            return Next()
        case LoadPacket(mode=mode, size=size, imm=imm, src=src):
            offset = ops.imm64(d, imm)
            if mode == PacketMode.IND:
                offset = d.add(offset, m.reg(src, index))
            value = m.packet_load(offset, size, index)
            m.set_reg(0, d.zext(value, 64))
            return Next()
        case Call(kind=CallKind.LOCAL, imm=imm):
            return CallLocal(index + 1 + imm, index + 1)
        case Call(kind=CallKind.HELPER, imm=imm):
            m.call_helper(imm, index)
            return Next()
        case Call(kind=CallKind.KFUNC):
            raise Unsupported(f"insn {index}: kfunc calls have no model")
        case CallReg():
            raise Unsupported(f"insn {index}: callx (indirect call) has no model")
        case Exit():
            return Return()
    raise Unsupported(f"insn {index}: {insn!r}")


def _atomic(m: Machine, insn: Atomic, index: int) -> None:
    d, size, op = m.d, insn.size, insn.op
    bits = 8 * size
    if op == AtomicOp.LOAD_ACQUIRE:
        # dst_reg = *(src_reg + off): the Atomic keeps the wire's dst/src fields
        addr = d.add(m.reg(insn.src, index), ops.imm64(d, insn.off))
        m.set_reg(insn.dst, d.zext(m.load(addr, size, index), 64))
        return
    addr = d.add(m.reg(insn.dst, index), ops.imm64(d, insn.off))
    if op == AtomicOp.STORE_RELEASE:
        m.store(addr, size, d.extract(bits - 1, 0, m.reg(insn.src, index)), index)
        return
    old = m.load(addr, size, index)
    src = d.extract(bits - 1, 0, m.reg(insn.src, index))
    if op == AtomicOp.CMPXCHG:
        expected = d.extract(bits - 1, 0, m.reg(0, index))
        m.store(addr, size, d.ite(d.eq(old, expected), src, old), index)
        m.set_reg(0, d.zext(old, 64))
        return
    m.store(addr, size, ops.atomic_new_value(d, op, old, src), index)
    if op not in (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR):
        m.set_reg(insn.src, d.zext(old, 64))  # fetch variants and xchg return the old value
