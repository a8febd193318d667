"""Pseudo-C instruction text, as the kernel verifier log prints it.

    r1 = *(u32 *)(r1 +4)            if r1 > r7 goto pc+20
    w2 += 5                         if w1 == 0x5 goto pc-3
    r1 = (s8)r2                     call bpf_map_lookup_elem#1
    lock *(u64 *)(r1 +0) += r2      r2 = atomic64_fetch_add((u64 *)(r1 +0), r2)
    r1 = 0x1234 ll                  r1 = map[fd:3][0]+8 ll

Formats follow the kernel's `print_bpf_insn`: ALU and store immediates in
signed decimal, jump immediates as `0x%x` of the 32-bit field, memory
offsets and jump offsets with an explicit sign. Where the kernel prints
nothing that can be parsed back, we chose a form (documented in
docs/isa.md): lddw always ends in ` ll` (as llvm-objdump prints it) and
its pseudo sources print as `map[fd:N]`, `map[fd:N][0]+OFF`, `map[idx:N]`,
`btf_id[N]`, `func[pc+N]`; kfunc calls print as `call kfunc#ID`.

The parser also takes llvm-objdump's spellings (`(r1 + 0x4)`, `-0x1`) and
the kernel log's `N: (b7) ` prefix, so logs and disassembly can be pasted.
`parse_insn(format_insn(i)) == i` for every instruction.
"""

from __future__ import annotations

import re

from epass.errors import ParseError
from epass.isa.helpers import HELPER_IDS, helper_name
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
    slot_indices,
)
from epass.isa.opcodes import (
    ATOMIC_FETCH_OPS,
    ATOMIC_PLAIN_OPS,
    JMP_BY_SYMBOL,
    SIGNED_SIZE_TYPE,
    SIZE_TYPE,
    AluOp,
    AtomicOp,
    CallKind,
    EndianKind,
    PacketMode,
    PseudoKind,
)

# ------------------------------------------------------------------ printing


def _reg(n: int, bits: int = 64) -> str:
    return f"{'w' if bits == 32 else 'r'}{n}"


def _mem(size: int, base: int, off: int, signed: bool = False) -> str:
    ty = SIGNED_SIZE_TYPE[size] if signed else SIZE_TYPE[size]
    return f"*({ty} *)(r{base} {off:+d})"


def _cast_ptr(size: int, base: int, off: int) -> str:
    return f"({SIZE_TYPE[size]} *)(r{base} {off:+d})"


def _atomic_prefix(size: int) -> str:
    return "atomic64" if size == 8 else "atomic"


def format_insn(insn: Insn) -> str:
    """One instruction in the kernel's pseudo-C syntax."""
    match insn:
        case Alu(op=AluOp.NEG, dst=dst, bits=bits):
            return f"{_reg(dst, bits)} = -{_reg(dst, bits)}"
        case Alu(op=op, dst=dst, src=src, imm=imm, bits=bits):
            rhs = _reg(src, bits) if src is not None else str(imm)
            return f"{_reg(dst, bits)} {op.value.symbol}{'' if op.value.reg_only else ' '}{rhs}"
        case Endian(kind=kind, dst=dst, bits=bits):
            return f"r{dst} = {kind.value}{bits} r{dst}"
        case Jump(op=op, dst=dst, off=off, src=src, imm=imm, bits=bits):
            rhs = _reg(src, bits) if src is not None else f"0x{imm & 0xFFFFFFFF:x}"
            return f"if {_reg(dst, bits)} {op.value.symbol} {rhs} goto pc{off:+d}"
        case Goto(off=off, long=long):
            return f"{'gotol' if long else 'goto'} pc{off:+d}"
        case MayGoto(off=off):
            return f"may_goto pc{off:+d}"
        case Call(kind=CallKind.LOCAL, imm=imm):
            return f"call pc{imm:+d}"
        case Call(kind=CallKind.KFUNC, imm=imm, off=off):
            return f"call kfunc#{imm}" + (f" fd_idx={off}" if off else "")
        case Call(imm=imm):
            return f"call {helper_name(imm) or 'unknown'}#{imm}"
        case CallReg(reg=reg):
            return f"callx r{reg}"
        case Exit():
            return "exit"
        case Load(size=size, dst=dst, src=src, off=off, signed=signed):
            return f"r{dst} = {_mem(size, src, off, signed)}"
        case Store(size=size, dst=dst, off=off, src=src, imm=imm):
            rhs = f"r{src}" if src is not None else str(imm)
            return f"{_mem(size, dst, off)} = {rhs}"
        case Atomic():
            return _format_atomic(insn)
        case LoadImm64():
            return f"r{insn.dst} = {_format_lddw_value(insn)} ll"
        case LoadPacket(mode=PacketMode.ABS, size=size, imm=imm):
            return f"r0 = *({SIZE_TYPE[size]} *)skb[{imm}]"
        case LoadPacket(size=size, imm=imm, src=src):
            return f"r0 = *({SIZE_TYPE[size]} *)skb[r{src} + {imm}]"
    raise TypeError(f"not an instruction: {insn!r}")


