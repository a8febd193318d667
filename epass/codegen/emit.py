"""From allocated SSA to bytecode: out of SSA, instruction selection, layout, jumps.

Block arguments become copies on their edge, sequenced so that a swap or
a cycle never loses a value (a free register, or a stack slot when none is
free, breaks the cycle). An edge that needs copies but leaves a block with
two successors is split: the `else` side's copies go right after the
branch, the `then` side's into a block at the end of the function.

Jumps are laid out short first; any that does not reach becomes `gotol`
(or a conditional hop over one) and the layout is redone until it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from epass.codegen.prepare import Constraints
from epass.codegen.regalloc import Allocation, tied_operand
from epass.errors import IRError
from epass.ir import model as ir
from epass.ir.cfg import reverse_postorder
from epass.ir.model import FP, STACK_SIZE, Block, Edge, Function, Value
from epass.isa import insn as isa
from epass.isa.opcodes import AluOp, AtomicOp, CallKind, PseudoKind
from epass.obj.btf_ext import LineInfo

S16 = (-(1 << 15), (1 << 15) - 1)


class Label:
    """A position in the code: a block, a split edge, or a function's start."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


@dataclass
class Item:
    """One bytecode instruction before layout; `target` is resolved to an offset."""

    insn: isa.Insn
    target: Label | None = None
    map_ref: tuple[str, bool, int] | None = None  # (map, value, offset) of an lddw
    line: LineInfo | None = None
    long: bool = False  # a jump that needed more than 16 bits of offset
    abort: bool = False  # the exit of an abort a pass inserted

    @property
    def slots(self) -> int:
        if isinstance(self.insn, isa.LoadImm64):
            return 2
        if self.long and isinstance(self.insn, isa.Jump | isa.MayGoto):
            return 3  # `if cond goto +1; goto +1; gotol target`
        return 1


@dataclass
class FunctionCode:
    name: str
    section: str
    type_id: int
    start: Label
    items: list[Item | Label] = field(default_factory=list)
    frame_size: int = 0


def emit_function(func: Function, alloc: Allocation, c: Constraints,
                  function_labels: dict[str, Label]) -> FunctionCode:
    return _Emitter(func, alloc, c, function_labels).run()


