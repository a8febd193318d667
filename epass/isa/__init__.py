"""The eBPF instruction set: one opcode table, instruction values, codec and text.

    from epass.isa import decode, encode, format_insn, parse_insn
"""

from epass.isa.codec import decode, decode_one, encode, encode_one
from epass.isa.helpers import HELPER_IDS, HELPER_NAMES, helper_name
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
    jump_offset,
    slot_count,
    slot_indices,
)
from epass.isa.opcodes import (
    AluOp,
    AtomicOp,
    CallKind,
    EndianKind,
    JmpOp,
    PacketMode,
    PseudoKind,
)
from epass.isa.text import format_insn, format_program, parse_insn, parse_program

__all__ = [
    "Alu", "AluOp", "Atomic", "AtomicOp", "Call", "CallKind", "CallReg", "Endian", "EndianKind",
    "Exit", "Goto", "HELPER_IDS", "HELPER_NAMES", "Insn", "JmpOp", "Jump", "Load", "LoadImm64",
    "LoadPacket", "MayGoto", "PacketMode", "PseudoKind", "Store", "decode", "decode_one",
    "encode", "encode_one", "format_insn", "format_program", "helper_name", "jump_offset",
    "parse_insn", "parse_program", "slot_count", "slot_indices",
]
