"""The ISA package: bytes <-> instructions <-> kernel-style text.

The table pins the exact text the kernel verifier log prints for each
instruction kind; the property tests check that codec and text are lossless
for every valid instruction and that the decoder fails only with DecodeError.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epass.errors import DecodeError, ParseError
from epass.isa import (
    Alu,
    AluOp,
    Atomic,
    AtomicOp,
    Call,
    CallKind,
    CallReg,
    Endian,
    EndianKind,
    Exit,
    Goto,
    Insn,
    JmpOp,
    Jump,
    Load,
    LoadImm64,
    LoadPacket,
    MayGoto,
    PacketMode,
    PseudoKind,
    Store,
    decode,
    encode,
    format_insn,
    format_program,
    parse_insn,
    parse_program,
    slot_indices,
)
from epass.isa.opcodes import ENDIAN_BITS

# (bytes as hex, the kernel's text). Jump immediates print as 0x%x of the u32 field,
# ALU and store immediates as signed decimal, offsets always with a sign.
TABLE: list[tuple[str, str]] = [
    # ALU64, immediate and register source, every op
    ("0701000005000000", "r1 += 5"),
    ("0f32000000000000", "r2 += r3"),
    ("17010000ffffffff", "r1 -= -1"),
    ("1f32000000000000", "r2 -= r3"),
    ("2701000007000000", "r1 *= 7"),
    ("2f32000000000000", "r2 *= r3"),
    ("3701000003000000", "r1 /= 3"),
    ("3f32000000000000", "r2 /= r3"),
    ("37010100fdffffff", "r1 s/= -3"),
    ("3f32010000000000", "r2 s/= r3"),
    ("4701000040000000", "r1 |= 64"),
    ("4f32000000000000", "r2 |= r3"),
    ("57010000ff000000", "r1 &= 255"),
    ("5f32000000000000", "r2 &= r3"),
    ("6701000020000000", "r1 <<= 32"),
    ("6f32000000000000", "r2 <<= r3"),
    ("7701000001000000", "r1 >>= 1"),
    ("7f32000000000000", "r2 >>= r3"),
    ("970100000a000000", "r1 %= 10"),
    ("9f32000000000000", "r2 %= r3"),
    ("97010100f6ffffff", "r1 s%= -10"),
    ("9f32010000000000", "r2 s%= r3"),
    ("a701000000000080", "r1 ^= -2147483648"),
    ("af32000000000000", "r2 ^= r3"),
    ("b7010000ffffff7f", "r1 = 2147483647"),
    ("bf32000000000000", "r2 = r3"),
    ("c70100003f000000", "r1 s>>= 63"),
    ("cf32000000000000", "r2 s>>= r3"),
    ("8704000000000000", "r4 = -r4"),
    ("bf21080000000000", "r1 = (s8)r2"),
    ("bf21100000000000", "r1 = (s16)r2"),
    ("bf21200000000000", "r1 = (s32)r2"),
    # ALU32
    ("0401000005000000", "w1 += 5"),
    ("0c32000000000000", "w2 += w3"),
    ("14010000ffffffff", "w1 -= -1"),
    ("1c32000000000000", "w2 -= w3"),
    ("2401000007000000", "w1 *= 7"),
    ("2c32000000000000", "w2 *= w3"),
    ("3401000003000000", "w1 /= 3"),
    ("3c32000000000000", "w2 /= w3"),
    ("34010100fdffffff", "w1 s/= -3"),
    ("3c32010000000000", "w2 s/= w3"),
    ("4401000040000000", "w1 |= 64"),
    ("4c32000000000000", "w2 |= w3"),
    ("54010000ff000000", "w1 &= 255"),
    ("5c32000000000000", "w2 &= w3"),
    ("6401000020000000", "w1 <<= 32"),
    ("6c32000000000000", "w2 <<= w3"),
    ("7401000001000000", "w1 >>= 1"),
    ("7c32000000000000", "w2 >>= w3"),
    ("940100000a000000", "w1 %= 10"),
    ("9c32000000000000", "w2 %= w3"),
    ("94010100f6ffffff", "w1 s%= -10"),
    ("9c32010000000000", "w2 s%= w3"),
    ("a401000000000080", "w1 ^= -2147483648"),
    ("ac32000000000000", "w2 ^= w3"),
    ("b4010000ffffff7f", "w1 = 2147483647"),
    ("bc32000000000000", "w2 = w3"),
    ("c40100003f000000", "w1 s>>= 63"),
    ("cc32000000000000", "w2 s>>= w3"),
    ("8404000000000000", "w4 = -w4"),
    ("bc21080000000000", "w1 = (s8)w2"),
    ("bc21100000000000", "w1 = (s16)w2"),
    # byte swaps
    ("d401000010000000", "r1 = le16 r1"),
    ("d401000020000000", "r1 = le32 r1"),
    ("d401000040000000", "r1 = le64 r1"),
    ("dc01000010000000", "r1 = be16 r1"),
    ("dc01000020000000", "r1 = be32 r1"),
    ("dc01000040000000", "r1 = be64 r1"),
    ("d701000010000000", "r1 = bswap16 r1"),
    ("d701000020000000", "r1 = bswap32 r1"),
    ("d701000040000000", "r1 = bswap64 r1"),
    # conditional jumps, JMP and JMP32, immediate and register
    ("1501ffffffffffff", "if r1 == 0xffffffff goto pc-1"),
    ("1d21050000000000", "if r1 == r2 goto pc+5"),
    ("2501ffff10000000", "if r1 > 0x10 goto pc-1"),
    ("2d21050000000000", "if r1 > r2 goto pc+5"),
    ("3501ffff10000000", "if r1 >= 0x10 goto pc-1"),
    ("3d21050000000000", "if r1 >= r2 goto pc+5"),
    ("4501ffff10000000", "if r1 & 0x10 goto pc-1"),
    ("4d21050000000000", "if r1 & r2 goto pc+5"),
    ("5501ffff10000000", "if r1 != 0x10 goto pc-1"),
    ("5d21050000000000", "if r1 != r2 goto pc+5"),
    ("6501ffff10000000", "if r1 s> 0x10 goto pc-1"),
    ("6d21050000000000", "if r1 s> r2 goto pc+5"),
    ("7501ffff10000000", "if r1 s>= 0x10 goto pc-1"),
    ("7d21050000000000", "if r1 s>= r2 goto pc+5"),
    ("a501ffff10000000", "if r1 < 0x10 goto pc-1"),
    ("ad21050000000000", "if r1 < r2 goto pc+5"),
    ("b501ffff10000000", "if r1 <= 0x10 goto pc-1"),
    ("bd21050000000000", "if r1 <= r2 goto pc+5"),
    ("c501ffff10000000", "if r1 s< 0x10 goto pc-1"),
    ("cd21050000000000", "if r1 s< r2 goto pc+5"),
    ("d501ffff10000000", "if r1 s<= 0x10 goto pc-1"),
    ("dd21050000000000", "if r1 s<= r2 goto pc+5"),
    ("1601ffffffffffff", "if w1 == 0xffffffff goto pc-1"),
    ("1e21050000000000", "if w1 == w2 goto pc+5"),
    ("2601ffff10000000", "if w1 > 0x10 goto pc-1"),
    ("2e21050000000000", "if w1 > w2 goto pc+5"),
    ("3601ffff10000000", "if w1 >= 0x10 goto pc-1"),
    ("3e21050000000000", "if w1 >= w2 goto pc+5"),
    ("4601ffff10000000", "if w1 & 0x10 goto pc-1"),
    ("4e21050000000000", "if w1 & w2 goto pc+5"),
    ("5601ffff10000000", "if w1 != 0x10 goto pc-1"),
    ("5e21050000000000", "if w1 != w2 goto pc+5"),
    ("6601ffff10000000", "if w1 s> 0x10 goto pc-1"),
    ("6e21050000000000", "if w1 s> w2 goto pc+5"),
    ("7601ffff10000000", "if w1 s>= 0x10 goto pc-1"),
    ("7e21050000000000", "if w1 s>= w2 goto pc+5"),
    ("a601ffff10000000", "if w1 < 0x10 goto pc-1"),
    ("ae21050000000000", "if w1 < w2 goto pc+5"),
    ("b601ffff10000000", "if w1 <= 0x10 goto pc-1"),
    ("be21050000000000", "if w1 <= w2 goto pc+5"),
    ("c601ffff10000000", "if w1 s< 0x10 goto pc-1"),
    ("ce21050000000000", "if w1 s< w2 goto pc+5"),
    ("d601ffff10000000", "if w1 s<= 0x10 goto pc-1"),
    ("de21050000000000", "if w1 s<= w2 goto pc+5"),
    # unconditional jumps, calls, exit
    ("0500ffff00000000", "goto pc-1"),
    ("0500030000000000", "goto pc+3"),
    ("0600000090eefeff", "gotol pc-70000"),
    ("06000000a0860100", "gotol pc+100000"),
    ("e500070000000000", "may_goto pc+7"),
    ("8500000001000000", "call bpf_map_lookup_elem#1"),
    ("850000000c000000", "call bpf_tail_call#12"),
    ("85000000e7030000", "call unknown#999"),
    ("8510000005000000", "call pc+5"),
    ("85100000f7ffffff", "call pc-9"),
    ("85200000d2040000", "call kfunc#1234"),
    ("852002004d000000", "call kfunc#77 fd_idx=2"),
    ("8d03000000000000", "callx r3"),
    ("9500000000000000", "exit"),
    # loads, sign-extending loads, stores
    ("7110040000000000", "r0 = *(u8 *)(r1 +4)"),
    ("6910080000000000", "r0 = *(u16 *)(r1 +8)"),
    ("6110100000000000", "r0 = *(u32 *)(r1 +16)"),
    ("7910f8ff00000000", "r0 = *(u64 *)(r1 -8)"),
    ("91a3ffff00000000", "r3 = *(s8 *)(r10 -1)"),
    ("89a3feff00000000", "r3 = *(s16 *)(r10 -2)"),
    ("81a3fcff00000000", "r3 = *(s32 *)(r10 -4)"),
    ("720af8ffffffffff", "*(u8 *)(r10 -8) = -1"),
    ("6a0af8fffeffffff", "*(u16 *)(r10 -8) = -2"),
    ("620af8fffcffffff", "*(u32 *)(r10 -8) = -4"),
    ("7a0af8fff8ffffff", "*(u64 *)(r10 -8) = -8"),
    ("7321100000000000", "*(u8 *)(r1 +16) = r2"),
    ("6b21100000000000", "*(u16 *)(r1 +16) = r2"),
    ("6321100000000000", "*(u32 *)(r1 +16) = r2"),
    ("7b21100000000000", "*(u64 *)(r1 +16) = r2"),
    # atomics, 32 and 64 bit
    ("c321000000000000", "lock *(u32 *)(r1 +0) += r2"),
    ("c321000040000000", "lock *(u32 *)(r1 +0) |= r2"),
    ("c321000050000000", "lock *(u32 *)(r1 +0) &= r2"),
    ("c3210000a0000000", "lock *(u32 *)(r1 +0) ^= r2"),
    ("c321000001000000", "r2 = atomic_fetch_add((u32 *)(r1 +0), r2)"),
    ("c321000041000000", "r2 = atomic_fetch_or((u32 *)(r1 +0), r2)"),
    ("c321000051000000", "r2 = atomic_fetch_and((u32 *)(r1 +0), r2)"),
    ("c3210000a1000000", "r2 = atomic_fetch_xor((u32 *)(r1 +0), r2)"),
    ("c3210800e1000000", "r2 = atomic_xchg((u32 *)(r1 +8), r2)"),
    ("c3210000f1000000", "r0 = atomic_cmpxchg((u32 *)(r1 +0), r0, r2)"),
    ("db21000000000000", "lock *(u64 *)(r1 +0) += r2"),
    ("db21000040000000", "lock *(u64 *)(r1 +0) |= r2"),
    ("db21000050000000", "lock *(u64 *)(r1 +0) &= r2"),
    ("db210000a0000000", "lock *(u64 *)(r1 +0) ^= r2"),
    ("db21000001000000", "r2 = atomic64_fetch_add((u64 *)(r1 +0), r2)"),
    ("db21000041000000", "r2 = atomic64_fetch_or((u64 *)(r1 +0), r2)"),
    ("db21000051000000", "r2 = atomic64_fetch_and((u64 *)(r1 +0), r2)"),
    ("db210000a1000000", "r2 = atomic64_fetch_xor((u64 *)(r1 +0), r2)"),
    ("db210800e1000000", "r2 = atomic64_xchg((u64 *)(r1 +8), r2)"),
    ("db210000f1000000", "r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)"),
    # load-acquire / store-release, every size
    ("d310040000010000", "r0 = load_acquire((u8 *)(r1 +4))"),
    ("d321fcff10010000", "store_release((u8 *)(r1 -4), r2)"),
    ("cb10040000010000", "r0 = load_acquire((u16 *)(r1 +4))"),
    ("cb21fcff10010000", "store_release((u16 *)(r1 -4), r2)"),
    ("c310040000010000", "r0 = load_acquire((u32 *)(r1 +4))"),
    ("c321fcff10010000", "store_release((u32 *)(r1 -4), r2)"),
    ("db10040000010000", "r0 = load_acquire((u64 *)(r1 +4))"),
    ("db21fcff10010000", "store_release((u64 *)(r1 -4), r2)"),
    # lddw, plain and every pseudo source
    ("18010000f0debc9a0000000078563412", "r1 = 0x123456789abcdef0 ll"),
    ("18000000ffffffff00000000ffffffff", "r0 = 0xffffffffffffffff ll"),
    ("18020000000000000000000000000000", "r2 = 0x0 ll"),
    ("18110000030000000000000000000000", "r1 = map[fd:3] ll"),
    ("18210000040000000000000010000000", "r1 = map[fd:4][0]+16 ll"),
    ("18310000070000000000000000000000", "r1 = btf_id[7] ll"),
    ("18310000070000000000000005000000", "r1 = btf_id[7][fd:5] ll"),
    ("18420000060000000000000000000000", "r2 = func[pc+6] ll"),
    ("18510000000000000000000000000000", "r1 = map[idx:0] ll"),
    ("18610000020000000000000008000000", "r1 = map[idx:2][0]+8 ll"),
    # legacy packet loads
    ("300000000c000000", "r0 = *(u8 *)skb[12]"),
    ("280000000c000000", "r0 = *(u16 *)skb[12]"),
    ("200000000c000000", "r0 = *(u32 *)skb[12]"),
    ("50700000feffffff", "r0 = *(u8 *)skb[r7 + -2]"),
    ("48700000feffffff", "r0 = *(u16 *)skb[r7 + -2]"),
    ("40700000feffffff", "r0 = *(u32 *)skb[r7 + -2]"),
]


@pytest.mark.parametrize(("hexbytes", "text"), TABLE, ids=[t for _, t in TABLE])
def test_table(hexbytes: str, text: str) -> None:
    data = bytes.fromhex(hexbytes)
    [insn] = decode(data)
    assert format_insn(insn) == text
    assert parse_insn(text) == insn
    assert encode([parse_insn(text)]) == data


def test_table_covers_every_kind() -> None:
    insns = [decode(bytes.fromhex(h))[0] for h, _ in TABLE]
    kinds = {type(i) for i in insns}
    assert kinds == set(Insn.__args__)  # type: ignore[attr-defined]
    assert {i.op for i in insns if isinstance(i, Alu)} == set(AluOp)
    assert {(i.op, i.bits, i.src is None) for i in insns if isinstance(i, Jump)} == {
        (op, bits, k) for op in JmpOp for bits in (32, 64) for k in (True, False)
    }
    assert {(i.op, i.size) for i in insns if isinstance(i, Atomic)} >= {
        (op, size) for op in AtomicOp for size in (4, 8)
    }
    assert {i.kind for i in insns if isinstance(i, LoadImm64)} == set(PseudoKind)
    assert {i.kind for i in insns if isinstance(i, Call)} == set(CallKind)
    assert {(i.kind, i.bits) for i in insns if isinstance(i, Endian)} == {
        (k, b) for k in EndianKind for b in ENDIAN_BITS
    }


def test_kernel_log_prefix_and_comment_are_ignored() -> None:
    assert parse_insn("12: (bf) r1 = r2 ; comment") == Alu(AluOp.MOV, 1, 2)
    # the log prints lddw without ` ll`; its (18) opcode marks it
    assert parse_program("0: (18) r1 = 0x5\n2: (95) exit\n") == [LoadImm64(1, 5), Exit()]


def test_program_round_trip() -> None:
    prog: list[Insn] = [LoadImm64(1, 1 << 40), Alu(AluOp.MOV, 0, None, 0), Goto(-3), Exit()]
    text = format_program(prog)
    assert text.splitlines()[:2] == ["0: r1 = 0x10000000000 ll", "2: r0 = 0"]
    assert parse_program(text) == prog
    assert slot_indices(prog) == [0, 2, 3, 4]
    assert decode(encode(prog)) == prog


# ------------------------------------------------------------ property tests

regs = st.integers(0, 10)
s16 = st.integers(-(1 << 15), (1 << 15) - 1)
s32 = st.integers(-(1 << 31), (1 << 31) - 1)
sizes = st.sampled_from([1, 2, 4, 8])


@st.composite
def alus(draw: st.DrawFn) -> Alu:
    op = draw(st.sampled_from(list(AluOp)))
    bits = 64 if op.value.alu64_only else draw(st.sampled_from([32, 64]))
    dst = draw(regs)
    if not op.value.has_source:
        return Alu(op, dst, None, 0, bits)
    if op.value.reg_only or draw(st.booleans()):
        return Alu(op, dst, draw(regs), 0, bits)
    return Alu(op, dst, None, draw(s32), bits)


@st.composite
def jumps(draw: st.DrawFn) -> Jump:
    op, bits, dst, off = (
        draw(st.sampled_from(list(JmpOp))), draw(st.sampled_from([32, 64])), draw(regs), draw(s16)
    )
    if draw(st.booleans()):
        return Jump(op, dst, off, draw(regs), 0, bits)
    return Jump(op, dst, off, None, draw(s32), bits)


@st.composite
def calls(draw: st.DrawFn) -> Call:
    kind = draw(st.sampled_from(list(CallKind)))
    return Call(kind, draw(s32), draw(s16) if kind == CallKind.KFUNC else 0)


@st.composite
def stores(draw: st.DrawFn) -> Store:
    size, dst, off = draw(sizes), draw(regs), draw(s16)
    if draw(st.booleans()):
        return Store(size, dst, off, draw(regs))
    return Store(size, dst, off, None, draw(s32))


@st.composite
def atomics(draw: st.DrawFn) -> Atomic:
    op = draw(st.sampled_from(list(AtomicOp)))
    any_size = op in (AtomicOp.LOAD_ACQUIRE, AtomicOp.STORE_RELEASE)
    size = draw(sizes if any_size else st.sampled_from([4, 8]))
    return Atomic(op, size, draw(regs), draw(regs), draw(s16))


@st.composite
def lddws(draw: st.DrawFn) -> LoadImm64:
    kind = draw(st.sampled_from(list(PseudoKind)))
    dst = draw(regs)
    if kind == PseudoKind.IMM:
        return LoadImm64(dst, draw(st.integers(0, (1 << 64) - 1)))
    no_aux = kind in (PseudoKind.MAP_FD, PseudoKind.MAP_IDX, PseudoKind.FUNC)
    return LoadImm64(dst, draw(s32), kind, 0 if no_aux else draw(s32))


@st.composite
def packet_loads(draw: st.DrawFn) -> LoadPacket:
    mode = draw(st.sampled_from(list(PacketMode)))
    size = draw(st.sampled_from([1, 2, 4]))
    return LoadPacket(mode, size, draw(s32), draw(regs) if mode == PacketMode.IND else 0)


@st.composite
def loads(draw: st.DrawFn) -> Load:
    size = draw(sizes)
    signed = size != 8 and draw(st.booleans())
    return Load(size, draw(regs), draw(regs), draw(s16), signed)


instructions: st.SearchStrategy[Insn] = st.one_of(
    alus(),
    st.builds(Endian, st.sampled_from(list(EndianKind)), regs, st.sampled_from(ENDIAN_BITS)),
    jumps(),
    st.builds(Goto, s16),
    st.builds(Goto, s32, st.just(True)),
    st.builds(MayGoto, s16),
    calls(),
    st.builds(CallReg, regs),
    st.just(Exit()),
    loads(),
    stores(),
    atomics(),
    lddws(),
    packet_loads(),
)


@given(instructions)
@settings(max_examples=3000, deadline=None)
def test_codec_and_text_round_trip(insn: Insn) -> None:
    assert decode(encode([insn])) == [insn]
    assert parse_insn(format_insn(insn)) == insn


@given(st.lists(instructions, min_size=1, max_size=20))
@settings(deadline=None)
def test_program_codec_and_text_round_trip(prog: list[Insn]) -> None:
    assert decode(encode(prog)) == prog
    assert parse_program(format_program(prog)) == prog


# Raw slots biased towards the interesting values: every opcode, small registers,
# the offsets and immediates that select operations (sdiv, movsx, atomics, swaps).
_slot = st.builds(
    lambda code, regs_, off, imm: struct.pack("<BBhi", code, regs_, off, imm),
    st.integers(0, 255),
    st.one_of(st.just(0), st.integers(0, 255), st.sampled_from([0x01, 0x10, 0x21, 0xa1])),
    st.one_of(st.sampled_from([0, 1, -1, 8, 16, 32]), s16),
    st.one_of(st.sampled_from([0, 1, 16, 32, 64, 0x01, 0x41, 0xe1, 0xf1, 0x100, 0x110]), s32),
)


@given(st.one_of(_slot, st.binary(min_size=8, max_size=8)))
@settings(max_examples=5000, deadline=None)
def test_random_slot_decodes_losslessly_or_raises_decode_error(data: bytes) -> None:
    try:
        prog = decode(data)
    except DecodeError:
        return
    assert encode(prog) == data
    assert parse_program(format_program(prog)) == prog


@given(st.lists(_slot, min_size=1, max_size=6).map(b"".join), st.binary(max_size=3))
@settings(max_examples=1000, deadline=None)
def test_random_programs_decode_losslessly_or_raise_decode_error(
    data: bytes, tail: bytes
) -> None:
    for blob in (data, data + tail):
        try:
            prog = decode(blob)
        except DecodeError:
            continue
        assert encode(prog) == blob


# ------------------------------------------------------------ decoder rejections

_EXIT = "9500000000000000"
_MOV = "b700000000000000"

DECODE_ERRORS: list[tuple[str, str, str | None]] = [
    # (program hex, DecodeError.line(), DecodeError.field)
    (_MOV * 3 + "b710000001000000", "insn 3: reserved field src_reg is set (1) (opcode 0xb7)",
     "src_reg"),
    ("0410000001000000", "insn 0: reserved field src_reg is set (1) (opcode 0x04)", "src_reg"),
    ("9501000000000000", "insn 0: reserved field dst_reg is set (1) (opcode 0x95)", "dst_reg"),
    ("8501000001000000", "insn 0: reserved field dst_reg is set (1) (opcode 0x85)", "dst_reg"),
    ("0700010001000000", "insn 0: reserved field off is set (1) (opcode 0x07)", "off"),
    ("8500010001000000", "insn 0: reserved field off is set (1) (opcode 0x85)", "off"),
    ("0500000001000000", "insn 0: reserved field imm is set (1) (opcode 0x05)", "imm"),
    ("6110000001000000", "insn 0: reserved field imm is set (1) (opcode 0x61)", "imm"),
    ("7b21000001000000", "insn 0: reserved field imm is set (1) (opcode 0x7b)", "imm"),
    ("8700000001000000", "insn 0: reserved field imm is set (1) (opcode 0x87)", "imm"),
    (_MOV + "bf0b000000000000", "insn 1: invalid register r11 in dst_reg (opcode 0xbf)",
     "dst_reg"),
    ("bfb0000000000000", "insn 0: invalid register r11 in src_reg (opcode 0xbf)", "src_reg"),
    ("ff00000000000000", "insn 0: unknown opcode (opcode 0xff)", None),
    ("8e00000000000000", "insn 0: unknown opcode (opcode 0x8e)", None),
    ("c321000002000000", "insn 0: unknown atomic operation 0x2 in imm (opcode 0xc3)", "imm"),
    ("d321000000000000", "insn 0: atomic operation of size 1 is not supported (opcode 0xd3)",
     None),
    (_EXIT + "1801000001000000", "insn 1: lddw is missing its second slot (opcode 0x18)", None),
    ("1801000001000000b700000000000000",
     "insn 1: second slot of lddw has reserved fields set (opcode 0xb7)", None),
    ("18110000030000000000000002000000",
     "insn 1: reserved field imm of the second lddw slot is set (2)", "imm"),
    ("18710000010000000000000000000000",
     "insn 0: unknown lddw pseudo source in src_reg (7) (opcode 0x18)", "src_reg"),
    ("b7000000000000009500", "program size 10 is not a multiple of 8 bytes", None),
    ("d401000008000000", "insn 0: invalid byte swap width 8 in imm (opcode 0xd4)", "imm"),
    ("bc21200000000000", "insn 0: reserved field off is set (32) (opcode 0xbc)", "off"),
    ("b701080001000000", "insn 0: reserved field off is set (8) (opcode 0xb7)", "off"),
    ("8530000000000000", "insn 0: unknown call kind in src_reg (3) (opcode 0x85)", "src_reg"),
    ("9910000000000000", "insn 0: unknown opcode (opcode 0x99)", None),  # no s64 load
]


@pytest.mark.parametrize(("hexprog", "message", "field"), DECODE_ERRORS,
                         ids=[m for _, m, _ in DECODE_ERRORS])
def test_decode_rejects(hexprog: str, message: str, field: str | None) -> None:
    with pytest.raises(DecodeError) as info:
        decode(bytes.fromhex(hexprog))
    assert info.value.line() == message
    assert info.value.field == field


# ------------------------------------------------------------ parser rejections

PARSE_ERRORS: list[tuple[str, str]] = [
    ("call bpf_no_such_helper", "unknown helper 'bpf_no_such_helper': 'call bpf_no_such_helper'"),
    ("hello world", "cannot parse instruction: 'hello world'"),
    ("r11 = 1", "invalid register r11: 'r11 = 1'"),
    ("r1 = *(u32 *)(r11 +0)", "invalid register r11: 'r1 = *(u32 *)(r11 +0)'"),
    ("r1 = 4294967296", "immediate 4294967296 does not fit in 32 bits: 'r1 = 4294967296'"),
    ("goto pc+40000", "offset 40000 does not fit in 16 bits: 'goto pc+40000'"),
    ("w1 += r2", "register r2 mixes 32- and 64-bit operands: 'w1 += r2'"),
    ("if r1 > w2 goto pc+1", "register w2 mixes 32- and 64-bit operands: 'if r1 > w2 goto pc+1'"),
    ("w1 = (s32)w2", "(s32) sign extension needs 64-bit registers: 'w1 = (s32)w2'"),
    ("r1 = *(s64 *)(r2 +0)", "there is no sign-extending 64-bit load: 'r1 = *(s64 *)(r2 +0)'"),
    ("r1 = be16 r2", "byte swap must have the same source and destination: 'r1 = be16 r2'"),
    ("", "empty instruction"),
]


@pytest.mark.parametrize(
    ("text", "message"), PARSE_ERRORS, ids=[t or "empty" for t, _ in PARSE_ERRORS]
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_insn(text)
    assert info.value.line() == message


def test_parse_program_names_the_line() -> None:
    with pytest.raises(ParseError) as info:
        parse_program("r1 = 1\n\nbogus\n")
    assert info.value.line() == "line 3: cannot parse instruction: 'bogus'"


# ------------------------------------------------------------ llvm-objdump cross-check

_BPF_C = r"""
typedef unsigned long long u64;
struct data { unsigned int a; unsigned short b; unsigned char c; signed char e; int f; u64 d; };

