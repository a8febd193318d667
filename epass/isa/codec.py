"""Bytes <-> instructions, derived from the tables in `opcodes.py`.

Decoding is strict: a field that the instruction does not use must be
zero, as the kernel demands, so every decodable byte string has exactly
one encoding and `encode(decode(b)) == b` holds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from epass.errors import DecodeError
from epass.isa.insn import (
    Alu,
    Atomic,
    Call,
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
from epass.isa.opcodes import (
    ALU_BY_WIRE,
    ALU_END,
    ATOMIC_BY_IMM,
    CLASS_MASK,
    ENDIAN_BITS,
    JMP_BY_WIRE,
    JMP_CALL,
    JMP_EXIT,
    JMP_JA,
    JMP_JCOND,
    MAX_REG,
    MODE_MASK,
    OP_MASK,
    SIZE_BITS,
    SIZE_MASK,
    SIZE_OF_BITS,
    SRC_X,
    AluOp,
    AtomicOp,
    CallKind,
    Cls,
    EndianKind,
    Mode,
    PacketMode,
    PseudoKind,
)

SLOT = struct.Struct("<BBhi")  # opcode, regs (src:4 | dst:4), off, imm


@dataclass(frozen=True)
class Slot:
    """One raw 8-byte instruction slot."""

    code: int
    dst: int
    src: int
    off: int
    imm: int

    @classmethod
    def unpack(cls, data: bytes, pos: int) -> Slot:
        code, regs, off, imm = SLOT.unpack_from(data, pos)
        return cls(code, regs & 0x0F, regs >> 4, off, imm)

    def pack(self) -> bytes:
        return SLOT.pack(self.code, (self.src << 4) | self.dst, self.off, self.imm)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


_FIELD_NAMES = {"dst": "dst_reg", "src": "src_reg"}  # as the kernel's struct bpf_insn names them


class _Decoder:
    """Decodes one instruction; `fail` raises with the slot index and opcode."""

    def __init__(self, slot: Slot, index: int) -> None:
        self.s = slot
        self.index = index

    def fail(self, message: str, field: str | None = None) -> DecodeError:
        return DecodeError(f"{message} (opcode 0x{self.s.code:02x})", index=self.index, field=field)

    def unused(self, *fields: str) -> None:
        for name in fields:
            value = getattr(self.s, name)
            if value:
                field = _FIELD_NAMES.get(name, name)
                raise self.fail(f"reserved field {field} is set ({value})", field)

    def reg(self, name: str) -> int:
        value = getattr(self.s, name)
        if value > MAX_REG:
            field = _FIELD_NAMES[name]
            raise self.fail(f"invalid register r{value} in {field}", field)
        return value

    def source(self) -> tuple[int | None, int]:
        """(src register, 0) for BPF_X, (None, imm) for BPF_K; the other field must be 0."""
        if self.s.code & SRC_X:
            self.unused("imm")
            return self.reg("src"), 0
        self.unused("src")
        return None, self.s.imm


def decode_one(data: bytes, pos: int, index: int) -> tuple[Insn, int]:
    """Decode the instruction at byte `pos` (slot `index`); returns it and its slot count."""
    s = Slot.unpack(data, pos)
    d = _Decoder(s, index)
    cls = Cls(s.code & CLASS_MASK)
    if cls in (Cls.ALU, Cls.ALU64):
        return _decode_alu(d, cls), 1
    if cls in (Cls.JMP, Cls.JMP32):
        return _decode_jmp(d, cls), 1
    if cls == Cls.LD:
        return _decode_ld(d, data, pos)
    return _decode_mem(d, cls), 1


def _decode_alu(d: _Decoder, cls: Cls) -> Insn:
    s = d.s
    bits = 64 if cls == Cls.ALU64 else 32
    op = s.code & OP_MASK
    dst = d.reg("dst")
    if op == ALU_END:
        d.unused("src", "off")
        if cls == Cls.ALU64:
            if s.code & SRC_X:
                raise d.fail("unknown opcode")
            kind = EndianKind.BSWAP
        else:
            kind = EndianKind.BE if s.code & SRC_X else EndianKind.LE
        if s.imm not in ENDIAN_BITS:
            raise d.fail(f"invalid byte swap width {s.imm} in imm", "imm")
        return Endian(kind, dst, s.imm)
    alu = ALU_BY_WIRE.get((op, s.off))
    is_mov_x64 = s.code == Cls.ALU64 | AluOp.MOV.value.op | SRC_X
    if alu is None and is_mov_x64 and s.off == 1 and s.imm in (1, 1 << 16):
        # addr_space_cast(src, dst_as, src_as) for arena programs (Linux 6.9+)
        raise d.fail("addr_space_cast (arena pointer cast) is not supported", "off")
    if alu is None:
        if any(spec_op == op for spec_op, _ in ALU_BY_WIRE):
            raise d.fail(f"reserved field off is set ({s.off})", "off")
        raise d.fail("unknown opcode")
    spec = alu.value
    if spec.alu64_only and bits == 32:
        raise d.fail(f"reserved field off is set ({s.off})", "off")
    if not spec.has_source:
        # NEG: the kernel insists on BPF_K with src_reg, off and imm all zero
        if s.code & SRC_X:
            raise d.fail("unknown opcode")
        d.unused("src", "imm")
        return Alu(alu, dst, None, 0, bits)
    if spec.reg_only and not s.code & SRC_X:
        raise d.fail(f"reserved field off is set ({s.off})", "off")
    src, imm = d.source()
    return Alu(alu, dst, src, imm, bits)


def _decode_jmp(d: _Decoder, cls: Cls) -> Insn:
    s = d.s
    op = s.code & OP_MASK
    is32 = cls == Cls.JMP32
    if op == JMP_JA:
        if s.code & SRC_X:
            raise d.fail("unknown opcode")
        if is32:
            d.unused("dst", "src", "off")
            return Goto(s.imm, long=True)
        d.unused("dst", "src", "imm")
        return Goto(s.off)
    if op in (JMP_CALL, JMP_EXIT, JMP_JCOND) and is32:
        raise d.fail("unknown opcode")
    if op == JMP_CALL:
        if s.code & SRC_X:
            # callx: the target address is in a register (LLVM puts it in dst_reg)
            d.unused("src", "off", "imm")
            return CallReg(d.reg("dst"))
        d.unused("dst")
        if s.src not in tuple(CallKind):
            raise d.fail(f"unknown call kind in src_reg ({s.src})", "src_reg")
        kind = CallKind(s.src)
        if kind != CallKind.KFUNC:
            d.unused("off")
        return Call(kind, s.imm, s.off)
    if op == JMP_EXIT:
        if s.code & SRC_X:
            raise d.fail("unknown opcode")
        d.unused("dst", "src", "off", "imm")
        return Exit()
    if op == JMP_JCOND:
        if s.code & SRC_X:
            raise d.fail("unknown opcode")
        d.unused("dst", "src", "imm")
        return MayGoto(s.off)
    jop = JMP_BY_WIRE.get(op)
    if jop is None:
        raise d.fail("unknown opcode")
    dst = d.reg("dst")
    src, imm = d.source()
    return Jump(jop, dst, s.off, src, imm, 32 if is32 else 64)


def _decode_ld(d: _Decoder, data: bytes, pos: int) -> tuple[Insn, int]:
    s = d.s
    mode = s.code & MODE_MASK
    size = SIZE_OF_BITS[s.code & SIZE_MASK]
    if mode == Mode.IMM:
        if size != 8:
            raise d.fail("unknown opcode")
        if pos + 16 > len(data):
            raise d.fail("lddw is missing its second slot")
        d.unused("off")
        dst = d.reg("dst")
        nxt = Slot.unpack(data, pos + 8)
        if nxt.code or nxt.dst or nxt.src or nxt.off:
            raise DecodeError(
                f"second slot of lddw has reserved fields set (opcode 0x{nxt.code:02x})",
                index=d.index + 1,
            )
        if s.src not in tuple(PseudoKind):
            raise d.fail(f"unknown lddw pseudo source in src_reg ({s.src})", "src_reg")
        kind = PseudoKind(s.src)
        if kind == PseudoKind.IMM:
            value = (s.imm & 0xFFFFFFFF) | ((nxt.imm & 0xFFFFFFFF) << 32)
            return LoadImm64(dst, value), 2
        if kind in (PseudoKind.MAP_FD, PseudoKind.MAP_IDX, PseudoKind.FUNC) and nxt.imm:
            raise DecodeError(
                f"reserved field imm of the second lddw slot is set ({nxt.imm})",
                index=d.index + 1,
                field="imm",
            )
        return LoadImm64(dst, s.imm, kind, nxt.imm), 2
    if mode in (Mode.ABS, Mode.IND):
        if size == 8:
            raise d.fail("unknown opcode")
        d.unused("dst", "off")
        if mode == Mode.ABS:
            d.unused("src")
            return LoadPacket(PacketMode.ABS, size, s.imm), 1
        return LoadPacket(PacketMode.IND, size, s.imm, d.reg("src")), 1
    raise d.fail("unknown opcode")


def _decode_mem(d: _Decoder, cls: Cls) -> Insn:
    s = d.s
    mode = s.code & MODE_MASK
    size = SIZE_OF_BITS[s.code & SIZE_MASK]
    if cls == Cls.LDX and mode in (Mode.MEM, Mode.MEMSX):
        if mode == Mode.MEMSX and size == 8:
            raise d.fail("unknown opcode")
        d.unused("imm")
        return Load(size, d.reg("dst"), d.reg("src"), s.off, signed=mode == Mode.MEMSX)
    if cls == Cls.ST and mode == Mode.MEM:
        d.unused("src")
        return Store(size, d.reg("dst"), s.off, None, s.imm)
    if cls == Cls.STX and mode == Mode.MEM:
        d.unused("imm")
        return Store(size, d.reg("dst"), s.off, d.reg("src"))
    if cls == Cls.STX and mode == Mode.ATOMIC:
        op = ATOMIC_BY_IMM.get(s.imm)
        if op is None:
            raise d.fail(f"unknown atomic operation 0x{s.imm & 0xFFFFFFFF:x} in imm", "imm")
        acquire_release = op in (AtomicOp.LOAD_ACQUIRE, AtomicOp.STORE_RELEASE)
        if size not in (4, 8) and not acquire_release:
            raise d.fail(f"atomic operation of size {size} is not supported")
        return Atomic(op, size, d.reg("dst"), d.reg("src"), s.off)
    raise d.fail("unknown opcode")


def decode(data: bytes) -> list[Insn]:
    """Decode a whole program. Errors carry the slot index of the bad instruction."""
    if len(data) % 8:
        raise DecodeError(f"program size {len(data)} is not a multiple of 8 bytes")
    insns: list[Insn] = []
    pos = 0
    while pos < len(data):
        insn, slots = decode_one(data, pos, pos // 8)
        insns.append(insn)
        pos += 8 * slots
    return insns


# ---------------------------------------------------------------- encoding


def encode_slots(insn: Insn) -> list[Slot]:
    """The raw slots of one instruction (two for lddw)."""
    match insn:
        case Alu(op=op, dst=dst, src=src, imm=imm, bits=bits):
            cls = Cls.ALU64 if bits == 64 else Cls.ALU
            spec = op.value
            xbit = SRC_X if src is not None else 0
            return [Slot(cls | spec.op | xbit, dst, src or 0, spec.off, imm if src is None else 0)]
        case Endian(kind=kind, dst=dst, bits=bits):
            cls = Cls.ALU if kind != EndianKind.BSWAP else Cls.ALU64
            xbit = SRC_X if kind == EndianKind.BE else 0
            return [Slot(cls | ALU_END | xbit, dst, 0, 0, bits)]
        case Jump(op=op, dst=dst, off=off, src=src, imm=imm, bits=bits):
            cls = Cls.JMP if bits == 64 else Cls.JMP32
            xbit = SRC_X if src is not None else 0
            return [Slot(cls | op.value.op | xbit, dst, src or 0, off, imm if src is None else 0)]
        case Goto(off=off, long=long):
            if long:
                return [Slot(Cls.JMP32 | JMP_JA, 0, 0, 0, off)]
            return [Slot(Cls.JMP | JMP_JA, 0, 0, off, 0)]
        case MayGoto(off=off):
            return [Slot(Cls.JMP | JMP_JCOND, 0, 0, off, 0)]
        case Call(kind=kind, imm=imm, off=off):
            return [Slot(Cls.JMP | JMP_CALL, 0, int(kind), off, imm)]
        case CallReg(reg=reg):
            return [Slot(Cls.JMP | JMP_CALL | SRC_X, reg, 0, 0, 0)]
        case Exit():
            return [Slot(Cls.JMP | JMP_EXIT, 0, 0, 0, 0)]
        case Load(size=size, dst=dst, src=src, off=off, signed=signed):
            mode = Mode.MEMSX if signed else Mode.MEM
            return [Slot(Cls.LDX | mode | SIZE_BITS[size], dst, src, off, 0)]
        case Store(size=size, dst=dst, off=off, src=None, imm=imm):
            return [Slot(Cls.ST | Mode.MEM | SIZE_BITS[size], dst, 0, off, imm)]
        case Store(size=size, dst=dst, off=off, src=src):
            return [Slot(Cls.STX | Mode.MEM | SIZE_BITS[size], dst, src, off, 0)]
        case Atomic(op=op, size=size, dst=dst, src=src, off=off):
            code = Cls.STX | Mode.ATOMIC | SIZE_BITS[size]
            return [Slot(code, dst, src, off, _s32(op.value.imm))]
        case LoadImm64(dst=dst, imm=imm, kind=kind, aux=aux):
            code = Cls.LD | Mode.IMM | SIZE_BITS[8]
            if kind == PseudoKind.IMM:
                lo, hi = _s32(imm), _s32(imm >> 32)
                return [Slot(code, dst, 0, 0, lo), Slot(0, 0, 0, 0, hi)]
            return [Slot(code, dst, int(kind), 0, imm), Slot(0, 0, 0, 0, aux)]
        case LoadPacket(mode=mode, size=size, imm=imm, src=src):
            return [Slot(Cls.LD | mode.value | SIZE_BITS[size], 0, src, 0, imm)]
    raise TypeError(f"not an instruction: {insn!r}")


def encode_one(insn: Insn) -> bytes:
    return b"".join(slot.pack() for slot in encode_slots(insn))


def encode(insns: list[Insn]) -> bytes:
    """Encode a whole program."""
    return b"".join(encode_one(insn) for insn in insns)

