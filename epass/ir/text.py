"""The IR's text form: `format_module` prints it, `parse_module` reads it back.

    module @xdp_prog section "xdp"
    map @counts type 2 key 4 value 8 max 16
    func @xdp_prog args 1 {
    bb0:
      %0:r1 = arg 1
      %1:r2 = load u32 [%0 + 4]        ; insn 0
      br jgt %1, 5, bb1(%1), bb2
    bb1(%2:r3):
      ret %2
    bb2:
      %3:r0 = mov 2
      ret %3
    }

`map` lines declare the maps the code refers to (`new`: added by a pass);
`%N:rK` defines value N with register hint K; `; insn N` records the slot
the instruction was lifted from (other comments are ignored). Printing,
parsing and printing again gives the same text.
"""

from __future__ import annotations

import re

from epass.errors import IRError
from epass.ir import model as ir
from epass.ir.model import FP, Block, Edge, Function, Module, Value
from epass.isa.helpers import HELPER_IDS, helper_name
from epass.isa.opcodes import AluOp, AtomicOp, CallKind, EndianKind, JmpOp, PacketMode, PseudoKind
from epass.obj.model import MapDef
from epass.obj.sections import program_kind

SIZE_NAMES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
SIGNED_NAMES = {1: "s8", 2: "s16", 4: "s32", 8: "s64"}
SIZES = {**{v: k for k, v in SIZE_NAMES.items()}, **{v: k for k, v in SIGNED_NAMES.items()}}
ALU_NAMES = {op: op.name.lower() for op in AluOp}
ALU_BY_NAME = {v: k for k, v in ALU_NAMES.items()}
JMP_NAMES = {op: "j" + op.name.lower() for op in JmpOp}
JMP_BY_NAME = {v: k for k, v in JMP_NAMES.items()}
ATOMIC_NAMES = {op: op.name.lower() for op in AtomicOp}
ATOMIC_BY_NAME = {v: k for k, v in ATOMIC_NAMES.items()}
ENDIAN_NAMES = {k: k.value for k in EndianKind}
ENDIAN_RE = re.compile(r"(le|be|bswap)(16|32|64)$")


# ------------------------------------------------------------------ printing


def format_module(module: Module, lines: bool = False) -> str:
    """The whole module; `lines=True` adds source lines to the `; insn N` comments."""
    out = [f'module @{module.name} section "{module.section}"']
    for m, new in [(m, False) for m in module.maps] + [(m, True) for m in module.new_maps]:
        out.append(f"map @{m.name} type {m.type} key {m.key_size} value {m.value_size} "
                   f"max {m.max_entries}" + (f" flags {m.flags}" if m.flags else "")
                   + (" new" if new else ""))
    for f in module.functions:
        out.append(format_function(f, lines))
    return "\n".join(out) + "\n"


def format_function(func: Function, lines: bool = False,
                    marks: dict[object, list[str]] | None = None) -> str:
    """One function. `marks` maps instructions or blocks to messages printed under them."""
    marks = marks or {}
    out = [f"func @{func.name} args {func.arg_count}"
           + (f" type {func.type_id}" if func.type_id else "") + " {"]
    for b in func.blocks:
        params = ", ".join(_def(p) for p in b.params)
        out.append(f"{b!r}({params}):" if params else f"{b!r}:")
        for msg in marks.get(b, []):
            out.append(f"  ^^^ {msg}")
        for inst in b.insts:
            text = "  " + format_inst(inst)
            if inst.origin is not None:
                text = f"{text:<44} ; insn {inst.origin}"
                if lines and inst.line is not None:
                    text += f": {inst.line.line.strip()}"
            out.append(text)
            for msg in marks.get(inst, []):
                out.append(f"  ^^^ {msg}")
    out.append("}")
    return "\n".join(out)


def _def(v: Value) -> str:
    return f"%{v.id}:r{v.reg}" if v.reg is not None else f"%{v.id}"


def _op(op: ir.Operand) -> str:
    if isinstance(op, Value):
        return repr(op)
    if op is FP:
        return "fp"
    return str(op)