def _format_atomic(insn: Atomic) -> str:
    op, size, dst, src, off = insn.op, insn.size, insn.dst, insn.src, insn.off
    if op in ATOMIC_PLAIN_OPS:
        return f"lock {_mem(size, dst, off)} {op.value.symbol} r{src}"
    if op in ATOMIC_FETCH_OPS:
        name = f"{_atomic_prefix(size)}_fetch_{op.value.name}"
        return f"r{src} = {name}({_cast_ptr(size, dst, off)}, r{src})"
    if op == AtomicOp.XCHG:
        return f"r{src} = {_atomic_prefix(size)}_xchg({_cast_ptr(size, dst, off)}, r{src})"
    if op == AtomicOp.CMPXCHG:
        return f"r0 = {_atomic_prefix(size)}_cmpxchg({_cast_ptr(size, dst, off)}, r0, r{src})"
    if op == AtomicOp.LOAD_ACQUIRE:
        # load-acquire writes dst_reg from *(src_reg + off)
        return f"r{dst} = load_acquire({_cast_ptr(size, src, off)})"
    return f"store_release({_cast_ptr(size, dst, off)}, r{src})"


def _format_lddw_value(insn: LoadImm64) -> str:
    match insn.kind:
        case PseudoKind.IMM:
            return f"0x{insn.imm:x}"
        case PseudoKind.MAP_FD:
            return f"map[fd:{insn.imm}]"
        case PseudoKind.MAP_IDX:
            return f"map[idx:{insn.imm}]"
        case PseudoKind.MAP_VALUE:
            return f"map[fd:{insn.imm}][0]+{insn.aux}"
        case PseudoKind.MAP_IDX_VALUE:
            return f"map[idx:{insn.imm}][0]+{insn.aux}"
        case PseudoKind.BTF_ID:
            return f"btf_id[{insn.imm}]" + (f"[fd:{insn.aux}]" if insn.aux else "")
        case PseudoKind.FUNC:
            return f"func[pc{insn.imm:+d}]"
    raise TypeError(insn.kind)