class _Emitter:
    def __init__(self, func: Function, alloc: Allocation, c: Constraints,
                 function_labels: dict[str, Label]) -> None:
        self.func = func
        self.alloc = alloc
        self.c = c
        self.functions = function_labels
        self.code = FunctionCode(func.name, func.section, func.type_id,
                                 function_labels[func.name], frame_size=alloc.frame_size)
        self.labels: dict[Block, Label] = {}
        self.late: list[Item | Label] = []
        self.line: LineInfo | None = None
        self.scratch_slot: int | None = None

    def label(self, b: Block) -> Label:
        if b not in self.labels:
            self.labels[b] = Label(f"{self.func.name}:{b!r}")
        return self.labels[b]

    def reg(self, op: ir.Operand) -> int:
        if op is FP:
            return 10
        assert isinstance(op, Value)
        if op in self.c.undef:
            return op.reg if op.reg is not None else 0
        return self.alloc.color[op]

    def put(self, insn: isa.Insn, **kw: object) -> None:
        item = Item(insn, **kw)  # type: ignore[arg-type]
        if self.line is not None:
            item.line, self.line = self.line, None
        self.out.append(item)

    def run(self) -> FunctionCode:
        reachable = set(reverse_postorder(self.func))
        blocks = [b for b in self.func.blocks if b in reachable]
        self.out = self.code.items
        self.out.append(self.code.start)
        for i, b in enumerate(blocks):
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            self.out.append(self.label(b))
            for inst in b.insts:
                if inst.line is not None:
                    self.line = inst.line  # kept for the next instruction if this emits none
                if isinstance(inst, ir.Terminator):
                    self.terminator(b, inst, nxt)
                else:
                    self.inst(inst)
        self.out += self.late
        if self.scratch_slot is not None:
            self.code.frame_size = -self.scratch_slot
        return self.code

    # ------------------------------------------------------------ instructions

    def mov(self, dst: int, src: ir.Operand) -> None:
        """dst = src (64-bit), nothing when it is already there."""
        if isinstance(src, int):
            self.put(isa.Alu(AluOp.MOV, dst, None, src))
        elif self.reg(src) != dst:
            self.put(isa.Alu(AluOp.MOV, dst, self.reg(src)))

    def src(self, op: ir.Operand) -> tuple[int | None, int]:
        """(register, immediate) for a bytecode source operand."""
        if isinstance(op, int):
            return None, op
        return self.reg(op), 0

    def inst(self, inst: ir.Inst) -> None:
        res = inst.result
        rd = self.reg(res) if res is not None and not isinstance(inst, ir.Arg | ir.Undef) \
            else 0
        tied = tied_operand(inst)
        if tied is not None:
            self.mov(rd, inst.operands[tied])
        match inst:
            case ir.Arg() | ir.Undef():
                pass
            case ir.Alu(op=op, bits=bits):
                if op in ir.UNARY_ALU and op != AluOp.NEG:
                    src = inst.operands[0]
                    if inst.is_copy and self.reg(src) == rd:
                        return
                    if isinstance(src, Value) and src in self.c.undef and inst.is_copy:
                        return  # copying garbage: the destination holds garbage already
                    s, imm = self.src(src)
                    self.put(isa.Alu(op, rd, s, imm, bits))
                elif op == AluOp.NEG:
                    self.put(isa.Alu(op, rd, None, 0, bits))
                else:
                    s, imm = self.src(inst.operands[1])
                    self.put(isa.Alu(op, rd, s, imm, bits))
            case ir.Endian(kind=kind, bits=bits):
                self.put(isa.Endian(kind, rd, bits))
            case ir.LoadImm(value=value):
                self.put(isa.LoadImm64(rd, value))
            case ir.LoadMap(map=name, value=value, offset=offset):
                self.put(isa.LoadImm64(rd, 0), map_ref=(name, value, offset))
            case ir.LoadFunc(function=name):
                self.put(isa.LoadImm64(rd, 0, PseudoKind.FUNC), target=self.functions[name])
            case ir.LoadPseudo(kind=kind, imm=imm, aux=aux):
                self.put(isa.LoadImm64(rd, imm, kind, aux))
            case ir.Load(size=size, off=off, signed=signed):
                self.put(isa.Load(size, rd, self.reg(inst.operands[0]), off, signed))
            case ir.Store(size=size, off=off):
                s, imm = self.src(inst.operands[1])
                self.put(isa.Store(size, self.reg(inst.operands[0]), off, s, imm))
            case ir.Atomic():
                self.atomic(inst, rd)
            case ir.Call(kind=kind, target=target, kfunc_off=koff):
                if kind == CallKind.LOCAL:
                    self.put(isa.Call(kind, 0), target=self.functions[str(target)])
                else:
                    assert isinstance(target, int)
                    self.put(isa.Call(kind, target, koff))
            case ir.LoadPacket(mode=mode, size=size, imm=imm):
                idx = self.reg(inst.operands[1]) if len(inst.operands) > 1 else 0
                self.put(isa.LoadPacket(mode, size, imm, idx))
            case _:
                raise IRError(f"function {self.func.name}: cannot compile "
                              f"{type(inst).__name__}")

    def atomic(self, inst: ir.Atomic, rd: int) -> None:
        base = self.reg(inst.operands[0])
        op = inst.op
        if op == AtomicOp.LOAD_ACQUIRE:
            self.put(isa.Atomic(op, inst.size, rd, base, inst.off))
        elif op == AtomicOp.CMPXCHG:
            self.put(isa.Atomic(op, inst.size, base, self.reg(inst.operands[2]), inst.off))
        elif inst.result is not None:  # fetch forms: the old value lands in the source register
            self.put(isa.Atomic(op, inst.size, base, rd, inst.off))
        else:
            self.put(isa.Atomic(op, inst.size, base, self.reg(inst.operands[1]), inst.off))

    # ------------------------------------------------------------ control flow

    def terminator(self, b: Block, t: ir.Terminator, nxt: Block | None) -> None:
        match t:
            case ir.Ret(abort=abort):
                self.put(isa.Exit(), abort=abort)
            case ir.Jump():
                e = t.edges[0]
                self.copies(b, e)
                if e.target is not nxt:
                    self.put(isa.Goto(0), target=self.label(e.target))
            case ir.Branch() | ir.MayGoto():
                taken, orelse = t.edges
                target = self.label(taken.target)
                if self.edge_moves(b, taken):
                    split = Label(f"{self.func.name}:{b!r}->{taken.target!r}")
                    target = split
                    saved, self.out = self.out, self.late
                    self.out.append(split)
                    self.copies(b, taken)
                    self.put(isa.Goto(0), target=self.label(taken.target))
                    self.out = saved
                if isinstance(t, ir.Branch):
                    s, imm = self.src(t.operands[1])
                    self.put(isa.Jump(t.op, self.reg(t.operands[0]), 0, s, imm, t.bits),
                             target=target)
                else:
                    self.put(isa.MayGoto(0), target=target)
                self.copies(b, orelse)
                if orelse.target is not nxt:
                    self.put(isa.Goto(0), target=self.label(orelse.target))

    def edge_moves(self, b: Block, e: Edge) -> dict[int, int]:
        """dst register -> src register for the block arguments of edge `e`."""
        live = self.alloc.live_params[e.target]
        moves: dict[int, int] = {}
        for p, a in zip(e.target.params, e.args, strict=True):
            if p not in live or a in self.c.undef:
                continue  # a dead parameter, or garbage in: nothing to copy
            dst, src = self.reg(p), self.reg(a)
            if dst != src:
                moves[dst] = src
        return moves

    def copies(self, b: Block, e: Edge) -> None:
        """The parallel copy of edge `e`, as a sequence of moves."""
        stack = -1  # a source parked in the scratch stack slot
        pending: dict[int, int] = self.edge_moves(b, e)
        while pending:
            ready = [d for d in pending if d not in pending.values()]
            if ready:
                d = ready[0]
                src = pending.pop(d)
                if src == stack:
                    self.put(isa.Load(8, d, 10, self.scratch()))
                else:
                    self.put(isa.Alu(AluOp.MOV, d, src))
                continue
            # only cycles are left: park one register's value, then the cycle unwinds
            d = next(iter(pending))
            live = self.alloc.live_in[e.target] | self.alloc.live_out[b] | \
                self.alloc.live_params[e.target]  # parameters written by earlier moves too
            busy = {self.reg(v) for v in live if v not in self.c.undef}
            busy |= set(pending) | set(pending.values())
            free = [r for r in range(10) if r not in busy]
            if free:
                self.put(isa.Alu(AluOp.MOV, free[0], d))
                parked = free[0]
            else:
                self.put(isa.Store(8, 10, self.scratch(), d))
                parked = stack
            pending = {k: (parked if v == d else v) for k, v in pending.items()}

    def scratch(self) -> int:
        if self.scratch_slot is None:
            self.scratch_slot = -((self.alloc.frame_size + 7) // 8 * 8 + 8)
            if -self.scratch_slot > STACK_SIZE:
                raise IRError(f"function {self.func.name}: no stack left for a scratch slot")
        return self.scratch_slot


# ------------------------------------------------------------------ layout


def layout(functions: list[FunctionCode]) -> tuple[dict[Label, int], dict[int, int]]:
    """Place every item: the slot of each label and of each item (by `id`), with every
    jump in reach (those that are not become long and the layout is redone)."""
    while True:
        labels: dict[Label, int] = {}
        items: dict[int, int] = {}
        pos = 0
        for f in functions:
            for x in f.items:
                if isinstance(x, Label):
                    labels[x] = pos
                else:
                    items[id(x)] = pos
                    pos += x.slots
        grew = False
        for f in functions:
            for x in f.items:
                if isinstance(x, Label) or x.target is None or x.long:
                    continue
                if not isinstance(x.insn, isa.Jump | isa.Goto | isa.MayGoto):
                    continue
                off = labels[x.target] - (items[id(x)] + 1)
                if not S16[0] <= off <= S16[1]:
                    x.long = True
                    grew = True
        if not grew:
            return labels, items
