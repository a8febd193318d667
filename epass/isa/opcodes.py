"""The eBPF opcode table: the single source of truth for codec and text.

An instruction slot is 8 bytes, little-endian::

    byte 0      byte 1            bytes 2-3    bytes 4-7
    opcode      src:4 | dst:4     off (s16)    imm (s32)

The opcode byte has two layouts, chosen by its low three bits (the class)::

    ALU, ALU64, JMP, JMP32:   op:4 | source:1 | class:3
    LD, LDX, ST, STX:         mode:3 | size:2 | class:3

Everything below is data: which operation a (class, op, off, imm) pattern
means, how it is written in pseudo-C, and which fields it leaves unused.
`codec.py` and `text.py` are derived from these tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class Cls(IntEnum):
    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


class Mode(IntEnum):
    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


SRC_X = 0x08  # source bit: register operand (BPF_X); clear means immediate (BPF_K)
CLASS_MASK = 0x07
OP_MASK = 0xF0
MODE_MASK = 0xE0
SIZE_MASK = 0x18

# size field value <-> access size in bytes
SIZE_BITS: dict[int, int] = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
SIZE_OF_BITS: dict[int, int] = {bits: size for size, bits in SIZE_BITS.items()}
SIZE_TYPE: dict[int, str] = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
SIGNED_SIZE_TYPE: dict[int, str] = {1: "s8", 2: "s16", 4: "s32", 8: "s64"}

MAX_REG = 10  # r0..r10; r10 is the read-only frame pointer


@dataclass(frozen=True)
class AluSpec:
    """One arithmetic operation: its wire op, the `off` value that selects it, its text."""

    op: int  # BPF_OP value
    off: int  # sdiv/smod use off=1; movsx uses off=8/16/32
    symbol: str  # compound assignment printed between operands: "+=", "s/="
    has_source: bool = True  # NEG has no source operand
    reg_only: bool = False  # MOVSX takes a register source only
    alu64_only: bool = False  # movsx from 32 bits exists for ALU64 only


class AluOp(Enum):
    ADD = AluSpec(0x00, 0, "+=")
    SUB = AluSpec(0x10, 0, "-=")
    MUL = AluSpec(0x20, 0, "*=")
    DIV = AluSpec(0x30, 0, "/=")
    SDIV = AluSpec(0x30, 1, "s/=")
    OR = AluSpec(0x40, 0, "|=")
    AND = AluSpec(0x50, 0, "&=")
    LSH = AluSpec(0x60, 0, "<<=")
    RSH = AluSpec(0x70, 0, ">>=")
    NEG = AluSpec(0x80, 0, "= -", has_source=False)
    MOD = AluSpec(0x90, 0, "%=")
    SMOD = AluSpec(0x90, 1, "s%=")
    XOR = AluSpec(0xA0, 0, "^=")
    MOV = AluSpec(0xB0, 0, "=")
    MOVSX8 = AluSpec(0xB0, 8, "= (s8)", reg_only=True)
    MOVSX16 = AluSpec(0xB0, 16, "= (s16)", reg_only=True)
    MOVSX32 = AluSpec(0xB0, 32, "= (s32)", reg_only=True, alu64_only=True)
    ARSH = AluSpec(0xC0, 0, "s>>=")


ALU_BY_WIRE: dict[tuple[int, int], AluOp] = {(op.value.op, op.value.off): op for op in AluOp}
ALU_END = 0xD0  # byte swaps share the ALU classes under this op


class EndianKind(Enum):
    """BPF_END: `le`/`be` convert from host order (ALU class); `bswap` always swaps (ALU64)."""

    LE = "le"
    BE = "be"
    BSWAP = "bswap"


ENDIAN_BITS = (16, 32, 64)


@dataclass(frozen=True)
class JmpSpec:
    op: int
    symbol: str


class JmpOp(Enum):
    """Conditional jumps; `symbol` is the comparison printed in `if r1 > r2 goto`."""

    EQ = JmpSpec(0x10, "==")
    GT = JmpSpec(0x20, ">")
    GE = JmpSpec(0x30, ">=")
    SET = JmpSpec(0x40, "&")
    NE = JmpSpec(0x50, "!=")
    SGT = JmpSpec(0x60, "s>")
    SGE = JmpSpec(0x70, "s>=")
    LT = JmpSpec(0xA0, "<")
    LE = JmpSpec(0xB0, "<=")
    SLT = JmpSpec(0xC0, "s<")
    SLE = JmpSpec(0xD0, "s<=")


JMP_BY_WIRE: dict[int, JmpOp] = {op.value.op: op for op in JmpOp}
JMP_BY_SYMBOL: dict[str, JmpOp] = {op.value.symbol: op for op in JmpOp}
JMP_JA = 0x00
JMP_CALL = 0x80
JMP_EXIT = 0x90
JMP_JCOND = 0xE0  # may_goto (src_reg = 0, BPF_MAY_GOTO)


class CallKind(IntEnum):
    """The src_reg of a call instruction."""

    HELPER = 0
    LOCAL = 1  # BPF_PSEUDO_CALL: imm is the pc-relative offset of a subprogram
    KFUNC = 2  # BPF_PSEUDO_KFUNC_CALL: imm is a BTF id, off a BTF fd index


class PseudoKind(IntEnum):
    """The src_reg of a 64-bit immediate load (lddw)."""

    IMM = 0
    MAP_FD = 1
    MAP_VALUE = 2  # imm: map fd, next imm: offset into the value
    BTF_ID = 3  # imm: BTF id, next imm: BTF object fd (0 for vmlinux)
    FUNC = 4  # imm: pc-relative offset of a subprogram
    MAP_IDX = 5
    MAP_IDX_VALUE = 6


@dataclass(frozen=True)
class AtomicSpec:
    imm: int  # the operation lives in the imm field of a BPF_ATOMIC instruction
    name: str  # printed name: fetch variants `atomic_fetch_<name>`, plain `lock ... <symbol>`
    symbol: str = ""  # compound assignment for the non-fetch form


class AtomicOp(Enum):
    ADD = AtomicSpec(0x00, "add", "+=")
    OR = AtomicSpec(0x40, "or", "|=")
    AND = AtomicSpec(0x50, "and", "&=")
    XOR = AtomicSpec(0xA0, "xor", "^=")
    FETCH_ADD = AtomicSpec(0x01, "add")
    FETCH_OR = AtomicSpec(0x41, "or")
    FETCH_AND = AtomicSpec(0x51, "and")
    FETCH_XOR = AtomicSpec(0xA1, "xor")
    XCHG = AtomicSpec(0xE1, "xchg")
    CMPXCHG = AtomicSpec(0xF1, "cmpxchg")
    LOAD_ACQUIRE = AtomicSpec(0x100, "load_acquire")
    STORE_RELEASE = AtomicSpec(0x110, "store_release")


ATOMIC_BY_IMM: dict[int, AtomicOp] = {op.value.imm: op for op in AtomicOp}
ATOMIC_FETCH_OPS = (AtomicOp.FETCH_ADD, AtomicOp.FETCH_OR, AtomicOp.FETCH_AND, AtomicOp.FETCH_XOR)
ATOMIC_PLAIN_OPS = (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR)


class PacketMode(Enum):
    """Legacy LD_ABS / LD_IND packet loads (socket filters)."""

    ABS = Mode.ABS
    IND = Mode.IND
