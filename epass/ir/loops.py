"""Natural loops of a function, and the rewrites the repair strategy `loops` makes to them.

A natural loop is a header and the blocks that reach a back edge (an edge into a block
that dominates its source) without passing the header. Irreducible cycles have no
header that dominates them and are not listed.

- `add_counter`: a loop-carried counter (0 on entry, +1 per back edge) and an abort
  when it reaches a bound.
- `widen_entry`: a loop-carried constant's value on entry, computed as `fp - fp + c`, which
  the verifier cannot evaluate (pointer minus pointer is an unknown scalar to it).
- `fall_to_latch`: branches inside the loop made to fall through to the successor
  nearest the back edge (the verifier walks the fall-through first).
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.cfg import Dominators
from epass.isa.opcodes import AluOp, JmpOp

# the branch with the opposite condition (JSET has none)
INVERSE = {JmpOp.EQ: JmpOp.NE, JmpOp.NE: JmpOp.EQ, JmpOp.GT: JmpOp.LE, JmpOp.LE: JmpOp.GT,
           JmpOp.GE: JmpOp.LT, JmpOp.LT: JmpOp.GE, JmpOp.SGT: JmpOp.SLE,
           JmpOp.SLE: JmpOp.SGT, JmpOp.SGE: JmpOp.SLT, JmpOp.SLT: JmpOp.SGE}


@dataclass
class Loop:
    header: ir.Block
    body: set[ir.Block]  # the header included
    latches: list[ir.Block]  # sources of the back edges

    @property
    def key(self) -> tuple[str, int]:
        """Names the loop across lifts of one program (lifting is deterministic)."""
        return self.header.function.name, self.header.id

    @property
    def slot(self) -> int | None:
        """The first bytecode slot of the header (for reports)."""
        return next((i.origin for i in self.header.insts if i.origin is not None), None)


def natural_loops(func: ir.Function) -> list[Loop]:
    """The function's natural loops (one per header), outer loops first."""
    dom = Dominators(func)
    preds = func.predecessors()
    loops: dict[ir.Block, Loop] = {}
    for block in dom.order:
        for succ in block.successors:
            if dom.reachable(succ) and dom.dominates(succ, block):
                loop = loops.setdefault(succ, Loop(succ, {succ}, []))
                loop.latches.append(block)
                todo = [block]
                while todo:
                    b = todo.pop()
                    if b not in loop.body:
                        loop.body.add(b)
                        todo.extend(p for p in preds[b] if dom.reachable(p))
    return sorted(loops.values(), key=lambda lp: -len(lp.body))


def module_loops(module: ir.Module) -> list[Loop]:
    return [lp for f in module.functions for lp in natural_loops(f)]


def find(module: ir.Module, key: tuple[str, int]) -> Loop:
    return next(lp for lp in module_loops(module) if lp.key == key)


def _entry_edges(loop: Loop) -> list[tuple[ir.Block, ir.Edge]]:
    """(predecessor, edge) of every edge into the header, back edges included."""
    preds = loop.header.function.predecessors()[loop.header]
    out = []
    for p in dict.fromkeys(preds):
        term = p.terminator
        assert term is not None
        out += [(p, e) for e in term.edges if e.target is loop.header]
    return out


def add_counter(loop: Loop, bound: int) -> None:
    """Count the back edges taken since the loop was entered; abort (0) at `bound`."""
    func = loop.header.function
    count = loop.header.add_param(func.new_value())
    made: dict[ir.Block, ir.Value] = {}
    for pred, edge in _entry_edges(loop):
        if pred not in made:
            b = Builder.at_end(pred)
            made[pred] = b.alu(AluOp.ADD, count, 1) if pred in loop.body else b.mov(0)
        term = pred.terminator
        assert term is not None
        term.add_edge_arg(edge, made[pred])
    Builder(loop.header, 0).guard(JmpOp.GE, count, bound, code=0)


def constant_params(loop: Loop) -> list[int]:
    """Indexes of header parameters that enter the loop as a constant (`mov imm`)."""
    out = []
    for k in range(len(loop.header.params)):
        args = [e.args[k] for p, e in _entry_edges(loop) if p not in loop.body]
        if args and all(_constant(a) is not None for a in args):
            out.append(k)
    return out


def _constant(v: ir.Value) -> ir.Alu | None:
    d = v.definition
    if isinstance(d, ir.Alu) and d.op == AluOp.MOV and isinstance(d.operands[0], int):
        return d
    return None


def widen_entry(loop: Loop, k: int) -> None:
    """Give parameter k its entry constant c as `(fp - fp) + c`: the same value, unknown to
    the verifier, so loop states that differ only there can be pruned."""
    for pred, edge in _entry_edges(loop):
        if pred in loop.body:
            continue
        mov = _constant(edge.args[k])
        assert mov is not None
        b = Builder.at_end(pred)
        zero = b.alu(AluOp.SUB, b.mov(ir.FP), ir.FP)
        value = b.alu(AluOp.ADD, zero, mov.operands[0], bits=mov.bits)
        term = pred.terminator
        assert term is not None
        old = edge.args[k]
        old.uses.remove(term)
        value.uses.append(term)
        edge.args[k] = value


def fall_to_latch(loop: Loop) -> int:
    """Make each two-way branch whose successors both stay in the loop fall through to the
    one fewer blocks away from a back edge; returns how many branches were flipped."""
    preds = loop.header.function.predecessors()
    dist = {loop.header: 0}
    todo = [loop.header]
    while todo:  # breadth first over reversed edges, inside the loop
        b = todo.pop(0)
        for p in preds[b]:
            if p in loop.body and p not in dist:
                dist[p] = dist[b] + 1
                todo.append(p)
    flipped = 0
    for block in loop.body:
        t = block.terminator
        if not isinstance(t, ir.Branch) or t.op not in INVERSE:
            continue
        then, orelse = t.then.target, t.orelse.target
        if then in dist and orelse in dist and dist[then] < dist[orelse]:
            t.op = INVERSE[t.op]
            t.edges.reverse()
            flipped += 1
    return flipped
