"""The bpf_conformance / ubpf assembler dialect, and the `.data` files written in it.

    mov %r0, 1              add32 %r0, %r1          lddw %r0, 0x123456789
    ldxw %r0, [%r1+4]       stxdw [%r10-8], %r0     stw [%r1+2], 5
    jeq %r1, 0, +2          jne %r0, %r1, done      ja32 done
    call 1                  call local func1        call %r2
    lock fetch add [%r10-8], %r1                    be16 %r0
    done:                   exit                    # comment

The mnemonic table is data derived from `opcodes.py`: every ALU op, jump
op, byte swap, access size and atomic op there gets its mnemonic here, so
a new table row needs no new assembler code. Jump targets are `+N`/`-N`
slot offsets or labels; as in the upstream assembler, `exit` names the
first `exit` instruction unless a label of that name exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum, auto
from pathlib import Path
from typing import TypeVar

from epass.errors import DecodeError, ParseError
from epass.isa.codec import decode, encode
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
    Store,
)
from epass.isa.opcodes import (
    ATOMIC_FETCH_OPS,
    ATOMIC_PLAIN_OPS,
    ENDIAN_BITS,
    MAX_REG,
    AluOp,
    AtomicOp,
    CallKind,
    EndianKind,
    JmpOp,
)

# ------------------------------------------------------------ the dialect table


class Kind(Enum):
    """What a mnemonic builds; `OPERANDS` lists what it takes."""

    ALU = auto()
    NEG = auto()
    MOVSX = auto()
    ENDIAN = auto()
    JUMP = auto()
    JA = auto()
    JA32 = auto()
    EXIT = auto()
    CALL = auto()
    CALL_HELPER = auto()
    CALL_LOCAL = auto()
    CALL_KFUNC = auto()
    LDDW = auto()
    LOAD = auto()
    STORE_IMM = auto()
    STORE_REG = auto()
    ATOMIC = auto()


OPERANDS: dict[Kind, tuple[str, ...]] = {
    Kind.ALU: ("reg", "reg|imm"),  # add %r0, 1 / add %r0, %r1
    Kind.NEG: ("reg",),
    Kind.MOVSX: ("reg", "reg"),
    Kind.ENDIAN: ("reg",),
    Kind.JUMP: ("reg", "reg|imm", "target"),
    Kind.JA: ("target",),
    Kind.JA32: ("target",),  # 32-bit offset, kept in imm (gotol)
    Kind.EXIT: (),
    Kind.CALL: ("reg|imm",),  # call 1 (helper id) / call %r2 (callx)
    Kind.CALL_HELPER: ("imm",),  # call helper 1
    Kind.CALL_LOCAL: ("target",),  # call local func1
    Kind.CALL_KFUNC: ("imm",),  # call runtime 7
    Kind.LDDW: ("reg", "imm64"),
    Kind.LOAD: ("reg", "mem"),
    Kind.STORE_IMM: ("mem", "imm"),
    Kind.STORE_REG: ("mem", "reg"),
    Kind.ATOMIC: ("mem", "reg"),
}


@dataclass(frozen=True)
class Mnemonic:
    """One dialect mnemonic: the kind it builds and the fields its name fixes."""

    kind: Kind
    op: AluOp | JmpOp | EndianKind | AtomicOp | None = None
    bits: int = 64  # ALU/JMP width, byte-swap width
    size: int = 0  # memory access size in bytes
    signed: bool = False


SIZE_SUFFIX: dict[str, int] = {"b": 1, "h": 2, "w": 4, "dw": 8}


def _build_table() -> dict[str, Mnemonic]:
    t: dict[str, Mnemonic] = {}
    for op in AluOp:
        spec = op.value
        if spec.reg_only:
            # movsx<from><to>: movsx864 is r = (s8)r, movsx1632 is w = (s16)w
            for bits in (32, 64):
                if not (spec.alu64_only and bits == 32):
                    t[f"movsx{spec.off}{bits}"] = Mnemonic(Kind.MOVSX, op, bits)
            continue
        kind = Kind.ALU if spec.has_source else Kind.NEG
        t[op.name.lower()] = Mnemonic(kind, op, 64)
        t[op.name.lower() + "32"] = Mnemonic(kind, op, 32)
    for ekind in EndianKind:
        # bswap is spelled `swap16` in older files and `bswap16` in newer ones
        names = ("swap", "bswap") if ekind == EndianKind.BSWAP else (ekind.value,)
        for name in names:
            for bits in ENDIAN_BITS:
                t[f"{name}{bits}"] = Mnemonic(Kind.ENDIAN, ekind, bits)
    for jop in JmpOp:
        t["j" + jop.name.lower()] = Mnemonic(Kind.JUMP, jop, 64)
        t["j" + jop.name.lower() + "32"] = Mnemonic(Kind.JUMP, jop, 32)
    t["ja"] = Mnemonic(Kind.JA)
    t["ja32"] = Mnemonic(Kind.JA32)
    t["exit"] = Mnemonic(Kind.EXIT)
    t["call"] = Mnemonic(Kind.CALL)
    t["call helper"] = Mnemonic(Kind.CALL_HELPER)
    t["call local"] = Mnemonic(Kind.CALL_LOCAL)
    t["call runtime"] = Mnemonic(Kind.CALL_KFUNC)
    t["lddw"] = Mnemonic(Kind.LDDW)
    for suffix, size in SIZE_SUFFIX.items():
        t["ldx" + suffix] = Mnemonic(Kind.LOAD, size=size)
        if size != 8:
            t["ldxs" + suffix] = Mnemonic(Kind.LOAD, size=size, signed=True)
        t["st" + suffix] = Mnemonic(Kind.STORE_IMM, size=size)
        t["stx" + suffix] = Mnemonic(Kind.STORE_REG, size=size)
    for aop in AtomicOp:
        name = aop.value.name
        if aop in ATOMIC_PLAIN_OPS:
            spellings = [f"lock {name}"]
        elif aop in ATOMIC_FETCH_OPS:
            spellings = [f"lock fetch {name}"]
        elif aop in (AtomicOp.XCHG, AtomicOp.CMPXCHG):
            # these always fetch; upstream accepts the redundant `fetch` too
            spellings = [f"lock {name}", f"lock fetch {name}"]
        else:
            continue  # load-acquire / store-release have no spelling in this dialect
        for spelling in spellings:
            t[spelling] = Mnemonic(Kind.ATOMIC, aop, size=8)
            t[spelling + "32"] = Mnemonic(Kind.ATOMIC, aop, size=4)
    return t


MNEMONICS: dict[str, Mnemonic] = _build_table()
_MAX_WORDS = max(len(name.split()) for name in MNEMONICS)

# ------------------------------------------------------------ operand readers

_NUMBER = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|\d+)")
_MEM = re.compile(r"\[\s*(\S+?)\s*(?:([+-])\s*(\S+?))?\s*\]")
_LABEL = re.compile(r"[A-Za-z_.][\w.]*")
_LABEL_DEF = re.compile(r"([A-Za-z_.][\w.]*)\s*:")
_S16 = (-(1 << 15), (1 << 15) - 1)
_S32 = (-(1 << 31), (1 << 31) - 1)


class _Line:
    """Operand readers for one source line; failures name the line."""

    def __init__(self, lineno: int) -> None:
        self.lineno = lineno

    def error(self, message: str) -> ParseError:
        return ParseError(f"line {self.lineno}: {message}")

    def number(self, text: str) -> tuple[int, bool]:
        """The value of a decimal or 0x-hex literal, and whether it was hex."""
        m = _NUMBER.fullmatch(text)
        if m is None:
            raise self.error(f"Invalid number: {text}")
        digits = m[2]
        value = int(digits[2:], 16) if digits[:2].lower() == "0x" else int(digits, 10)
        return (-value if m[1] == "-" else value), m[2][:2].lower() == "0x"

    def reg(self, text: str) -> int:
        m = re.fullmatch(r"%r(\d+)", text)
        if m is None or int(m[1]) > MAX_REG:
            raise self.error(f"Invalid register: {text}")
        return int(m[1])

    def imm(self, text: str) -> int:
        """A 32-bit immediate as the signed value of the field.

        Decimal must fit in s32; hex may also spell the u32 bit pattern
        (`0xffffffff` is -1), as the conformance files do."""
        value, is_hex = self.number(text)
        high = (1 << 32) - 1 if is_hex else _S32[1]
        if not _S32[0] <= value <= high:
            raise self.error(f"Immediate out of 32-bit range: {text}")
        return value - (1 << 32) if value > _S32[1] else value

    def imm64(self, text: str) -> int:
        value, _ = self.number(text)
        if not -(1 << 63) <= value < (1 << 64):
            raise self.error(f"Immediate out of 64-bit range: {text}")
        return value & ((1 << 64) - 1)

    def mem(self, text: str) -> tuple[int, int]:
        """`[%rN]`, `[%rN+OFF]`, `[%rN-OFF]` -> (register, offset)."""
        m = _MEM.fullmatch(text)
        if m is None:
            raise self.error(f"Invalid memory operand: {text} (expected [%rN+OFF])")
        if m[2] is None:
            return self.reg(m[1]), 0
        if m[3][:1] in "+-":
            raise self.error(f"Invalid memory operand: {text}")
        value, _ = self.number(m[3])
        off = -value if m[2] == "-" else value
        if not _S16[0] <= off <= _S16[1]:
            raise self.error(f"Offset out of 16-bit range: {text}")
        return self.reg(m[1]), off


def _is_reg(text: str) -> bool:
    """Whether a register-or-immediate operand is meant as a register (`r1` is one, misspelt)."""
    return text.startswith("%") or re.fullmatch(r"[rw]\d+", text) is not None


_T = TypeVar("_T")


def _op(m: Mnemonic, cls: type[_T]) -> _T:
    assert isinstance(m.op, cls), m
    return m.op


# ------------------------------------------------------------ assembling


@dataclass
class _Pending:
    """One instruction line from the first pass, built once all labels are known."""

    line: _Line
    slot: int
    mnemonic: Mnemonic
    args: list[str]

    def target(self, text: str, labels: dict[str, int], wide: bool = False) -> int:
        """`+N` / `-N`, or a label as a pc-relative slot offset (label - slot - 1)."""
        if text[:1] in "+-":
            off, _ = self.line.number(text)
        elif _LABEL.fullmatch(text) is None:
            raise self.line.error(f"Invalid jump target: {text} (expected +N, -N or a label)")
        elif text not in labels:
            raise self.line.error(f"Invalid label: {text}")
        else:
            off = labels[text] - self.slot - 1
        low, high = _S32 if wide else _S16
        if not low <= off <= high:
            raise self.line.error(f"Jump offset out of {'32' if wide else '16'}-bit range: {text}")
        return off

    def build(self, labels: dict[str, int]) -> Insn:
        line, m, a = self.line, self.mnemonic, self.args
        match m.kind:
            case Kind.ALU:
                op, dst = _op(m, AluOp), line.reg(a[0])
                if _is_reg(a[1]):
                    return Alu(op, dst, line.reg(a[1]), 0, m.bits)
                return Alu(op, dst, None, line.imm(a[1]), m.bits)
            case Kind.NEG:
                return Alu(AluOp.NEG, line.reg(a[0]), None, 0, m.bits)
            case Kind.MOVSX:
                return Alu(_op(m, AluOp), line.reg(a[0]), line.reg(a[1]), 0, m.bits)
            case Kind.ENDIAN:
                return Endian(_op(m, EndianKind), line.reg(a[0]), m.bits)
            case Kind.JUMP:
                jop, dst, off = _op(m, JmpOp), line.reg(a[0]), self.target(a[2], labels)
                if _is_reg(a[1]):
                    return Jump(jop, dst, off, line.reg(a[1]), 0, m.bits)
                return Jump(jop, dst, off, None, line.imm(a[1]), m.bits)
            case Kind.JA:
                return Goto(self.target(a[0], labels))
            case Kind.JA32:
                return Goto(self.target(a[0], labels, wide=True), long=True)
            case Kind.EXIT:
                return Exit()
            case Kind.CALL:
                if _is_reg(a[0]):
                    return CallReg(line.reg(a[0]))
                return Call(CallKind.HELPER, line.imm(a[0]))
            case Kind.CALL_HELPER:
                return Call(CallKind.HELPER, line.imm(a[0]))
            case Kind.CALL_LOCAL:
                return Call(CallKind.LOCAL, self.target(a[0], labels, wide=True))
            case Kind.CALL_KFUNC:
                return Call(CallKind.KFUNC, line.imm(a[0]))
            case Kind.LDDW:
                return LoadImm64(line.reg(a[0]), line.imm64(a[1]))
            case Kind.LOAD:
                src, off = line.mem(a[1])
                return Load(m.size, line.reg(a[0]), src, off, m.signed)
            case Kind.STORE_IMM:
                dst, off = line.mem(a[0])
                return Store(m.size, dst, off, None, line.imm(a[1]))
            case Kind.STORE_REG:
                dst, off = line.mem(a[0])
                return Store(m.size, dst, off, line.reg(a[1]))
            case Kind.ATOMIC:
                dst, off = line.mem(a[0])
                return Atomic(_op(m, AtomicOp), m.size, dst, line.reg(a[1]), off)
        raise AssertionError(m.kind)


def _split(line: _Line, text: str) -> tuple[str, Mnemonic, list[str]]:
    """Find the (possibly multi-word) mnemonic and the comma-separated operands."""
    for words in range(_MAX_WORDS, 0, -1):
        parts = text.split(None, words)
        name = " ".join(parts[:words])
        if len(parts) >= words and name in MNEMONICS:
            rest = parts[words] if len(parts) > words else ""
            args = [arg.strip() for arg in rest.split(",")] if rest.strip() else []
            if not all(args):
                raise line.error(f"Empty operand in: {text}")
            return name, MNEMONICS[name], args
    first = text.split()
    if first[0] == "lock" and len(first) < 2:
        raise line.error("Invalid number of operands for lock")
    raise line.error(f"Invalid mnemonic: {' '.join(first[:2]) if first[0] == 'lock' else first[0]}")


def assemble(text: str, first_line: int = 1) -> list[Insn]:
    """Assemble a program; `first_line` numbers the first line of `text` in error messages."""
    labels: dict[str, int] = {}
    pending: list[_Pending] = []
    first_exit: int | None = None
    slot = 0
    for lineno, raw in enumerate(text.splitlines(), first_line):
        line = _Line(lineno)
        code = raw.split("#", 1)[0].strip()
        label = _LABEL_DEF.match(code)
        if label:
            if label[1] in labels:
                raise line.error(f"Duplicate label: {label[1]}")
            labels[label[1]] = slot
            code = code[label.end():].strip()
        if not code:
            continue
        name, m, args = _split(line, code)
        if len(args) != len(OPERANDS[m.kind]):
            raise line.error(
                f"Invalid number of operands for {name}: "
                f"expected {len(OPERANDS[m.kind])}, got {len(args)}"
            )
        pending.append(_Pending(line, slot, m, args))
        if m.kind == Kind.EXIT and first_exit is None:
            first_exit = slot
        slot += 2 if m.kind == Kind.LDDW else 1  # lddw takes two slots
    if not pending:
        raise ParseError("no instructions")
    if first_exit is not None:
        labels.setdefault("exit", first_exit)
    return [p.build(labels) for p in pending]


# ------------------------------------------------------------ .data files

_DATA_SECTIONS = ("asm", "raw", "mem", "result", "error", "c")
_FLAG_SECTIONS = ("no register offset",)  # flags whose body is a free-text reason


@dataclass
class ConformanceCase:
    """One bpf_conformance `.data` file: a program (asm and/or raw), input and expectation."""

    name: str
    asm: str | None = None
    raw: bytes | None = None
    mem: bytes = b""
    result: int | None = None
    error: str | None = None  # expected error text of a negative case ("" when left empty)
    options: list[str] = field(default_factory=list)  # flag sections, e.g. "no register offset"
    notes: dict[str, str] = field(default_factory=dict)  # the free text under a flag section
    c: str | None = None  # the C source the case came from, informative only
    asm_line: int = 1  # file line of the first asm line, for error messages

    def program(self) -> list[Insn]:
        """The case's instructions; asm and raw must agree byte for byte when both are given."""
        if self.asm is None and self.raw is None:
            raise ParseError("no program: no `-- asm` or `-- raw` section", file=self.name)
        insns: list[Insn] | None = None
        if self.asm is not None:
            try:
                insns = assemble(self.asm, self.asm_line)
            except ParseError as err:
                raise err.at(file=self.name, section="asm") from None
        if self.raw is None:
            assert insns is not None
            return insns
        try:
            decoded = decode(self.raw)
        except DecodeError as err:
            raise err.at(file=self.name, section="raw") from None
        if insns is not None and encode(insns) != self.raw:
            ours = encode(insns)
            diff = [i for i, (x, y) in enumerate(zip(ours, self.raw, strict=False)) if x != y]
            slot = (diff[0] if diff else min(len(ours), len(self.raw))) // 8
            raise ParseError(f"asm and raw differ at slot {slot}", file=self.name, section="raw")
        return decoded