def format_program(insns: list[Insn]) -> str:
    """One instruction a line, prefixed with its slot index as the kernel log does."""
    lines = [f"{pos}: {format_insn(insn)}" for pos, insn in zip(slot_indices(insns), insns,
                                                                     strict=True)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------- parsing

_NUM = r"[+-]?\s*(?:0x[0-9a-fA-F]+|\d+)"
_REG = r"([rw])(\d+)"
_OFF = r"pc\s*([+-]\s*\d+)"
_MEMREF = r"\(\s*r(\d+)\s*(" + _NUM + r")?\s*\)"
_TYPE = r"([us])(8|16|32|64)"

_SYMBOL_TO_ALU = {
    op.value.symbol: op for op in AluOp if op.value.has_source and not op.value.reg_only
}
_MOVSX = {"s8": AluOp.MOVSX8, "s16": AluOp.MOVSX16, "s32": AluOp.MOVSX32}
_ALU_SYMBOLS = "|".join(re.escape(s) for s in sorted(_SYMBOL_TO_ALU, key=len, reverse=True))
_JMP_SYMBOLS = "|".join(re.escape(s) for s in sorted(JMP_BY_SYMBOL, key=len, reverse=True))
_ATOMIC_PLAIN = {op.value.symbol: op for op in ATOMIC_PLAIN_OPS}
_ATOMIC_FETCH = {op.value.name: op for op in ATOMIC_FETCH_OPS}


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(r"^\s*" + pattern + r"\s*$")


def _ptr(sizes: str) -> str:
    """`(u32 *)(r1 +4)`: groups size-in-bits, base register, offset."""
    return r"\(\s*u(" + sizes + r")\s*\*\s*\)\s*" + _MEMREF


_SRC = r"\s*,\s*r(\d+)\s*\)"  # `, rN)` closing an atomic call
_OPERAND = r"(?:" + _REG + "|(" + _NUM + "))"  # register (two groups) or immediate

# Tried in order; the first that matches wins (lddw before the mov it resembles).
_FORMS: list[tuple[str, re.Pattern[str]]] = [
    ("exit", _re(r"exit")),
    ("call_local", _re(r"call\s+" + _OFF)),
    ("call_kfunc", _re(r"call\s+kfunc#(-?\d+)(?:\s+fd_idx=(-?\d+))?")),
    ("call_helper", _re(r"call\s+([A-Za-z_]\w*)?(?:#(-?\d+))?")),
    ("callx", _re(r"callx\s+r(\d+)")),
    ("goto", _re(r"(goto|gotol|may_goto)\s+" + _OFF)),
    ("jump", _re(r"if\s+" + _REG + r"\s+(" + _JMP_SYMBOLS + r")\s+" + _OPERAND
                 + r"\s+goto\s+" + _OFF)),
    ("endian", _re(r"r(\d+)\s*=\s*(be|le|bswap)(16|32|64)\s+r(\d+)")),
    ("neg", _re(_REG + r"\s*=\s*-\s*" + _REG)),
    ("movsx", _re(_REG + r"\s*=\s*\((s8|s16|s32)\)\s*" + _REG)),
    ("load", _re(r"r(\d+)\s*=\s*\*\s*\(\s*" + _TYPE + r"\s*\*\s*\)\s*" + _MEMREF)),
    ("store", _re(r"\*\s*" + _ptr("8|16|32|64") + r"\s*=\s*(?:r(\d+)|(" + _NUM + "))")),
    ("lock", _re(r"lock\s+\*\s*" + _ptr("32|64") + r"\s*(\+=|\|=|&=|\^=)\s*[rw](\d+)")),
    ("fetch", _re(r"r(\d+)\s*=\s*atomic(64)?_fetch_(add|or|and|xor)\(\s*" + _ptr("32|64") + _SRC)),
    ("xchg", _re(r"r(\d+)\s*=\s*atomic(64)?_xchg\(\s*" + _ptr("32|64") + _SRC)),
    ("cmpxchg", _re(r"r0\s*=\s*atomic(64)?_cmpxchg\(\s*" + _ptr("32|64") + r"\s*,\s*r0" + _SRC)),
    ("load_acquire", _re(r"r(\d+)\s*=\s*load_acquire\(\s*" + _ptr("8|16|32|64") + r"\s*\)")),
    ("store_release", _re(r"store_release\(\s*" + _ptr("8|16|32|64") + _SRC)),
    ("ld_abs", _re(r"r0\s*=\s*\*\s*\(\s*u(8|16|32)\s*\*\s*\)\s*skb\[\s*(" + _NUM + r")\s*\]")),
    ("ld_ind", _re(r"r0\s*=\s*\*\s*\(\s*u(8|16|32)\s*\*\s*\)\s*skb\[\s*r(\d+)\s*\+\s*("
                   + _NUM + r")\s*\]")),
    ("lddw_map", _re(r"r(\d+)\s*=\s*map\[(fd|idx):(-?\d+)\](?:\[0\]\s*\+\s*(" + _NUM
                     + r"))?(?:\s+ll)?")),
    ("lddw_btf", _re(r"r(\d+)\s*=\s*btf_id\[(-?\d+)\](?:\[fd:(-?\d+)\])?(?:\s+ll)?")),
    ("lddw_func", _re(r"r(\d+)\s*=\s*func\[" + _OFF + r"\](?:\s+ll)?")),
    ("lddw", _re(r"r(\d+)\s*=\s*(" + _NUM + r")\s+ll")),
    ("alu", _re(_REG + r"\s*(" + _ALU_SYMBOLS + r")\s*" + _OPERAND)),
]

# The kernel log's "12: (bf) " prefix, optional.
_LOG_PREFIX = re.compile(r"^\s*(\d+):\s*(?:\(([0-9a-fA-F]{2})\)\s*)?")


def _int(text: str) -> int:
    """A decimal or 0x-hex literal with an optional sign (`010` is ten, not an error)."""
    t = "".join(text.split())
    sign = -1 if t.startswith("-") else 1
    t = t.lstrip("+-")
    return sign * (int(t[2:], 16) if t[:2].lower() == "0x" else int(t, 10))


def _s32(value: int, what: str, line: str) -> int:
    if not -(1 << 31) <= value < (1 << 32):
        raise ParseError(f"{what} {value} does not fit in 32 bits: {line!r}")
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _s16(value: int, line: str) -> int:
    if not -(1 << 15) <= value < (1 << 15):
        raise ParseError(f"offset {value} does not fit in 16 bits: {line!r}")
    return value


class _Line:
    """Field readers for one matched line that turn bad values into ParseErrors."""

    def __init__(self, text: str) -> None:
        self.text = text

    def reg(self, kind: str | None, num: str, bits: int | None = None) -> int:
        n = int(num)
        if n > 10:
            raise ParseError(f"invalid register {kind or 'r'}{n}: {self.text!r}")
        if bits is not None and kind is not None and (kind == "w") != (bits == 32):
            raise ParseError(f"register {kind}{n} mixes 32- and 64-bit operands: {self.text!r}")
        return n

    def imm(self, text: str) -> int:
        return _s32(_int(text), "immediate", self.text)

    def off(self, text: str | None) -> int:
        return _s16(_int(text) if text else 0, self.text)


def parse_insn(text: str) -> Insn:
    """Parse one instruction; a leading `N: (code)` log prefix and `;` comment are ignored."""
    line = text.split(";", 1)[0]
    line = _LOG_PREFIX.sub("", line, count=1).strip()
    if not line:
        raise ParseError("empty instruction")
    for name, pattern in _FORMS:
        m = pattern.match(line)
        if m:
            return _BUILD[name](_Line(line), m)
    raise ParseError(f"cannot parse instruction: {line!r}")


def parse_program(text: str) -> list[Insn]:
    """Parse one instruction a line; blank lines and `;`/`#` comment lines are skipped.

    A line that carries the kernel log's opcode `(18)` is an lddw even without ` ll`.
    """
    insns: list[Insn] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith((";", "#")):
            continue
        prefix = _LOG_PREFIX.match(stripped)
        code_part = stripped.split(";")[0].rstrip()
        if prefix and prefix.group(2) == "18" and not code_part.endswith(" ll"):
            stripped = code_part + " ll"
        try:
            insns.append(parse_insn(stripped))
        except ParseError as err:
            raise ParseError(f"line {lineno}: {err.message}") from None
    return insns


def _width(kind: str) -> int:
    return 32 if kind == "w" else 64


def _build_alu(p: _Line, m: re.Match[str]) -> Insn:
    bits = _width(m[1])
    dst = p.reg(m[1], m[2])
    op = _SYMBOL_TO_ALU[m[3]]
    if m[4] is not None:
        return Alu(op, dst, p.reg(m[4], m[5], bits), 0, bits)
    return Alu(op, dst, None, p.imm(m[6]), bits)


def _build_neg(p: _Line, m: re.Match[str]) -> Insn:
    bits = _width(m[1])
    dst, src = p.reg(m[1], m[2]), p.reg(m[3], m[4], bits)
    if dst != src:
        raise ParseError(f"negation must have the same source and destination: {p.text!r}")
    return Alu(AluOp.NEG, dst, None, 0, bits)


def _build_movsx(p: _Line, m: re.Match[str]) -> Insn:
    bits = _width(m[1])
    op = _MOVSX[m[3]]
    if op.value.alu64_only and bits == 32:
        raise ParseError(f"(s32) sign extension needs 64-bit registers: {p.text!r}")
    return Alu(op, p.reg(m[1], m[2]), p.reg(m[4], m[5], bits), 0, bits)


def _build_endian(p: _Line, m: re.Match[str]) -> Insn:
    dst, src = p.reg("r", m[1]), p.reg("r", m[4])
    if dst != src:
        raise ParseError(f"byte swap must have the same source and destination: {p.text!r}")
    return Endian(EndianKind(m[2]), dst, int(m[3]))


def _build_jump(p: _Line, m: re.Match[str]) -> Insn:
    bits = _width(m[1])
    dst = p.reg(m[1], m[2])
    op = JMP_BY_SYMBOL[m[3]]
    off = p.off(m[7])
    if m[4] is not None:
        return Jump(op, dst, off, p.reg(m[4], m[5], bits), 0, bits)
    return Jump(op, dst, off, None, p.imm(m[6]), bits)


def _build_goto(p: _Line, m: re.Match[str]) -> Insn:
    if m[1] == "gotol":
        return Goto(p.imm(m[2]), long=True)
    if m[1] == "may_goto":
        return MayGoto(p.off(m[2]))
    return Goto(p.off(m[2]))


def _build_call_helper(p: _Line, m: re.Match[str]) -> Insn:
    name, num = m[1], m[2]
    if num is not None:
        return Call(CallKind.HELPER, p.imm(num))
    if name is None or name not in HELPER_IDS:
        raise ParseError(f"unknown helper {name!r}: {p.text!r}")
    return Call(CallKind.HELPER, HELPER_IDS[name])


def _build_load(p: _Line, m: re.Match[str]) -> Insn:
    signed, size = m[2] == "s", int(m[3]) // 8
    if signed and size == 8:
        raise ParseError(f"there is no sign-extending 64-bit load: {p.text!r}")
    return Load(size, p.reg("r", m[1]), p.reg("r", m[4]), p.off(m[5]), signed)


def _build_store(p: _Line, m: re.Match[str]) -> Insn:
    size = int(m[1]) // 8
    dst, off = p.reg("r", m[2]), p.off(m[3])
    if m[4] is not None:
        return Store(size, dst, off, p.reg("r", m[4]))
    return Store(size, dst, off, None, p.imm(m[5]))


def _build_lock(p: _Line, m: re.Match[str]) -> Insn:
    size, base, src = int(m[1]) // 8, p.reg("r", m[2]), p.reg("r", m[5])
    return Atomic(_ATOMIC_PLAIN[m[4]], size, base, src, p.off(m[3]))


def _atomic_size(p: _Line, wide: str | None, ty: str) -> int:
    size = int(ty) // 8
    if (size == 8) != bool(wide):
        raise ParseError(f"atomic64_ goes with u64 and atomic_ with u32: {p.text!r}")
    return size


def _build_fetch(p: _Line, m: re.Match[str]) -> Insn:
    src = p.reg("r", m[1])
    if p.reg("r", m[7]) != src:
        raise ParseError(f"fetch result must go to the source register: {p.text!r}")
    size = _atomic_size(p, m[2], m[4])
    return Atomic(_ATOMIC_FETCH[m[3]], size, p.reg("r", m[5]), src, p.off(m[6]))


def _build_xchg(p: _Line, m: re.Match[str]) -> Insn:
    src = p.reg("r", m[1])
    if p.reg("r", m[6]) != src:
        raise ParseError(f"xchg result must go to the source register: {p.text!r}")
    size = _atomic_size(p, m[2], m[3])
    return Atomic(AtomicOp.XCHG, size, p.reg("r", m[4]), src, p.off(m[5]))


def _build_cmpxchg(p: _Line, m: re.Match[str]) -> Insn:
    size = _atomic_size(p, m[1], m[2])
    return Atomic(AtomicOp.CMPXCHG, size, p.reg("r", m[3]), p.reg("r", m[5]), p.off(m[4]))


def _build_load_acquire(p: _Line, m: re.Match[str]) -> Insn:
    size = int(m[2]) // 8
    return Atomic(AtomicOp.LOAD_ACQUIRE, size, p.reg("r", m[1]), p.reg("r", m[3]), p.off(m[4]))


def _build_store_release(p: _Line, m: re.Match[str]) -> Insn:
    size = int(m[1]) // 8
    return Atomic(AtomicOp.STORE_RELEASE, size, p.reg("r", m[2]), p.reg("r", m[4]), p.off(m[3]))


def _build_lddw(p: _Line, m: re.Match[str]) -> Insn:
    value = _int(m[2])
    if not -(1 << 63) <= value < (1 << 64):
        raise ParseError(f"constant {value} does not fit in 64 bits: {p.text!r}")
    return LoadImm64(p.reg("r", m[1]), value & 0xFFFFFFFFFFFFFFFF)


def _build_lddw_map(p: _Line, m: re.Match[str]) -> Insn:
    by_fd = m[2] == "fd"
    if m[4] is None:
        kind = PseudoKind.MAP_FD if by_fd else PseudoKind.MAP_IDX
        return LoadImm64(p.reg("r", m[1]), p.imm(m[3]), kind)
    kind = PseudoKind.MAP_VALUE if by_fd else PseudoKind.MAP_IDX_VALUE
    return LoadImm64(p.reg("r", m[1]), p.imm(m[3]), kind, p.imm(m[4]))


def _build_lddw_btf(p: _Line, m: re.Match[str]) -> Insn:
    return LoadImm64(p.reg("r", m[1]), p.imm(m[2]), PseudoKind.BTF_ID, p.imm(m[3] or "0"))


def _build_lddw_func(p: _Line, m: re.Match[str]) -> Insn:
    return LoadImm64(p.reg("r", m[1]), p.imm(m[2]), PseudoKind.FUNC)


_BUILD = {
    "exit": lambda p, m: Exit(),
    "call_local": lambda p, m: Call(CallKind.LOCAL, p.imm(m[1])),
    "call_kfunc": lambda p, m: Call(CallKind.KFUNC, p.imm(m[1]), p.off(m[2])),
    "call_helper": _build_call_helper,
    "callx": lambda p, m: CallReg(p.reg("r", m[1])),
    "goto": _build_goto,
    "jump": _build_jump,
    "endian": _build_endian,
    "neg": _build_neg,
    "movsx": _build_movsx,
    "load": _build_load,
    "store": _build_store,
    "lock": _build_lock,
    "fetch": _build_fetch,
    "xchg": _build_xchg,
    "cmpxchg": _build_cmpxchg,
    "load_acquire": _build_load_acquire,
    "store_release": _build_store_release,
    "ld_abs": lambda p, m: LoadPacket(PacketMode.ABS, int(m[1]) // 8, p.imm(m[2])),
    "ld_ind": lambda p, m: LoadPacket(
        PacketMode.IND, int(m[1]) // 8, p.imm(m[3]), p.reg("r", m[2])
    ),
    "lddw_map": _build_lddw_map,
    "lddw_btf": _build_lddw_btf,
    "lddw_func": _build_lddw_func,
    "lddw": _build_lddw,
    "alu": _build_alu,
}