def _mem(base: ir.Operand, off: int) -> str:
    if off == 0:
        return f"[{_op(base)}]"
    return f"[{_op(base)} {'-' if off < 0 else '+'} {abs(off)}]"


def _edge(e: Edge) -> str:
    if not e.args:
        return repr(e.target)
    return f"{e.target!r}({', '.join(_op(a) for a in e.args)})"


def _callee(inst: ir.Call) -> str:
    if inst.kind == CallKind.LOCAL:
        return f"@{inst.target}"
    if inst.kind == CallKind.KFUNC:
        return f"kfunc#{inst.target}" + (f":{inst.kfunc_off}" if inst.kfunc_off else "")
    assert isinstance(inst.target, int)
    return helper_name(inst.target) or f"helper#{inst.target}"


def format_inst(inst: ir.Inst) -> str:
    body = _body(inst)
    if inst.result is not None:
        return f"{_def(inst.result)} = {body}"
    return body


def _body(inst: ir.Inst) -> str:
    ops = ", ".join(_op(o) for o in inst.operands)
    match inst:
        case ir.Alu(op=op, bits=bits):
            return f"{ALU_NAMES[op]}{'.32' if bits == 32 else ''} {ops}"
        case ir.Endian(kind=kind, bits=bits):
            return f"{kind.value}{bits} {ops}"
        case ir.LoadImm(value=value):
            return f"lddw {value:#x}"
        case ir.LoadMap(map=name, value=value, offset=offset):
            if value:
                return f"map_value @{name}" + (f" + {offset}" if offset else "")
            return f"map @{name}"
        case ir.LoadFunc(function=name):
            return f"func @{name}"
        case ir.LoadPseudo(kind=kind, imm=imm, aux=aux):
            return f"lddw.{kind.name.lower()} {imm}, {aux}"
        case ir.Load(size=size, signed=signed, off=off):
            names = SIGNED_NAMES if signed else SIZE_NAMES
            return f"load {names[size]} {_mem(inst.operands[0], off)}"
        case ir.Store(size=size, off=off):
            return f"store {SIZE_NAMES[size]} {_mem(inst.operands[0], off)}, " \
                   f"{_op(inst.operands[1])}"
        case ir.Atomic(op=op, size=size, off=off):
            rest = "".join(", " + _op(o) for o in inst.operands[1:])
            return f"atomic {ATOMIC_NAMES[op]} {SIZE_NAMES[size]} " \
                   f"{_mem(inst.operands[0], off)}{rest}"
        case ir.Call():
            return f"call {_callee(inst)}({ops})"
        case ir.LoadPacket(mode=mode, size=size, imm=imm):
            return f"ld_{mode.name.lower()} {SIZE_NAMES[size]} {ops}, {imm}"
        case ir.Arg(index=index):
            return f"arg {index}"
        case ir.Undef():
            return "undef"
        case ir.Branch(op=op, bits=bits):
            cond = f"br{'.32' if bits == 32 else ''} {JMP_NAMES[op]} {ops}"
            return f"{cond}, {_edge(inst.then)}, {_edge(inst.orelse)}"
        case ir.Jump():
            return f"jump {_edge(inst.edges[0])}"
        case ir.MayGoto():
            return f"may_goto {_edge(inst.edges[0])}, {_edge(inst.edges[1])}"
        case ir.Ret(abort=abort):
            return f"{'abort' if abort else 'ret'} {ops}"
    raise TypeError(f"cannot print {type(inst).__name__}")


# ------------------------------------------------------------------ parsing

