"""The bpf_conformance suite through our assembler, codec and text.

Positive cases (tests/*.data) must assemble (or decode), agree with their
`-- raw` bytes when they have both, and survive codec and text round trips.
Negative cases (negative/*.data) must be rejected: bytecode by the decoder
with a DecodeError, assembly by the assembler with a ParseError, and
malformed files by the `.data` parser.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from epass.errors import DecodeError, EpassError, ParseError
from epass.isa import (
    Alu,
    AluOp,
    Call,
    CallKind,
    Exit,
    Goto,
    Insn,
    JmpOp,
    Jump,
    LoadImm64,
    decode,
    encode,
    format_insn,
    format_program,
    parse_program,
)
from epass.isa.asm import MNEMONICS, assemble, load_case, parse_data_file

# vendored copy of bpf_conformance (see its SOURCE.txt); another copy can be named
SUITE = Path(os.environ.get("EPASS_CONFORMANCE_DIR",
                            Path(__file__).parent / "data" / "bpf_conformance"))

POSITIVE = sorted((SUITE / "tests").glob("*.data"))
NEGATIVE = sorted((SUITE / "negative").glob("*.data"))

# Negative cases that hold a valid program: what makes them fail is execution,
# which this package does not do. Each is checked to still assemble, so an entry
# cannot hide an assembler bug.
EXCLUSIONS: dict[str, str] = {
    "error": "`or %r0, %r10` is valid assembly; the expected 'Invalid' is a verifier's "
    "complaint about reading the uninitialised r0",
    "incorrect_return_value_high_bits": "a valid program with a deliberately wrong "
    "`-- result`; it tests the runner's result comparison, which needs an interpreter",
}


def test_suite_is_complete() -> None:
    assert len(POSITIVE) == 313
    assert len(NEGATIVE) == 60
    assert len(EXCLUSIONS) <= 2
    assert set(EXCLUSIONS) <= {p.stem for p in NEGATIVE}


# ------------------------------------------------------------ positive cases


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_case(path: Path) -> None:
    case = load_case(path)
    assert case.result is not None
    assert case.asm is not None or case.raw is not None
    program = case.program()  # assembles / decodes, and checks asm == raw when both exist
    if case.asm is not None and case.raw is not None:
        assert encode(assemble(case.asm)) == case.raw
    assert decode(encode(program)) == program
    assert parse_program(format_program(program)) == program


def test_raw_and_asm_agree_on_lddw() -> None:
    case = load_case(SUITE / "tests" / "lddw.data")
    assert case.raw is not None and len(case.raw) == 24
    assert case.program() == [LoadImm64(0, 0x1122334455667788), Exit()]


# ------------------------------------------------------------ negative cases


def _reject(path: Path) -> EpassError:
    """The error a negative case is rejected with, checking which stage rejects it."""
    try:
        case = parse_data_file(path.read_text(), name=path.stem)
    except ParseError as err:
        return err  # a malformed file (unknown section)
    if case.raw is not None:
        with pytest.raises(DecodeError) as info:
            decode(case.raw)
        return info.value
    if case.asm is not None:
        with pytest.raises(ParseError) as info_asm:
            assemble(case.asm, case.asm_line)
        return info_asm.value
    with pytest.raises(ParseError) as info_case:
        case.program()  # no program at all
    return info_case.value


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.stem)
def test_negative_case(path: Path) -> None:
    if path.stem in EXCLUSIONS:
        program = load_case(path).program()  # stays a valid program, see EXCLUSIONS
        assert decode(encode(program)) == program
        return
    err = _reject(path)
    text = path.read_text()
    assert isinstance(err, DecodeError if "\n-- raw" in text else ParseError)
    # `unused-<insn>-<field>` names the reserved field the decoder must report
    if path.stem.startswith("unused-"):
        field = {"src": "src_reg", "dst": "dst_reg", "offset": "off", "imm": "imm"}
        assert err.field == field[path.stem.rsplit("-", 1)[1]]


NEGATIVE_MESSAGES: dict[str, str] = {
    "empty": "empty: no program: no `-- asm` or `-- raw` section",
    "empty_instructions": "empty_instructions: no program: no `-- asm` or `-- raw` section",
    "invalid_unknown_directive":
        "invalid_unknown_directive: line 4: unknown section '-- Unknown directive'",
    "invalid_register": "line 4: Invalid register: %r50",
    "invalid_label": "line 4: Invalid label: NOT_A_LABEL",
    "invalid_lock2": "line 4: Invalid number of operands for lock",
    "invalid_lock": "line 4: Invalid number of operands for lock or: expected 2, got 1",
    "invalid_operand_count": "line 4: Invalid number of operands for lddw: expected 2, got 1",
    "invalid_mnemonic": "line 5: Invalid mnemonic: ldxq",
    "invalid_offset": "line 4: Invalid memory operand: %r1 (expected [%rN+OFF])",
    "invalid_offset_range": "line 5: Offset out of 16-bit range: [%r1+0x10000]",
    "invalid_imm32_dec_range": "line 5: Immediate out of 32-bit range: 2147483648",
    "invalid_imm32_hex_range": "line 5: Immediate out of 32-bit range: 0x100000000",
    "unused-call-dst": "insn 0: reserved field dst_reg is set (1) (opcode 0x85)",
    "unused-stdw-src": "insn 0: reserved field src_reg is set (1) (opcode 0x7a)",
    "unused-ja-imm": "insn 0: reserved field imm is set (1) (opcode 0x05)",
    "unused-le16-offset": "insn 0: reserved field off is set (1) (opcode 0xd4)",
}


@pytest.mark.parametrize("name", sorted(NEGATIVE_MESSAGES))
def test_negative_message(name: str) -> None:
    assert _reject(SUITE / "negative" / f"{name}.data").line() == NEGATIVE_MESSAGES[name]


@pytest.mark.parametrize("name", ["invalid_lock", "invalid_lock2", "invalid_register"])
def test_negative_message_contains_the_upstream_error(name: str) -> None:
    # these files give the assembler's expected error text in `-- error`
    case_error = parse_data_file((SUITE / "negative" / f"{name}.data").read_text()).error
    assert case_error
    assert case_error in _reject(SUITE / "negative" / f"{name}.data").message


def test_case_error_names_file_section_and_line() -> None:
    case = parse_data_file("# header\n-- asm\nmov %r0, 1\nexit %r0\n-- result\n0x1\n", "t")
    with pytest.raises(ParseError) as info:
        case.program()
    assert info.value.line() == "t: section asm: line 4: Invalid number of operands for exit: " \
        "expected 0, got 1"


# ------------------------------------------------------------ the dialect, mnemonic by mnemonic

# (dialect line, kernel text of what it assembles to): every mnemonic of the table.
DIALECT: list[tuple[str, str]] = [
    ("add %r1, 5", "r1 += 5"), ("add32 %r1, %r2", "w1 += w2"),
    ("sub %r1, -1", "r1 -= -1"), ("sub32 %r1, 1", "w1 -= 1"),
    ("mul %r1, %r2", "r1 *= r2"), ("mul32 %r1, 7", "w1 *= 7"),
    ("div %r1, 3", "r1 /= 3"), ("div32 %r1, %r2", "w1 /= w2"),
    ("sdiv %r1, %r2", "r1 s/= r2"), ("sdiv32 %r1, -3", "w1 s/= -3"),
    ("or %r1, 0xff", "r1 |= 255"), ("or32 %r1, %r2", "w1 |= w2"),
    ("and %r1, 0xffffffff", "r1 &= -1"), ("and32 %r1, 1", "w1 &= 1"),
    ("lsh %r1, 32", "r1 <<= 32"), ("lsh32 %r1, %r2", "w1 <<= w2"),
    ("rsh %r1, %r2", "r1 >>= r2"), ("rsh32 %r1, 3", "w1 >>= 3"),
    ("mod %r1, 10", "r1 %= 10"), ("mod32 %r1, %r2", "w1 %= w2"),
    ("smod %r1, %r2", "r1 s%= r2"), ("smod32 %r1, -10", "w1 s%= -10"),
    ("xor %r1, %r2", "r1 ^= r2"), ("xor32 %r1, 0x80000000", "w1 ^= -2147483648"),
    ("mov %r1, -1", "r1 = -1"), ("mov32 %r1, %r10", "w1 = w10"),
    ("arsh %r1, 63", "r1 s>>= 63"), ("arsh32 %r1, %r2", "w1 s>>= w2"),
    ("neg %r3", "r3 = -r3"), ("neg32 %r3", "w3 = -w3"),
    ("movsx864 %r1, %r2", "r1 = (s8)r2"), ("movsx832 %r1, %r2", "w1 = (s8)w2"),
    ("movsx1664 %r1, %r2", "r1 = (s16)r2"), ("movsx1632 %r1, %r2", "w1 = (s16)w2"),
    ("movsx3264 %r1, %r2", "r1 = (s32)r2"),
    ("le16 %r0", "r0 = le16 r0"), ("le32 %r0", "r0 = le32 r0"), ("le64 %r0", "r0 = le64 r0"),
    ("be16 %r0", "r0 = be16 r0"), ("be32 %r0", "r0 = be32 r0"), ("be64 %r0", "r0 = be64 r0"),
    ("swap16 %r0", "r0 = bswap16 r0"), ("swap32 %r0", "r0 = bswap32 r0"),
    ("swap64 %r0", "r0 = bswap64 r0"), ("bswap16 %r0", "r0 = bswap16 r0"),
    ("bswap32 %r0", "r0 = bswap32 r0"), ("bswap64 %r0", "r0 = bswap64 r0"),
    ("jeq %r1, 0xffffffff, +1", "if r1 == 0xffffffff goto pc+1"),
    ("jeq32 %r1, %r2, -1", "if w1 == w2 goto pc-1"),
    ("jgt %r1, %r2, +0", "if r1 > r2 goto pc+0"), ("jgt32 %r1, 6, +2", "if w1 > 0x6 goto pc+2"),
    ("jge %r1, 1, +1", "if r1 >= 0x1 goto pc+1"), ("jge32 %r1, %r2, +1", "if w1 >= w2 goto pc+1"),
    ("jset %r1, 8, +1", "if r1 & 0x8 goto pc+1"), ("jset32 %r1, %r2, +1", "if w1 & w2 goto pc+1"),
    ("jne %r1, -1, +1", "if r1 != 0xffffffff goto pc+1"),
    ("jne32 %r1, %r2, +1", "if w1 != w2 goto pc+1"),
    ("jsgt %r1, %r2, +1", "if r1 s> r2 goto pc+1"),
    ("jsgt32 %r1, 1, +1", "if w1 s> 0x1 goto pc+1"),
    ("jsge %r1, 1, +1", "if r1 s>= 0x1 goto pc+1"),
    ("jsge32 %r1, %r2, +1", "if w1 s>= w2 goto pc+1"),
    ("jlt %r1, 4, +1", "if r1 < 0x4 goto pc+1"), ("jlt32 %r1, %r2, +1", "if w1 < w2 goto pc+1"),
    ("jle %r1, %r2, +1", "if r1 <= r2 goto pc+1"), ("jle32 %r1, 4, +1", "if w1 <= 0x4 goto pc+1"),
    ("jslt %r1, 4, +1", "if r1 s< 0x4 goto pc+1"),
    ("jslt32 %r1, %r2, +1", "if w1 s< w2 goto pc+1"),
    ("jsle %r1, %r2, +1", "if r1 s<= r2 goto pc+1"),
    ("jsle32 %r1, 4, +1", "if w1 s<= 0x4 goto pc+1"),
    ("ja -1", "goto pc-1"), ("ja32 +100", "gotol pc+100"), ("exit", "exit"),
    ("call 1", "call bpf_map_lookup_elem#1"), ("call %r2", "callx r2"),
    ("call helper 12", "call bpf_tail_call#12"), ("call local +3", "call pc+3"),
    ("call runtime 7", "call kfunc#7"),
    ("lddw %r0, 0x123456789abcdef0", "r0 = 0x123456789abcdef0 ll"),
    ("ldxb %r0, [%r1]", "r0 = *(u8 *)(r1 +0)"), ("ldxh %r0, [%r1+2]", "r0 = *(u16 *)(r1 +2)"),
    ("ldxw %r0, [%r1+0x4]", "r0 = *(u32 *)(r1 +4)"),
    ("ldxdw %r0, [%r10-8]", "r0 = *(u64 *)(r10 -8)"),
    ("ldxsb %r0, [%r10-1]", "r0 = *(s8 *)(r10 -1)"),
    ("ldxsh %r0, [%r10-2]", "r0 = *(s16 *)(r10 -2)"),
    ("ldxsw %r0, [%r10-4]", "r0 = *(s32 *)(r10 -4)"),
    ("stb [%r10-1], 0xff", "*(u8 *)(r10 -1) = 255"),
    ("sth [%r0], 0x1234", "*(u16 *)(r0 +0) = 4660"),
    ("stw [%r1+2], -5", "*(u32 *)(r1 +2) = -5"),
    ("stdw [%r10-8], 0x80000000", "*(u64 *)(r10 -8) = -2147483648"),
    ("stxb [%r10-1], %r1", "*(u8 *)(r10 -1) = r1"), ("stxh [%r1+2], %r2", "*(u16 *)(r1 +2) = r2"),
    ("stxw [%r1], %r2", "*(u32 *)(r1 +0) = r2"), ("stxdw [%r10-8], %r0", "*(u64 *)(r10 -8) = r0"),
    ("lock add [%r10-8], %r1", "lock *(u64 *)(r10 -8) += r1"),
    ("lock add32 [%r10-4], %r1", "lock *(u32 *)(r10 -4) += r1"),
    ("lock or [%r10-8], %r1", "lock *(u64 *)(r10 -8) |= r1"),
    ("lock or32 [%r10-4], %r1", "lock *(u32 *)(r10 -4) |= r1"),
    ("lock and [%r10-8], %r1", "lock *(u64 *)(r10 -8) &= r1"),
    ("lock and32 [%r10-4], %r1", "lock *(u32 *)(r10 -4) &= r1"),
    ("lock xor [%r10-8], %r1", "lock *(u64 *)(r10 -8) ^= r1"),
    ("lock xor32 [%r10-4], %r1", "lock *(u32 *)(r10 -4) ^= r1"),
    ("lock fetch add [%r10-8], %r3", "r3 = atomic64_fetch_add((u64 *)(r10 -8), r3)"),
    ("lock fetch add32 [%r10-4], %r3", "r3 = atomic_fetch_add((u32 *)(r10 -4), r3)"),
    ("lock fetch or [%r10-8], %r3", "r3 = atomic64_fetch_or((u64 *)(r10 -8), r3)"),
    ("lock fetch or32 [%r10-4], %r3", "r3 = atomic_fetch_or((u32 *)(r10 -4), r3)"),
    ("lock fetch and [%r10-8], %r3", "r3 = atomic64_fetch_and((u64 *)(r10 -8), r3)"),
    ("lock fetch and32 [%r10-4], %r3", "r3 = atomic_fetch_and((u32 *)(r10 -4), r3)"),
    ("lock fetch xor [%r10-8], %r3", "r3 = atomic64_fetch_xor((u64 *)(r10 -8), r3)"),
    ("lock fetch xor32 [%r10-4], %r3", "r3 = atomic_fetch_xor((u32 *)(r10 -4), r3)"),
    ("lock xchg [%r10-8], %r1", "r1 = atomic64_xchg((u64 *)(r10 -8), r1)"),
    ("lock xchg32 [%r10-4], %r1", "r1 = atomic_xchg((u32 *)(r10 -4), r1)"),
    ("lock fetch xchg [%r10-8], %r1", "r1 = atomic64_xchg((u64 *)(r10 -8), r1)"),
    ("lock fetch xchg32 [%r10-4], %r1", "r1 = atomic_xchg((u32 *)(r10 -4), r1)"),
    ("lock cmpxchg [%r10-8], %r1", "r0 = atomic64_cmpxchg((u64 *)(r10 -8), r0, r1)"),
    ("lock cmpxchg32 [%r10-4], %r1", "r0 = atomic_cmpxchg((u32 *)(r10 -4), r0, r1)"),
    ("lock fetch cmpxchg [%r10-8], %r1", "r0 = atomic64_cmpxchg((u64 *)(r10 -8), r0, r1)"),
    ("lock fetch cmpxchg32 [%r10-4], %r1", "r0 = atomic_cmpxchg((u32 *)(r10 -4), r0, r1)"),
]


@pytest.mark.parametrize(("line", "text"), DIALECT, ids=[a for a, _ in DIALECT])
def test_dialect_line(line: str, text: str) -> None:
    [insn] = assemble(line)
    assert format_insn(insn) == text


def test_dialect_table_is_fully_tested() -> None:
    tested = {next(n for n in sorted(MNEMONICS, key=len, reverse=True)
                   if line == n or line.startswith(n + " ")) for line, _ in DIALECT}
    assert tested == set(MNEMONICS)


# ------------------------------------------------------------ labels and layout


def test_labels_count_lddw_as_two_slots() -> None:
    prog = assemble(
        "mov %r0, 1\n"
        "lddw %r1, 0x100000000\n"
        "jeq %r1, 0, skip   # slot 3 -> slot 6\n"
        "ja32 skip\n"
        "call local sub\n"
        "skip:\n"
        "exit\n"
        "sub: ja -2\n"
        "exit\n"
    )
    assert prog == [
        Alu(AluOp.MOV, 0, None, 1),
        LoadImm64(1, 1 << 32),
        Jump(JmpOp.EQ, 1, 2, None, 0),
        Goto(1, long=True),
        Call(CallKind.LOCAL, 1),
        Exit(),
        Goto(-2),
        Exit(),
    ]


def test_exit_names_the_first_exit_unless_a_label_does() -> None:
    implicit = assemble("jne %r0, 0, exit\nmov %r0, 1\nexit\nmov %r0, 2\nexit\n")
    assert implicit[0] == Jump(JmpOp.NE, 0, 1, None, 0)
    explicit = assemble("ja exit\nexit\nexit:\nexit\n")
    assert explicit[0] == Goto(1)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a:\na:\nexit\n", "line 2: Duplicate label: a"),
        ("ja 5\nexit\n", "line 1: Invalid jump target: 5 (expected +N, -N or a label)"),
        ("ja +32768\n", "line 1: Jump offset out of 16-bit range: +32768"),
        ("mov %r0, r1\n", "line 1: Invalid register: r1"),
        ("mov %r11, 1\n", "line 1: Invalid register: %r11"),
        ("mov %r0, 1x\n", "line 1: Invalid number: 1x"),
        ("mov %r0,\n", "line 1: Empty operand in: mov %r0,"),
        ("stw [%r1+-2], 1\n", "line 1: Invalid memory operand: [%r1+-2]"),
        ("lddw %r0, 0x10000000000000000\n",
         "line 1: Immediate out of 64-bit range: 0x10000000000000000"),
        ("lock foo [%r1], %r2\n", "line 1: Invalid mnemonic: lock foo"),
        ("lock load_acquire [%r1], %r2\n", "line 1: Invalid mnemonic: lock load_acquire"),
        ("# only a comment\n\n", "no instructions"),
    ],
)
def test_assemble_rejects(source: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        assemble(source)
    assert info.value.line() == message


# ------------------------------------------------------------ the .data format


def test_parse_data_file_sections() -> None:
    case = parse_data_file(
        "# Copyright\n"
        "-- asm\n"
        "mov %r0, 1 # one\n"
        "exit\n"
        "-- raw\n"
        "b7 00 00 00 01 00 00 00\n"
        "0x0000000000000095\n"
        "-- mem\n"
        "00 01\n"
        "02\n"
        "-- result\n"
        "42\n"
        "-- no register offset\n"
        "call instruction\n",
        name="t",
    )
    assert case.name == "t"
    assert case.asm_line == 3
    assert case.raw == bytes.fromhex("b700000001000000" "9500000000000000")
    assert case.mem == b"\x00\x01\x02"
    assert case.result == 42
    assert case.error is None
    assert case.options == ["no register offset"]
    assert case.notes == {"no register offset": "call instruction"}
    prog: list[Insn] = case.program()
    assert prog == [Alu(AluOp.MOV, 0, None, 1), Exit()]


def test_parse_data_file_keeps_the_c_source_and_error_text() -> None:
    case = parse_data_file("-- c\nint x;\n-- asm\nexit\n-- error\nInvalid\n")
    assert case.c == "int x;"
    assert case.error == "Invalid"
    assert case.result is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- asm\nexit\n-- asm\nexit\n", "d: line 3: duplicate section '-- asm'"),
        ("mov %r0, 1\n-- asm\nexit\n", "d: line 1: text before the first section"),
        ("-- raw\nb7 0\n", "d: line 2: Invalid hex byte in raw: 0"),
        ("-- mem\nzz\n", "d: line 2: Invalid hex byte in mem: zz"),
        ("-- result\n1\n2\n", "d: the result section must hold exactly one value"),
        ("-- result\n-1\n", "d: line 2: Invalid result: -1 (expected a 64-bit unsigned value)"),
        ("-- asm\nmov %r0, 1\n-- raw\nb7 00 00 00 02 00 00 00\n",
         "d: section raw: asm and raw differ at slot 0"),
    ],
)
def test_bad_data_files(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_data_file(text, name="d").program()
    assert info.value.line() == message