__attribute__((section("tc"), used))
int prog(struct data *p)
{
	volatile u64 stack[2];
	u64 x = p->d * 3 + 0x1234;
	unsigned int w = p->a;
	long s = p->e;

	stack[0] = x;
	x ^= (u64)p->b << 5;
	x |= 0xff00;
	x &= ~0xf0ULL;
	w = w * 13 - 0x77;
	w >>= 2;
	stack[1] = w;
	p->a = w;
	p->b = (unsigned short)x;
	p->c = 7;
	p->f = -8;
	p->d = (x >> 3) + s + p->f + stack[0] - stack[1];
	return (int)(x & 0x7fff);
}
"""

# llvm spellings our parser takes: loads, stores and ALU ops (hex immediates, `(r1 + 0x4)`).
# Calls, jumps, lddw and atomics are printed differently by llvm and are left out.
_LLVM_LINE = re.compile(r"^\s*(\d+):\s+(.*\S)\s*$")
_LLVM_CHECKED = re.compile(r"^(\*\(|[rw]\d+ (?:[-+*/%&|^]|<<|>>|s>>)?= (?!.*\bll$))")


@pytest.mark.skipif(
    not (shutil.which("clang-19") and shutil.which("llvm-objdump-19")),
    reason="clang-19 / llvm-objdump-19 not installed",
)
def test_llvm_objdump_spellings_parse_to_the_decoded_instruction(tmp_path: Path) -> None:
    from elftools.elf.elffile import ELFFile

    src, obj = tmp_path / "prog.bpf.c", tmp_path / "prog.bpf.o"
    src.write_text(_BPF_C)
    subprocess.run(
        ["clang-19", "-target", "bpf", "-O2", "-mcpu=v4", "-c", str(src), "-o", str(obj)],
        check=True,
    )
    listing = subprocess.run(
        ["llvm-objdump-19", "-d", "--no-show-raw-insn", str(obj)],
        check=True, capture_output=True, text=True,
    ).stdout
    with obj.open("rb") as f:
        section = ELFFile(f).get_section_by_name("tc")
        assert section is not None
        insns = decode(section.data())
    by_slot = dict(zip(slot_indices(insns), insns, strict=True))

    checked: list[str] = []
    for line in listing.splitlines():
        m = _LLVM_LINE.match(line)
        if m is None or not _LLVM_CHECKED.match(m[2]):
            continue
        assert parse_insn(m[2]) == by_slot[int(m[1])], m[2]
        checked.append(m[2])
    # the program must exercise what this test is about
    assert any(re.search(r"= \*\(s8 \*\)\(r\d+ \+ 0x", t) for t in checked)
    assert any(re.search(r"\(r10 - 0x", t) for t in checked)
    assert any(re.match(r"\*\(u32 \*\)\(r\d+ \+ 0x8\) = -0x8$", t) for t in checked)
    assert any(re.match(r"w\d+ \+= -0x77$", t) for t in checked)
    assert any(re.match(r"r\d+ &= -0x", t) for t in checked)
    assert len(checked) >= 20


def test_number_literals_with_leading_zeros_and_tabs():
    from epass.isa import Alu, AluOp, parse_insn
    from epass.isa.asm import assemble

    assert parse_insn("r1 = 010") == Alu(AluOp.MOV, 1, None, 10)
    assert parse_insn("r1 += -\t1") == Alu(AluOp.ADD, 1, None, -1)
    assert assemble("mov %r0, 010") == [Alu(AluOp.MOV, 0, None, 10)]
