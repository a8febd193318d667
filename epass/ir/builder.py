"""The pass writer's API: a cursor in a function that creates instructions and blocks.

    b = Builder.before(inst)
    zero = b.guard(JmpOp.EQ, divisor, 0, code=0)     # abort when the divisor is 0
    v = b.alu(AluOp.ADD, x, 1)                        # continues after the check

A `Builder` inserts at its position and moves past what it inserted, so a
sequence of calls reads in program order. `guard` and `split` change the
control flow and leave the builder in the block where execution continues.
Aborting (`abort_block`, `guard`) releases the ringbuf reservations the
program holds at that point, so the verifier sees no leaked reference.
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.model import FP, Block, Edge, Function, Operand, Value
from epass.ir.resources import held_reservations
from epass.isa.helpers import HELPER_IDS
from epass.isa.opcodes import AluOp, CallKind, JmpOp

RINGBUF_DISCARD = HELPER_IDS["bpf_ringbuf_discard"]


class Builder:
    def __init__(self, block: Block, index: int) -> None:
        self.block = block
        self.index = index

    # ------------------------------------------------------------ positions

    @classmethod
    def before(cls, inst: ir.Inst) -> Builder:
        assert inst.block is not None
        return cls(inst.block, inst.block.insts.index(inst))

    @classmethod
    def after(cls, inst: ir.Inst) -> Builder:
        assert inst.block is not None and not inst.is_terminator
        return cls(inst.block, inst.block.insts.index(inst) + 1)

    @classmethod
    def at_end(cls, block: Block) -> Builder:
        """Before the terminator (or at the very end of a block that has none yet)."""
        n = len(block.insts)
        return cls(block, n - 1 if block.terminator is not None else n)

    @property
    def func(self) -> Function:
        return self.block.function

    def insert(self, inst: ir.Inst) -> ir.Inst:
        self.block.insert(self.index, inst)
        self.index += 1
        return inst

    # ------------------------------------------------------------ values

    def alu(self, op: AluOp, a: Operand, b: Operand | None = None, bits: int = 64) -> Value:
        operands = [a] if b is None else [a, b]
        v = self.func.new_value()
        self.insert(ir.Alu(op, bits, operands, v))
        return v

    def mov(self, x: Operand, bits: int = 64) -> Value:
        return self.alu(AluOp.MOV, x, bits=bits)

    def load(self, size: int, base: Operand, off: int = 0, signed: bool = False) -> Value:
        v = self.func.new_value()
        self.insert(ir.Load(size, base, off, v, signed))
        return v

    def store(self, size: int, base: Operand, off: int, value: Operand) -> ir.Inst:
        return self.insert(ir.Store(size, base, off, value))

    def stack_load(self, off: int, size: int = 8) -> Value:
        return self.load(size, FP, off)

    def stack_store(self, off: int, value: Operand, size: int = 8) -> ir.Inst:
        return self.store(size, FP, off, value)

    def lddw(self, value: int) -> Value:
        v = self.func.new_value()
        self.insert(ir.LoadImm(value, v))
        return v

    def map_ptr(self, name: str, value: bool = False, offset: int = 0) -> Value:
        v = self.func.new_value()
        self.insert(ir.LoadMap(name, v, value, offset))
        return v

    def call(self, helper: int | str, *args: Operand) -> Value:
        """A helper call by id or name (`"bpf_map_lookup_elem"`); returns r0."""
        ident = HELPER_IDS[helper] if isinstance(helper, str) else helper
        v = self.func.new_value()
        self.insert(ir.Call(CallKind.HELPER, ident, list(args), v))
        return v

    # ------------------------------------------------------------ control flow

    def split(self) -> Block:
        """Move everything from the position on into a new block that follows in the layout;
        the current block jumps there. The builder moves to the start of the new block."""
        old = self.block
        new = self.func.new_block(after=old)
        moved = old.insts[self.index:]
        del old.insts[self.index:]
        for inst in moved:
            new.append(inst)
        old.append(ir.Jump(Edge(new)))
        self.block, self.index = new, 0
        return new

    def branch(self, op: JmpOp, a: Operand, b: Operand, then: Block, orelse: Block,
               bits: int = 64) -> ir.Inst:
        """End the current block (which must have no terminator yet) with a branch."""
        return self.insert(ir.Branch(op, bits, a, b, Edge(then), Edge(orelse)))

    def jump(self, target: Block, args: list[Value] | None = None) -> ir.Inst:
        return self.insert(ir.Jump(Edge(target, list(args or []))))

    def ret(self, value: Operand) -> ir.Inst:
        return self.insert(ir.Ret(value))

    def abort_block(self, code: int) -> Block:
        """A new block (at the end of the layout) that releases what the program holds at
        this position and returns `code`."""
        held = held_reservations(self.func).get(id(self._anchor()), [])
        block = self.func.new_block()
        b = Builder(block, 0)
        for res in held:
            release = self.func.new_block()
            after = self.func.new_block()
            b.branch(JmpOp.EQ, res, 0, after, release)  # the reservation may have failed
            Builder(release, 0).call(RINGBUF_DISCARD, res, 0)
            Builder.at_end(release).jump(after)
            b = Builder(after, 0)
        b.insert(ir.Ret(code, abort=True))
        return block

    def _anchor(self) -> ir.Inst:
        """The instruction at the position (where the held set is looked up)."""
        return self.block.insts[self.index]

    def guard(self, op: JmpOp, a: Operand, b: Operand, code: int, bits: int = 64) -> Block:
        """Abort with `code` when `a op b` holds, else go on: the builder continues in the
        block after the check, which is returned."""
        abort = self.abort_block(code)
        rest = self.split()
        old = self.func.blocks[self.func.blocks.index(rest) - 1]
        jump = old.terminator
        assert jump is not None
        jump.drop_uses()
        old.insts.remove(jump)
        old.append(ir.Branch(op, bits, a, b, Edge(abort), Edge(rest)))
        return rest


def replace_all_uses(old: Value, new: Value, exclude: tuple[ir.Inst, ...] = ()) -> None:
    """Every reader of `old` but `exclude` reads `new` instead (`Value.replace_all_uses`)."""
    old.replace_all_uses(new, exclude)


def delete(inst: ir.Inst) -> None:
    """Remove an instruction whose result, if any, is no longer used."""
    inst.erase()