def _hex_bytes(line: _Line, text: str, section: str) -> bytes:
    """Hex bytes `07 00 01 00 ...`, or in raw one little-endian 64-bit word `0x...95`."""
    tokens = text.split()
    if section == "raw" and len(tokens) == 1 and tokens[0].lower().startswith("0x"):
        value, _ = line.number(tokens[0])
        if value >= 1 << 64:
            raise line.error(f"raw word does not fit in 64 bits: {tokens[0]}")
        return value.to_bytes(8, "little")
    out = bytearray()
    for tok in tokens:
        if re.fullmatch(r"[0-9a-fA-F]{2}", tok) is None:
            raise line.error(f"Invalid hex byte in {section}: {tok}")
        out.append(int(tok, 16))
    return bytes(out)


def _result(body: list[tuple[int, str]]) -> int:
    values = [(n, t.split("#", 1)[0].strip()) for n, t in body]
    values = [(n, t) for n, t in values if t]
    if len(values) != 1:
        raise ParseError("the result section must hold exactly one value")
    lineno, text = values[0]
    line = _Line(lineno)
    value, _ = line.number(text)
    if text[:1] in "+-" or value >= 1 << 64:
        raise line.error(f"Invalid result: {text} (expected a 64-bit unsigned value)")
    return value


def _parse_sections(text: str) -> dict[str, list[tuple[int, str]]]:
    """Section name -> its (line number, text) lines. Text before the first section
    must be comments; an unknown or repeated section header is an error."""
    bodies: dict[str, list[tuple[int, str]]] = {}
    section: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        raw = raw.rstrip("\r")
        if raw.startswith("--"):
            section = raw[2:].strip()
            if section not in _DATA_SECTIONS + _FLAG_SECTIONS:
                raise ParseError(f"line {lineno}: unknown section '-- {section}'")
            if section in bodies:
                raise ParseError(f"line {lineno}: duplicate section '-- {section}'")
            bodies[section] = []
        elif section is not None:
            bodies[section].append((lineno, raw))
        elif raw.strip() and not raw.lstrip().startswith("#"):
            raise ParseError(f"line {lineno}: text before the first section")
    return bodies


