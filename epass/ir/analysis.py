"""Facts about values and instructions that the optimization passes share.

- `imm_for`: the 32-bit immediate that stands for a 64-bit constant in an operand.
- `is_pure`: instructions that may be deleted when their result is unused.
- `fp_offsets`: values pointing into the frame at a known offset.
- `replace`: one instruction in place of another.
- `remove_unreachable`, `remove_dead_values`, `simplify_params`: clean-ups after a rewrite.

See docs/passes/const_fold.md, dce.md and zext.md.
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.cfg import reverse_postorder
from epass.ir.model import FP, Block, Edge, Function, Value
from epass.isa.opcodes import AluOp

MASK64 = (1 << 64) - 1

# No effect but their result. Loads are here: in a program the verifier accepted, every load
# is in bounds (PROBE_MEM loads that fault give 0), so an unused one can go; dropping it only
# removes a check the verifier already passed. Not here: stores, atomics, calls, LD_ABS/LD_IND
# (an out-of-bounds one ends the program), arg/undef (they emit nothing anyway).
PURE = (ir.Alu, ir.Endian, ir.LoadImm, ir.LoadMap, ir.LoadFunc, ir.LoadPseudo, ir.Load)


def is_pure(inst: ir.Inst) -> bool:
    return isinstance(inst, PURE)


def imm_for(c: int, bits: int) -> int | None:
    """The signed 32-bit immediate whose meaning in a `bits`-wide operand is the 64-bit
    constant `c`: any low half for 32 bits; for 64 bits only a sign-extended one."""
    low = c & 0xFFFF_FFFF
    imm = low - (1 << 32) if low >> 31 else low
    return imm if bits == 32 or imm & MASK64 == c & MASK64 else None


def fp_offsets(func: Function) -> dict[Value, int]:
    """Values pointing into the frame at a known offset (copies of fp plus constants)."""
    known: dict[Value, int] = {}
    changed = True
    while changed:  # SSA: a few rounds settle even across loops
        changed = False
        for inst in func.instructions():
            if not isinstance(inst, ir.Alu) or inst.bits != 64 or inst.result in known:
                continue
            a = inst.operands[0]
            base = 0 if a is FP else known.get(a) if isinstance(a, Value) else None
            step = inst.operands[1] if len(inst.operands) > 1 else 0
            if base is None or not isinstance(step, int) or \
                    inst.op not in (AluOp.MOV, AluOp.ADD, AluOp.SUB):
                continue
            assert inst.result is not None
            known[inst.result] = base + (-step if inst.op == AluOp.SUB else step)
            changed = True
    return known


def replace(old: ir.Inst, new: ir.Inst) -> None:
    """Put `new` where `old` was, with its slot and source line (a result `old` defined must
    already be `new`'s)."""
    block = old.block
    assert block is not None
    new.origin, new.line = old.origin, old.line
    old.drop_uses()
    block.insts[block.insts.index(old)] = new
    new.block, old.block = block, None


def incoming(func: Function) -> dict[Block, list[tuple[ir.Terminator, Edge]]]:
    """Each block's incoming edges, with the terminator that owns each."""
    into: dict[Block, list[tuple[ir.Terminator, Edge]]] = {b: [] for b in func.blocks}
    for b in func.blocks:
        t = b.terminator
        for e in t.edges if t is not None else []:
            into[e.target].append((t, e))
    return into


def remove_unreachable(func: Function) -> bool:
    """Drop the blocks no path from the entry reaches (their edges lead only to each other or
    to reachable blocks, whose parameters lose those arguments with them)."""
    reached = set(reverse_postorder(func))
    dead = [b for b in func.blocks if b not in reached]
    for b in dead:
        for inst in b.insts:
            inst.drop_uses()
    func.blocks = [b for b in func.blocks if b in reached]
    return bool(dead)


def remove_dead_values(func: Function) -> bool:
    """Mark and sweep: delete pure instructions and block parameters whose values nothing with
    an effect (a store, a call, a terminator's operand) needs, dead cycles through joins too."""
    into = incoming(func)
    live: set[Value] = set()
    work: list[Value] = []

    def mark(op: ir.Operand) -> None:
        if isinstance(op, Value) and op not in live:
            live.add(op)
            work.append(op)

    for inst in func.instructions():
        if not is_pure(inst):
            for op in inst.operands:  # a terminator's operands; its edge arguments wait
                mark(op)
    while work:
        v = work.pop()
        d = v.definition
        if isinstance(d, Block):
            k = d.params.index(v)
            for _, e in into[d]:
                mark(e.args[k])
        elif d is not None:
            for op in d.operands:
                mark(op)
    changed = False
    for b in func.blocks:
        for inst in [i for i in b.insts if is_pure(i) and i.result not in live]:
            inst.drop_uses()  # its result's readers are dead too: no erase() order needed
            b.insts.remove(inst)
            inst.block = None
            changed = True
        for k in reversed(range(len(b.params))):
            if b.params[k] not in live:
                for t, e in into[b]:
                    t.remove_edge_arg(e, k)
                b.params.pop(k)
                changed = True
    return changed


def simplify_params(func: Function) -> bool:
    """A parameter that receives one value on every edge (or itself, around a loop) is that
    value: its readers read the value instead, and the parameter goes."""
    into = incoming(func)
    changed = True
    done = False
    while changed:
        changed = False
        for b in func.blocks:
            for k in reversed(range(len(b.params))):
                p = b.params[k]
                args = {e.args[k] for _, e in into[b]} - {p}
                if len(args) != 1:
                    continue
                p.replace_all_uses(args.pop())
                for t, e in into[b]:
                    t.remove_edge_arg(e, k)
                b.params.pop(k)
                changed = done = True
    return done