_TOKEN = re.compile(r"\s*(%\d+(?::r\d+)?|bb\d+|@[\w.$]+|[-+]?0x[0-9a-fA-F]+|[-+]?\d+|"
                    r"\"[^\"]*\"|[\w.#:]+|[()\[\],=+\-{}])")


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.lineno = 0

    def fail(self, message: str) -> IRError:
        return IRError(f"IR text line {self.lineno}: {message}")

    def run(self) -> Module:
        module: Module | None = None
        self.funcs: list[Function] = []
        self.current: Function | None = None
        for lineno, raw in enumerate(self.lines, 1):
            self.lineno = lineno
            line, origin = _strip_comment(raw)
            if not line:
                continue
            toks = self.tokens(line)
            if toks[0] == "module":
                module = self.module_header(toks)
            elif toks[0] == "map" and self.current is None:
                if module is None:
                    raise self.fail("'map' before the 'module' line")
                self.map_line(module, toks)
            elif toks[0] == "func":
                self.start_function(toks)
            elif toks == ["}"]:
                self.end_function()
            elif self.current is None:
                raise self.fail(f"expected 'module', 'func' or '}}', got {line.strip()!r}")
            elif toks[0].startswith("bb") and toks[-1] == ":":
                self.start_block(toks)
            else:
                self.instruction(toks, origin)
        if self.current is not None:
            raise self.fail("missing '}' at the end of the last function")
        if module is None:
            raise IRError("IR text has no 'module @name section \"...\"' line")
        module.functions = self.funcs
        if not self.funcs:
            raise IRError("IR text has no functions")
        return module

    def tokens(self, line: str) -> list[str]:
        out = []
        pos = 0
        line = line.rstrip()
        while pos < len(line):
            m = _TOKEN.match(line, pos)
            if m is None:
                raise self.fail(f"cannot read {line[pos:].strip()!r}")
            out.append(m.group(1))
            pos = m.end()
        return out

    def module_header(self, toks: list[str]) -> Module:
        if len(toks) != 4 or not toks[1].startswith("@") or toks[2] != "section":
            raise self.fail('expected: module @name section "sec"')
        section = toks[3].strip('"')
        return Module(toks[1][1:], section, program_kind(section), [])

    def map_line(self, module: Module, toks: list[str]) -> None:
        if len(toks) < 2 or not toks[1].startswith("@"):
            raise self.fail("expected: map @name type T key K value V max N [flags F] [new]")
        new = toks[-1] == "new"
        fields = toks[2:-1] if new else toks[2:]
        if len(fields) % 2:
            raise self.fail("expected: map @name type T key K value V max N [flags F] [new]")
        values = {fields[i]: self.int(fields[i + 1]) for i in range(0, len(fields), 2)}
        missing = [k for k in ("type", "key", "value", "max") if k not in values]
        if missing:
            raise self.fail(f"map @{toks[1][1:]} needs {', '.join(missing)}")
        m = MapDef(toks[1][1:], values["type"], values["key"], values["value"], values["max"],
                   values.get("flags", 0))
        (module.new_maps if new else module.maps).append(m)

    def start_function(self, toks: list[str]) -> None:
        if self.current is not None:
            raise self.fail("'func' inside a function")
        if len(toks) < 5 or not toks[1].startswith("@") or toks[2] != "args" or toks[-1] != "{":
            raise self.fail("expected: func @name args N [type T] {")
        f = Function(toks[1][1:], is_main=not self.funcs)
        f.arg_count = self.int(toks[3])
        if len(toks) == 7 and toks[4] == "type":
            f.type_id = self.int(toks[5])
        self.current = f
        self.values: dict[int, Value] = {}
        self.defined: set[int] = set()
        self.blocks: dict[int, Block] = {}
        self.block: Block | None = None

    def end_function(self) -> None:
        f = self.current
        if f is None:
            raise self.fail("'}' outside a function")
        undefined = sorted(set(self.values) - self.defined)
        if undefined:
            raise self.fail(f"function @{f.name} uses %{undefined[0]}, which is never defined")
        missing = [b for b in self.blocks.values() if b not in f.blocks]
        if missing:
            raise self.fail(f"function @{f.name} jumps to {missing[0]!r}, which has no label")
        if not f.blocks:
            raise self.fail(f"function @{f.name} has no blocks")
        f.reserve_ids(max(self.values, default=-1) + 1, max(self.blocks, default=-1) + 1)
        self.funcs.append(f)
        self.current = None

    def int(self, tok: str) -> int:
        try:
            return int(tok, 0)
        except ValueError:
            raise self.fail(f"expected a number, got {tok!r}") from None

    def block_ref(self, tok: str) -> Block:
        if not re.fullmatch(r"bb\d+", tok):
            raise self.fail(f"expected a block label, got {tok!r}")
        n = int(tok[2:])
        if n not in self.blocks:
            assert self.current is not None
            self.blocks[n] = Block(n, self.current)
        return self.blocks[n]

    def value(self, tok: str, define: bool = False) -> Value:
        m = re.fullmatch(r"%(\d+)(?::r(\d+))?", tok)
        if m is None:
            raise self.fail(f"expected a value, got {tok!r}")
        n = int(m.group(1))
        v = self.values.setdefault(n, Value(n))
        if define:
            if n in self.defined:
                raise self.fail(f"%{n} is defined twice")
            self.defined.add(n)
            if m.group(2) is not None:
                v.reg = int(m.group(2))
        return v

    def operand(self, tok: str) -> ir.Operand:
        if tok == "fp":
            return FP
        if tok.startswith("%"):
            return self.value(tok)
        return self.int(tok)

    def start_block(self, toks: list[str]) -> None:
        assert self.current is not None
        b = self.block_ref(toks[0])
        if b in self.current.blocks:
            raise self.fail(f"{b!r} is defined twice")
        self.current.blocks.append(b)
        if len(toks) > 2:
            if toks[1] != "(" or toks[-2] != ")":
                raise self.fail("expected: bbN(%a, %b):")
            for t in toks[2:-2]:
                if t != ",":
                    b.add_param(self.value(t, define=True))
        self.block = b

    def instruction(self, toks: list[str], origin: int | None) -> None:
        if self.block is None:
            raise self.fail("instruction before the first block label")
        result = None
        if len(toks) > 2 and toks[1] == "=":
            result = self.value(toks[0], define=True)
            toks = toks[2:]
        inst = self.build(toks, result)
        inst.origin = origin
        self.block.append(inst)

    def split_commas(self, toks: list[str]) -> list[list[str]]:
        """Split at top-level commas (not inside brackets or parentheses)."""
        parts: list[list[str]] = [[]]
        depth = 0
        for t in toks:
            if t in "([":
                depth += 1
            elif t in ")]":
                depth -= 1
            if t == "," and depth == 0:
                parts.append([])
            else:
                parts[-1].append(t)
        return [p for p in parts if p]

    def mem(self, toks: list[str]) -> tuple[ir.Operand, int]:
        if len(toks) < 3 or toks[0] != "[" or toks[-1] != "]":
            raise self.fail("expected a memory operand like [%1 + 4]")
        inner = toks[1:-1]
        base = self.operand(inner[0])
        if len(inner) == 1:
            return base, 0
        if len(inner) == 2 and inner[1][0] in "+-":  # tokenizer kept the sign: [%1 -8]
            return base, self.int(inner[1])
        if len(inner) != 3 or inner[1] not in "+-":
            raise self.fail("expected a memory operand like [%1 + 4]")
        off = self.int(inner[2])
        return base, -off if inner[1] == "-" else off

    def edge(self, toks: list[str]) -> Edge:
        target = self.block_ref(toks[0])
        args = []
        if len(toks) > 1:
            if toks[1] != "(" or toks[-1] != ")":
                raise self.fail("expected: bbN(%a, ...)")
            args = [self.value(t) for t in toks[2:-1] if t != ","]
        return Edge(target, args)

    def need(self, result: Value | None, name: str, wanted: bool) -> Value:
        if wanted and result is None:
            raise self.fail(f"{name} defines a value: write %N = {name} ...")
        if not wanted and result is not None:
            raise self.fail(f"{name} does not define a value")
        return result  # type: ignore[return-value]

    def build(self, toks: list[str], result: Value | None) -> ir.Inst:
        name, rest = toks[0], toks[1:]
        parts = self.split_commas(rest)
        base_name, _, width = name.partition(".")
        if base_name in ALU_BY_NAME and width in ("", "32"):
            op = ALU_BY_NAME[base_name]
            operands = [self.operand(p[0]) for p in parts]
            return ir.Alu(op, 32 if width else 64, operands, self.need(result, name, True))
        m = ENDIAN_RE.fullmatch(name)
        if m:
            return ir.Endian(EndianKind(m.group(1)), int(m.group(2)), self.operand(rest[0]),
                             self.need(result, name, True))
        match name:
            case "lddw":
                return ir.LoadImm(self.int(rest[0]), self.need(result, name, True))
            case "map" | "map_value":
                offset = self.int(rest[2]) if len(rest) == 3 and rest[1] == "+" else 0
                return ir.LoadMap(rest[0].lstrip("@"), self.need(result, name, True),
                                  name == "map_value", offset)
            case "func":
                return ir.LoadFunc(rest[0].lstrip("@"), self.need(result, name, True))
            case "load":
                base, off = self.mem(rest[1:])
                size = self.size(rest[0])
                return ir.Load(size, base, off, self.need(result, name, True),
                               signed=rest[0].startswith("s"))
            case "store":
                base, off = self.mem(parts[0][1:])
                self.need(result, name, False)
                return ir.Store(self.size(parts[0][0]), base, off, self.operand(parts[1][0]))
            case "atomic":
                op = ATOMIC_BY_NAME.get(rest[0])
                if op is None:
                    raise self.fail(f"unknown atomic operation {rest[0]!r}")
                parts = self.split_commas(rest[2:])
                base, off = self.mem(parts[0])
                operands = [base] + [self.operand(p[0]) for p in parts[1:]]
                return ir.Atomic(op, self.size(rest[1]), off, operands, result)
            case "call":
                return self.call(rest, self.need(result, name, True))
            case "ld_abs" | "ld_ind":
                mode = PacketMode.ABS if name == "ld_abs" else PacketMode.IND
                parts = self.split_commas(rest[1:])
                operands = [self.operand(p[0]) for p in parts[:-1]]
                return ir.LoadPacket(mode, self.size(rest[0]), self.int(parts[-1][0]), operands,
                                     self.need(result, name, True))
            case "arg":
                return ir.Arg(self.int(rest[0]), self.need(result, name, True))
            case "undef":
                return ir.Undef(self.need(result, name, True))
            case "br" | "br.32":
                op = JMP_BY_NAME.get(rest[0])
                if op is None or len(parts) != 4:
                    raise self.fail("expected: br jOP a, b, bbT(...), bbF(...)")
                return ir.Branch(op, 32 if name == "br.32" else 64, self.operand(parts[0][1]),
                                 self.operand(parts[1][0]), self.edge(parts[2]),
                                 self.edge(parts[3]))
            case "jump":
                return ir.Jump(self.edge(rest))
            case "may_goto":
                return ir.MayGoto(self.edge(parts[0]), self.edge(parts[1]))
            case "ret" | "abort":
                return ir.Ret(self.operand(rest[0]), abort=name == "abort")
        if name.startswith("lddw."):
            kind = PseudoKind[name[5:].upper()]
            return ir.LoadPseudo(kind, self.int(parts[0][0]), self.int(parts[1][0]),
                                 self.need(result, name, True))
        raise self.fail(f"unknown instruction {name!r}")

    def size(self, tok: str) -> int:
        if tok not in SIZES:
            raise self.fail(f"expected a size (u8, u16, u32, u64, s8, ...), got {tok!r}")
        return SIZES[tok]

    def call(self, toks: list[str], result: Value) -> ir.Inst:
        callee = toks[0]
        args = [self.operand(t) for t in toks[2:-1] if t != ","]
        if callee.startswith("@"):
            return ir.Call(CallKind.LOCAL, callee[1:], args, result)
        if callee.startswith("kfunc#"):
            ident, _, off = callee[6:].partition(":")
            return ir.Call(CallKind.KFUNC, int(ident), args, result, int(off or 0))
        if callee.startswith("helper#"):
            return ir.Call(CallKind.HELPER, int(callee[7:]), args, result)
        if callee not in HELPER_IDS:
            raise self.fail(f"unknown helper {callee!r}")
        return ir.Call(CallKind.HELPER, HELPER_IDS[callee], args, result)


def _strip_comment(raw: str) -> tuple[str, int | None]:
    line, _, comment = raw.partition(";")
    m = re.match(r"\s*insn (\d+)", comment)
    if line.strip().startswith("^^^"):
        return "", None
    return line.strip(), int(m.group(1)) if m else None


def parse_module(text: str) -> Module:
    """Read IR text (as `format_module` prints it); raises IRError naming the line."""
    return _Parser(text).run()
