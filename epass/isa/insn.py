"""Meaning-level eBPF instructions: frozen values, one class per kind.

Wire quirks (sdiv as DIV with off=1, movsx as MOV with off=8, the two
slots of lddw, gotol keeping its offset in imm) live only in `codec.py`;
here each operation is what it means. Registers are ints 0..10.
Immediates are stored as the signed 32-bit value of the field, except
`LoadImm64.imm`, which holds the whole 64-bit constant (unsigned) for a
plain lddw.
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.isa.opcodes import (
    AluOp,
    AtomicOp,
    CallKind,
    EndianKind,
    JmpOp,
    PacketMode,
    PseudoKind,
)


@dataclass(frozen=True)
class Alu:
    """`dst op= src` on 64 or 32 bits; `src is None` means the immediate operand."""

    op: AluOp
    dst: int
    src: int | None = None
    imm: int = 0
    bits: int = 64


@dataclass(frozen=True)
class Endian:
    """`dst = be16 dst`, `le32`, `bswap64`, ..."""

    kind: EndianKind
    dst: int
    bits: int


@dataclass(frozen=True)
class Jump:
    """`if dst op src goto pc+off`; JMP32 (bits=32) compares the low halves."""

    op: JmpOp
    dst: int
    off: int
    src: int | None = None
    imm: int = 0
    bits: int = 64


@dataclass(frozen=True)
class Goto:
    """Unconditional jump: `goto pc+off` (16-bit off) or `gotol pc+off` (32-bit, in imm)."""

    off: int
    long: bool = False


@dataclass(frozen=True)
class MayGoto:
    """`may_goto pc+off`: jump once the kernel's loop budget for this program is spent."""

    off: int


@dataclass(frozen=True)
class Call:
    """Helper call by id, bpf-to-bpf call by pc-relative offset, or kfunc by BTF id."""

    kind: CallKind
    imm: int
    off: int = 0  # kfuncs: index of the module BTF fd in fd_array


@dataclass(frozen=True)
class CallReg:
    """`callx rN`: indirect call through a register (LLVM's encoding; the kernel rejects it)."""

    reg: int


@dataclass(frozen=True)
class Exit:
    pass


@dataclass(frozen=True)
class Load:
    """`dst = *(u32 *)(src +off)`; `signed` sign-extends (LDX MEMSX)."""

    size: int
    dst: int
    src: int
    off: int
    signed: bool = False


@dataclass(frozen=True)
class Store:
    """`*(u32 *)(dst +off) = src` (STX) or `= imm` (ST) when `src is None`."""

    size: int
    dst: int
    off: int
    src: int | None = None
    imm: int = 0


@dataclass(frozen=True)
class Atomic:
    """Atomic read-modify-write on `*(size *)(dst +off)`; fetch forms write the old value to src.

    CMPXCHG compares with r0 and writes the old value to r0. The fields are the wire's
    dst_reg and src_reg, so for LOAD_ACQUIRE the address is `src +off` and the value goes
    to dst; STORE_RELEASE stores src at `dst +off`.
    """

    op: AtomicOp
    size: int
    dst: int
    src: int
    off: int


@dataclass(frozen=True)
class LoadImm64:
    """lddw: one instruction, two slots. `imm` is the 64-bit constant for kind IMM,
    otherwise the first slot's imm (map fd/index, BTF id, pc-relative offset);
    `aux` is the second slot's imm (map value offset, BTF object fd)."""

    dst: int
    imm: int
    kind: PseudoKind = PseudoKind.IMM
    aux: int = 0


@dataclass(frozen=True)
class LoadPacket:
    """Legacy `r0 = *(u8 *)skb[imm]` (ABS) or `skb[src + imm]` (IND)."""

    mode: PacketMode
    size: int
    imm: int
    src: int = 0


Insn = (
    Alu
    | Endian
    | Jump
    | Goto
    | MayGoto
    | Call
    | CallReg
    | Exit
    | Load
    | Store
    | Atomic
    | LoadImm64
    | LoadPacket
)


def slot_count(insn: Insn) -> int:
    """Number of 8-byte slots the instruction occupies: 2 for lddw, else 1."""
    return 2 if isinstance(insn, LoadImm64) else 1


def slot_indices(insns: list[Insn]) -> list[int]:
    """The slot index of each instruction (the index the kernel and its log use)."""
    out = []
    pos = 0
    for insn in insns:
        out.append(pos)
        pos += slot_count(insn)
    return out


def jump_offset(insn: Insn) -> int | None:
    """The pc-relative slot offset of a jump or local call, None for other instructions."""
    if isinstance(insn, Jump | Goto | MayGoto):
        return insn.off
    if isinstance(insn, Call) and insn.kind == CallKind.LOCAL:
        return insn.imm
    if isinstance(insn, LoadImm64) and insn.kind == PseudoKind.FUNC:
        return insn.imm
    return None
