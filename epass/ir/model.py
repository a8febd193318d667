"""The SSA IR: values, instructions, blocks with parameters, functions, modules.

The IR stays one step away from bytecode on purpose: one IR instruction per
eBPF instruction, with the same operation names, widths and sizes, so that
the kernel verifier sees the same shapes after a round trip. What changes is
how operands are named:

- registers become SSA `Value`s, each defined once (by an instruction, or as
  a block parameter) and knowing its uses;
- control flow joins pass values as block arguments (`bb3(%4, %7)`);
- the frame pointer r10 is the operand `FP`; a load or store whose base is
  `FP` is a stack-slot access at that offset (`load u64 [fp - 8]`).

Every value remembers the register it came from (`Value.reg`): the register
allocator tries it first, which is why an untouched program comes back
instruction for instruction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from epass.isa.opcodes import AluOp, AtomicOp, CallKind, EndianKind, JmpOp, PacketMode, PseudoKind
from epass.obj.btf_ext import LineInfo
from epass.obj.model import MapDef, Program
from epass.obj.sections import SectionKind

STACK_SIZE = 512  # bytes of frame per function


class FramePointer:
    """r10: read-only, the top of the current function's 512-byte frame."""

    _instance: FramePointer | None = None

    def __new__(cls) -> FramePointer:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "fp"


FP = FramePointer()


class Value:
    """An SSA value: 64 bits, defined once, by an instruction or as a block parameter."""

    def __init__(self, id: int, reg: int | None = None) -> None:
        self.id = id
        self.reg = reg  # register in the original program: the allocator's first choice
        self.definition: Inst | Block | None = None
        self.uses: list[Inst] = []  # one entry per operand or block argument that reads it

    def __repr__(self) -> str:
        return f"%{self.id}"

    @property
    def is_param(self) -> bool:
        return isinstance(self.definition, Block)

    def replace_all_uses(self, other: Value, exclude: tuple[Inst, ...] = ()) -> None:
        """Make every reader of this value read `other` instead, except the instructions in
        `exclude` (typically the one that computes `other` from this value)."""
        for user in list(dict.fromkeys(self.uses)):
            if user not in exclude:
                user.replace_value(self, other)


Operand = Value | int | FramePointer


# ------------------------------------------------------------------ instructions


class Inst:
    """An instruction. `operands` are read in order; `result` is the value it defines."""

    is_terminator = False

    def __init__(self, operands: list[Operand], result: Value | None = None) -> None:
        self.operands: list[Operand] = []
        self.result = result
        self.block: Block | None = None
        self.origin: int | None = None  # slot index in the lifted program
        self.line: LineInfo | None = None  # source line, when the original had one here
        for op in operands:
            self._add_operand(op)
        if result is not None:
            result.definition = self

    def _add_operand(self, op: Operand) -> None:
        self.operands.append(op)
        if isinstance(op, Value):
            op.uses.append(self)

    def set_operand(self, index: int, op: Operand) -> None:
        old = self.operands[index]
        if isinstance(old, Value):
            old.uses.remove(self)
        self.operands[index] = op
        if isinstance(op, Value):
            op.uses.append(self)

    def replace_value(self, old: Value, new: Operand) -> None:
        for i, op in enumerate(self.operands):
            if op is old:
                self.set_operand(i, new)

    def used_values(self) -> list[Value]:
        """Every value read, block arguments included (one entry per read)."""
        return [op for op in self.operands if isinstance(op, Value)]

    def drop_uses(self) -> None:
        for v in self.used_values():
            v.uses.remove(self)

    def erase(self) -> None:
        """Remove from its block; its result must have no uses left."""
        if self.result is not None and self.result.uses:
            raise ValueError(f"{self.result!r} still has uses")
        self.drop_uses()
        if self.block is not None:
            self.block.insts.remove(self)
            self.block = None


class Alu(Inst):
    """`%d = add %a, %b` (64-bit) or `add.32`; mov/movsx/neg take one operand."""

    def __init__(self, op: AluOp, bits: int, operands: list[Operand], result: Value) -> None:
        super().__init__(operands, result)
        self.op = op
        self.bits = bits

    @property
    def is_copy(self) -> bool:
        """A 64-bit register move: the allocator may give both sides one register."""
        return self.op == AluOp.MOV and self.bits == 64 and isinstance(self.operands[0], Value)


