"""The IR checker: every structural rule a pass could break, all reported at once.

`check_module` returns the violations; `verify_module` raises an IRError
whose message is the IR with each offending line marked (`^^^ ...`).
Tests run it after every pass; `epass compile --check` runs it too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from epass.errors import IRError
from epass.ir import model as ir
from epass.ir.cfg import Dominators
from epass.ir.model import FP, STACK_SIZE, Block, Function, Module, Value
from epass.ir.text import format_function
from epass.isa.opcodes import AluOp, AtomicOp, CallKind

S32 = (-(1 << 31), (1 << 31) - 1)
S16 = (-(1 << 15), (1 << 15) - 1)


@dataclass(frozen=True)
class Violation:
    function: str
    where: object  # the Inst or Block at fault
    message: str


def check_module(module: Module) -> list[Violation]:
    names = {f.name for f in module.functions}
    maps = {m.name for m in module.maps + module.new_maps}
    out: list[Violation] = []
    for f in module.functions:
        out += _FunctionChecker(f, names, maps).run()
    return out


def verify_module(module: Module, after: str = "") -> None:
    """Raise IRError listing every violation, with the IR marked, when there is one."""
    problems = check_module(module)
    if not problems:
        return
    by_func: dict[str, dict[object, list[str]]] = {}
    for p in problems:
        by_func.setdefault(p.function, {}).setdefault(p.where, []).append(p.message)
    parts = [f"IR check failed{' after ' + after if after else ''}: {len(problems)} problem(s)"]
    for f in module.functions:
        if f.name in by_func:
            parts.append(format_function(f, marks=by_func[f.name]))
    raise IRError("\n".join(parts))


def _fits(n: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= n <= bounds[1]


class _FunctionChecker:
    def __init__(self, func: Function, functions: set[str], maps: set[str]) -> None:
        self.func = func
        self.functions = functions
        self.maps = maps
        self.out: list[Violation] = []

    def bad(self, where: object, message: str) -> None:
        self.out.append(Violation(self.func.name, where, message))

    def run(self) -> list[Violation]:
        f = self.func
        if not f.blocks:
            self.bad(f, "function has no blocks")
            return self.out
        self.structure()
        if any(b.terminator is None for b in f.blocks):
            return self.out  # dominance needs whole blocks
        self.dom = Dominators(f)
        preds = f.predecessors()
        if preds[f.entry]:
            self.bad(f.entry, "the entry block has predecessors")
        if f.entry.params:
            self.bad(f.entry, "the entry block has parameters")
        self.definitions()
        for b in f.blocks:
            for i, inst in enumerate(b.insts):
                self.uses(b, i, inst)
                self.operands(inst)
        return self.out

    def structure(self) -> None:
        blocks = set(self.func.blocks)
        for b in self.func.blocks:
            if b.function is not self.func:
                self.bad(b, "block belongs to another function")
            if not b.insts:
                self.bad(b, "empty block: it needs a terminator")
                continue
            for inst in b.insts[:-1]:
                if inst.is_terminator:
                    self.bad(inst, "terminator in the middle of a block")
            if not b.insts[-1].is_terminator:
                self.bad(b.insts[-1], "the block does not end with a terminator")
            for inst in b.insts:
                if inst.block is not b:
                    self.bad(inst, "instruction's block link is wrong")
            t = b.terminator
            if t is None:
                continue
            for e in t.edges:
                if e.target not in blocks:
                    self.bad(t, f"jumps to {e.target!r}, which is not in this function")
                elif len(e.args) != len(e.target.params):
                    self.bad(t, f"passes {len(e.args)} argument(s) to {e.target!r}, which has "
                                f"{len(e.target.params)} parameter(s)")

    def definitions(self) -> None:
        self.where: dict[Value, tuple[Block, int]] = {}
        for b in self.func.blocks:
            for p in b.params:
                if p in self.where:
                    self.bad(b, f"{p!r} is defined twice")
                if p.definition is not b:
                    self.bad(b, f"{p!r}'s definition link is wrong")
                self.where[p] = (b, -1)
            for i, inst in enumerate(b.insts):
                v = inst.result
                if v is None:
                    continue
                if v in self.where:
                    self.bad(inst, f"{v!r} is defined twice")
                if v.definition is not inst:
                    self.bad(inst, f"{v!r}'s definition link is wrong")
                self.where[v] = (b, i)
        for v in self.where:
            counted = Counter(id(u) for u in v.uses)
            for user in set(v.uses):
                if user.used_values().count(v) != counted[id(user)]:
                    self.bad(user, f"the use list of {v!r} is out of date")

    def dominated(self, v: Value, block: Block, index: int) -> bool:
        if v not in self.where:
            return False
        db, di = self.where[v]
        if db is block:
            return di < index
        return self.dom.dominates(db, block)

    def uses(self, b: Block, i: int, inst: ir.Inst) -> None:
        for op in inst.operands:
            if isinstance(op, Value):
                if op not in self.where:
                    self.bad(inst, f"uses {op!r}, which is not defined in this function")
                elif not self.dominated(op, b, i):
                    self.bad(inst, f"uses {op!r}, whose definition does not dominate it")
            elif not (op is FP or isinstance(op, int)):
                self.bad(inst, f"operand {op!r} is neither a value, fp nor an integer")
        if isinstance(inst, ir.Terminator):
            for e in inst.edges:
                for a in e.args:
                    if a not in self.where:
                        self.bad(inst, f"passes {a!r}, which is not defined in this function")
                    elif not self.dominated(a, b, len(b.insts)):
                        self.bad(inst, f"passes {a!r}, whose definition does not dominate "
                                       "the end of the block")

    # ------------------------------------------------------------ per kind

    def count(self, inst: ir.Inst, n: int | tuple[int, ...]) -> bool:
        wanted = (n,) if isinstance(n, int) else n
        if len(inst.operands) not in wanted:
            self.bad(inst, f"has {len(inst.operands)} operand(s), expected "
                           f"{' or '.join(map(str, wanted))}")
            return False
        return True

    def result(self, inst: ir.Inst, wanted: bool) -> None:
        if wanted and inst.result is None:
            self.bad(inst, "defines no value, but this instruction must")
        if not wanted and inst.result is not None:
            self.bad(inst, "defines a value, but this instruction cannot")

    def imm32(self, inst: ir.Inst, op: ir.Operand) -> None:
        if isinstance(op, int) and not _fits(op, S32):
            self.bad(inst, f"immediate {op} does not fit 32 signed bits")

    def register(self, inst: ir.Inst, op: ir.Operand, what: str) -> None:
        if not (isinstance(op, Value) or op is FP):
            self.bad(inst, f"{what} must be a value or fp, not {op!r}")

    def memory(self, inst: ir.Inst, base: ir.Operand, off: int, size: int) -> None:
        self.register(inst, base, "the address")
        if not _fits(off, S16):
            self.bad(inst, f"offset {off} does not fit 16 signed bits")
        if base is FP and not (-STACK_SIZE <= off and off + size <= 0):
            self.bad(inst, f"stack access [fp {off:+d}] of {size} byte(s) is outside the "
                           f"{STACK_SIZE}-byte frame")

    def operands(self, inst: ir.Inst) -> None:
        match inst:
            case ir.Alu(op=op, bits=bits):
                self.result(inst, True)
                if bits not in (32, 64):
                    self.bad(inst, f"ALU width {bits}, expected 32 or 64")
                if op == AluOp.MOVSX32 and bits != 64:
                    self.bad(inst, "movsx32 exists only on 64 bits")
                if self.count(inst, 1 if op in ir.UNARY_ALU else 2):
                    if op in (AluOp.MOVSX8, AluOp.MOVSX16, AluOp.MOVSX32, AluOp.NEG):
                        self.register(inst, inst.operands[0], "the operand")
                    if op not in ir.UNARY_ALU:
                        self.register(inst, inst.operands[0], "the first operand")
                    self.imm32(inst, inst.operands[-1])
            case ir.Endian(bits=bits):
                self.result(inst, True)
                if bits not in (16, 32, 64):
                    self.bad(inst, f"byte swap of {bits} bits, expected 16, 32 or 64")
                if self.count(inst, 1):
                    self.register(inst, inst.operands[0], "the operand")
            case ir.LoadImm() | ir.LoadPseudo() | ir.Arg() | ir.Undef():
                self.result(inst, True)
                self.count(inst, 0)
                if isinstance(inst, ir.Arg | ir.Undef) and inst.block is not self.func.entry:
                    self.bad(inst, "arg and undef belong in the entry block")
                if isinstance(inst, ir.Arg) and not 1 <= inst.index <= self.func.arg_count:
                    self.bad(inst, f"argument r{inst.index}: the function takes "
                                   f"{self.func.arg_count}")
            case ir.LoadMap(map=name):
                self.result(inst, True)
                if name not in self.maps:
                    self.bad(inst, f"map {name!r} is not defined")
            case ir.LoadFunc(function=name):
                self.result(inst, True)
                if name not in self.functions:
                    self.bad(inst, f"function @{name} is not in the module")
            case ir.Load(size=size, off=off, signed=signed):
                self.result(inst, True)
                self.size(inst, size)
                if signed and size == 8:
                    self.bad(inst, "a sign-extending load of 8 bytes does not exist")
                if self.count(inst, 1):
                    self.memory(inst, inst.operands[0], off, size)
            case ir.Store(size=size, off=off):
                self.result(inst, False)
                self.size(inst, size)
                if self.count(inst, 2):
                    self.memory(inst, inst.operands[0], off, size)
                    self.imm32(inst, inst.operands[1])
            case ir.Atomic():
                self.atomic(inst)
            case ir.Call(kind=kind, target=target):
                self.result(inst, True)
                if len(inst.operands) > 5:
                    self.bad(inst, f"{len(inst.operands)} arguments: calls take at most 5")
                if kind == CallKind.LOCAL and target not in self.functions:
                    self.bad(inst, f"calls @{target}, which is not in the module")
                if kind != CallKind.LOCAL and not isinstance(target, int):
                    self.bad(inst, "helper and kfunc calls need a numeric id")
            case ir.LoadPacket():
                self.result(inst, True)
                self.size(inst, inst.size)
                if self.count(inst, (1, 2)):
                    for op in inst.operands:
                        self.register(inst, op, "the operand")
            case ir.Branch(bits=bits):
                if bits not in (32, 64):
                    self.bad(inst, f"comparison width {bits}, expected 32 or 64")
                if self.count(inst, 2):
                    self.register(inst, inst.operands[0], "the first compared operand")
                    self.imm32(inst, inst.operands[1])
            case ir.Ret():
                if self.count(inst, 1):
                    self.imm32(inst, inst.operands[0])
            case ir.Jump() | ir.MayGoto():
                self.count(inst, 0)

    def size(self, inst: ir.Inst, size: int) -> None:
        if size not in (1, 2, 4, 8):
            self.bad(inst, f"access size {size}, expected 1, 2, 4 or 8")

    def atomic(self, inst: ir.Atomic) -> None:
        op = inst.op
        if op in (AtomicOp.LOAD_ACQUIRE, AtomicOp.STORE_RELEASE):
            self.size(inst, inst.size)
        elif inst.size not in (4, 8):
            self.bad(inst, f"atomic access of {inst.size} bytes, expected 4 or 8")
        n = {AtomicOp.LOAD_ACQUIRE: 1, AtomicOp.CMPXCHG: 3}.get(op, 2)
        if self.count(inst, n):
            self.memory(inst, inst.operands[0], inst.off, inst.size)
            for o in inst.operands[1:]:
                self.register(inst, o, "the operand")
        defines = op not in (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR,
                             AtomicOp.STORE_RELEASE)
        self.result(inst, defines)