def parse_data_file(text: str, name: str = "<data>") -> ConformanceCase:
    """Split a `.data` file into its sections. Whether it holds a program is checked
    by `ConformanceCase.program`, so that an empty file still parses."""

    def joined(section: str) -> str:
        return "\n".join(t for _, t in bodies[section])

    try:
        bodies = _parse_sections(text)
        case = ConformanceCase(name)
        for flag in _FLAG_SECTIONS:
            if flag in bodies:
                case.options.append(flag)
                case.notes[flag] = joined(flag).strip()
        if "asm" in bodies:
            case.asm = joined("asm")
            case.asm_line = bodies["asm"][0][0] if bodies["asm"] else 1
        if "c" in bodies:
            case.c = joined("c")
        if "error" in bodies:
            case.error = joined("error").strip()
        for sec in ("raw", "mem"):
            if sec in bodies:
                data = b"".join(
                    _hex_bytes(_Line(n), t.split("#", 1)[0], sec) for n, t in bodies[sec]
                )
                if sec == "raw":
                    case.raw = data
                else:
                    case.mem = data
        if "result" in bodies:
            case.result = _result(bodies["result"])
    except ParseError as err:
        raise err.at(file=name) from None
    return case


def load_case(path: str | Path) -> ConformanceCase:
    """Read and parse one `.data` file; the case is named after the file."""
    p = Path(path)
    return parse_data_file(p.read_text(), name=p.stem)