UNARY_ALU = (AluOp.MOV, AluOp.MOVSX8, AluOp.MOVSX16, AluOp.MOVSX32, AluOp.NEG)
# ops whose result is written over their first operand's register in bytecode
TWO_ADDRESS_UNARY = (AluOp.NEG,)


class Endian(Inst):
    def __init__(self, kind: EndianKind, bits: int, operand: Operand, result: Value) -> None:
        super().__init__([operand], result)
        self.kind = kind
        self.bits = bits


class LoadImm(Inst):
    """`lddw` of a 64-bit constant."""

    def __init__(self, value: int, result: Value) -> None:
        super().__init__([], result)
        self.value = value & 0xFFFF_FFFF_FFFF_FFFF


class LoadMap(Inst):
    """A map (`map @name`) or a pointer into its value (`map_value @name + off`)."""

    def __init__(self, map: str, result: Value, value: bool = False, offset: int = 0) -> None:
        super().__init__([], result)
        self.map = map
        self.value = value
        self.offset = offset


class LoadFunc(Inst):
    """The address of a function of the module (a callback for bpf_loop and friends)."""

    def __init__(self, function: str, result: Value) -> None:
        super().__init__([], result)
        self.function = function


class LoadPseudo(Inst):
    """Any other lddw kind, kept as its raw fields (map fd numbers, BTF ids)."""

    def __init__(self, kind: PseudoKind, imm: int, aux: int, result: Value) -> None:
        super().__init__([], result)
        self.kind = kind
        self.imm = imm
        self.aux = aux


class Load(Inst):
    """`%d = load u32 [%base + off]` (`s32`: sign-extending); base `fp`: a stack slot."""

    def __init__(self, size: int, base: Operand, off: int, result: Value,
                 signed: bool = False) -> None:
        super().__init__([base], result)
        self.size = size
        self.off = off
        self.signed = signed

    @property
    def base(self) -> Operand:
        return self.operands[0]

    @property
    def is_stack(self) -> bool:
        return self.base is FP


class Store(Inst):
    """`store u32 [%base + off], %v` (or an immediate); base `fp`: a stack slot."""

    def __init__(self, size: int, base: Operand, off: int, value: Operand) -> None:
        super().__init__([base, value])
        self.size = size
        self.off = off

    @property
    def base(self) -> Operand:
        return self.operands[0]

    @property
    def value(self) -> Operand:
        return self.operands[1]

    @property
    def is_stack(self) -> bool:
        return self.base is FP


class Atomic(Inst):
    """Atomic memory operation on `[base + off]`.

    Operands: `[base, value]`; CMPXCHG: `[base, expected, value]`; LOAD_ACQUIRE:
    `[base]`. Fetch forms, XCHG, CMPXCHG and LOAD_ACQUIRE define the old value.
    """

    def __init__(self, op: AtomicOp, size: int, off: int, operands: list[Operand],
                 result: Value | None) -> None:
        super().__init__(operands, result)
        self.op = op
        self.size = size
        self.off = off

    @property
    def base(self) -> Operand:
        return self.operands[0]


class Call(Inst):
    """A helper (`target` is its id), kfunc (BTF id) or function of the module (its name).

    `operands` are the arguments, r1 first; the result is r0. r1-r5 do not survive.
    """

    def __init__(self, kind: CallKind, target: int | str, args: list[Operand], result: Value,
                 kfunc_off: int = 0) -> None:
        super().__init__(args, result)
        self.kind = kind
        self.target = target
        self.kfunc_off = kfunc_off


class LoadPacket(Inst):
    """Legacy `r0 = *(u16 *)skb[off]` (operands `[ctx]`) or `skb[%i + off]` (`[ctx, %i]`)."""

    def __init__(self, mode: PacketMode, size: int, imm: int, operands: list[Operand],
                 result: Value) -> None:
        super().__init__(operands, result)
        self.mode = mode
        self.size = size
        self.imm = imm


class Arg(Inst):
    """The function's argument `index` (r1..r5 at entry); only in the entry block."""

    def __init__(self, index: int, result: Value) -> None:
        super().__init__([], result)
        self.index = index


class Undef(Inst):
    """A register read before anything was written to it (the verifier rejects such reads;
    the IR keeps them so rejected programs can be lifted and repaired)."""

    def __init__(self, result: Value) -> None:
        super().__init__([], result)


# ------------------------------------------------------------------ terminators


@dataclass(eq=False)
class Edge:
    """A control-flow edge with the arguments for the target's parameters."""

    target: Block
    args: list[Value] = field(default_factory=list)


class Terminator(Inst):
    is_terminator = True

    def __init__(self, operands: list[Operand], edges: list[Edge]) -> None:
        super().__init__(operands)
        self.edges = edges
        for e in edges:
            for a in e.args:
                a.uses.append(self)

    def used_values(self) -> list[Value]:
        return super().used_values() + [a for e in self.edges for a in e.args]

    def replace_value(self, old: Value, new: Operand) -> None:
        super().replace_value(old, new)
        for e in self.edges:
            for i, a in enumerate(e.args):
                if a is old:
                    if not isinstance(new, Value):
                        raise TypeError("block arguments must be values")
                    old.uses.remove(self)
                    new.uses.append(self)
                    e.args[i] = new

    def add_edge_arg(self, edge: Edge, value: Value) -> None:
        edge.args.append(value)
        value.uses.append(self)

    def remove_edge_arg(self, edge: Edge, index: int) -> None:
        edge.args.pop(index).uses.remove(self)

    def retarget(self, edge: Edge, target: Block, args: list[Value]) -> None:
        for a in edge.args:
            a.uses.remove(self)
        edge.target = target
        edge.args = list(args)
        for a in edge.args:
            a.uses.append(self)


class Branch(Terminator):
    """`br jgt %a, %b, bb1(...), bb2(...)`: to `then` when `a op b` holds, else to `orelse`."""

    def __init__(self, op: JmpOp, bits: int, a: Operand, b: Operand, then: Edge,
                 orelse: Edge) -> None:
        super().__init__([a, b], [then, orelse])
        self.op = op
        self.bits = bits

    @property
    def then(self) -> Edge:
        return self.edges[0]

    @property
    def orelse(self) -> Edge:
        return self.edges[1]


class Jump(Terminator):
    def __init__(self, edge: Edge) -> None:
        super().__init__([], [edge])


class MayGoto(Terminator):
    """`may_goto`: to `out` once the kernel's loop budget is spent, else to `orelse`."""

    def __init__(self, out: Edge, orelse: Edge) -> None:
        super().__init__([], [out, orelse])


class Ret(Terminator):
    """`exit` with r0 = the operand; `abort`: a check a pass inserted stops the program
    here (`abort 0` in text), which `epass prove` accepts as a refinement."""

    def __init__(self, value: Operand, abort: bool = False) -> None:
        super().__init__([value], [])
        self.abort = abort


# ------------------------------------------------------------------ containers


class Block:
    def __init__(self, id: int, function: Function) -> None:
        self.id = id
        self.function = function
        self.params: list[Value] = []
        self.insts: list[Inst] = []

    def __repr__(self) -> str:
        return f"bb{self.id}"

    @property
    def terminator(self) -> Terminator | None:
        if self.insts and isinstance(self.insts[-1], Terminator):
            return self.insts[-1]
        return None

    @property
    def successors(self) -> list[Block]:
        t = self.terminator
        return [e.target for e in t.edges] if t is not None else []

    def add_param(self, value: Value) -> Value:
        value.definition = self
        self.params.append(value)
        return value

    def append(self, inst: Inst) -> Inst:
        return self.insert(len(self.insts), inst)

    def insert(self, index: int, inst: Inst) -> Inst:
        inst.block = self
        self.insts.insert(index, inst)
        return inst


class Function:
    """A function of the program: the entry (`is_main`) or a subprogram.

    `blocks` is in layout order and starts with the entry block, which has no
    parameters and no predecessors.
    """

    def __init__(self, name: str, is_main: bool = False) -> None:
        self.name = name
        self.is_main = is_main
        self.blocks: list[Block] = []
        self.arg_count = 1 if is_main else 0  # r1..rN hold arguments at entry
        self.type_id = 0  # BTF FUNC id from func_info (0: none)
        self.section = ""  # ELF section the function came from
        self._next_value = 0
        self._next_block = 0

    def __repr__(self) -> str:
        return f"@{self.name}"

    @property
    def entry(self) -> Block:
        return self.blocks[0]

    def new_value(self, reg: int | None = None) -> Value:
        v = Value(self._next_value, reg)
        self._next_value += 1
        return v

    def new_block(self, after: Block | None = None) -> Block:
        """A new, empty block, placed after `after` in the layout (else at the end)."""
        b = Block(self._next_block, self)
        self._next_block += 1
        if after is None:
            self.blocks.append(b)
        else:
            self.blocks.insert(self.blocks.index(after) + 1, b)
        return b

    def reserve_ids(self, values: int, blocks: int) -> None:
        """Make later `new_value`/`new_block` ids start past these (used by the parser)."""
        self._next_value = max(self._next_value, values)
        self._next_block = max(self._next_block, blocks)

    def instructions(self) -> Iterator[Inst]:
        for b in self.blocks:
            yield from b.insts

    def predecessors(self) -> dict[Block, list[Block]]:
        """Each block's predecessors, once per edge, in layout order."""
        preds: dict[Block, list[Block]] = {b: [] for b in self.blocks}
        for b in self.blocks:
            for s in b.successors:
                preds.setdefault(s, []).append(b)
        return preds

    def frame_size(self) -> int:
        """Bytes of stack the function may use (the lowest offset reached, negated).

        Accesses through fp count, and so does every pointer derived from fp by copies and
        constant additions (`r1 = r10; r1 += -8`): what it points at, and what is accessed
        through it. A pointer handed to a helper may be used upwards from where it points,
        which stays inside [fp + offset, fp)."""
        derived: dict[Value, int] = {}  # value -> its offset from fp
        low = 0
        changed = True
        while changed:  # SSA: a few rounds settle even across loops
            changed = False
            for inst in self.instructions():
                v = inst.result
                if v is None or v in derived or not isinstance(inst, Alu) or inst.bits != 64:
                    continue
                a = inst.operands[0]
                base = 0 if a is FP else derived.get(a) if isinstance(a, Value) else None
                if base is None:
                    continue
                if inst.op == AluOp.MOV:
                    derived[v] = base
                elif inst.op in (AluOp.ADD, AluOp.SUB) and isinstance(inst.operands[1], int):
                    step = inst.operands[1]
                    derived[v] = base + (step if inst.op == AluOp.ADD else -step)
                else:
                    continue
                changed = True
        low = min([0, *derived.values()])
        for inst in self.instructions():
            if isinstance(inst, Load | Store | Atomic):
                base = inst.operands[0]
                at = 0 if base is FP else derived.get(base) if isinstance(base, Value) else None
                if at is not None:
                    low = min(low, at + inst.off)
        return -low


@dataclass
class Module:
    """One program: its entry function and the subprograms it reaches, in load order."""

    name: str
    section: str
    kind: SectionKind | None
    functions: list[Function]
    maps: list[MapDef] = field(default_factory=list)  # the object's maps (read-only here)
    new_maps: list[MapDef] = field(default_factory=list)  # maps passes asked for
    source: Program | None = None  # the program it was lifted from
    vimap: object | None = None  # epass.kernel.vimap.VIMap, when one is attached

    @property
    def main(self) -> Function:
        return self.functions[0]

    def function(self, name: str) -> Function:
        for f in self.functions:
            if f.name == name:
                return f
        raise KeyError(name)

    def map_def(self, name: str) -> MapDef | None:
        for m in self.maps + self.new_maps:
            if m.name == name:
                return m
        return None

    def add_map(self, map: MapDef) -> str:
        """Ask for a map for pass storage; returns its name (for `LoadMap`)."""
        if self.map_def(map.name) is not None:
            raise ValueError(f"a map named {map.name!r} exists already")
        self.new_maps.append(map)
        return map.name

    def verifier_states(self, inst: Inst) -> list:
        """The verifier's states before `inst` (one per visit), from the attached VI map;
        empty when no map is attached or the instruction was inserted by a pass."""
        if self.vimap is None or inst.origin is None:
            return []
        return self.vimap.states(inst.origin)  # type: ignore[attr-defined]
