"""Which constants a scalar SSA value can hold: a small finite set, when there is one.

`ValueSets(func)` runs a fixpoint over the function: constants and ALU operations on
them give sets, loads give the range of their width, block parameters join what their
edges pass, and a branch comparing a value with a constant narrows it on each edge (and
in the blocks reached only through that edge). A range of at most `LIMIT` values
becomes a set, so `if x < 3` makes a loaded x {0, 1, 2} on its true edge, and a counter
stepping by 4 up to `!= 20` is {0, 4, 8, 12, 16} in its loop. `address(v, sets, block)`
splits an address into root + constant + such an index.

The result is a guess that guides a rewrite, not a fact: what a repair builds from it
is checked (the verifier) and proven (Z3) afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.ir import model as ir
from epass.ir.cfg import reverse_postorder
from epass.isa.opcodes import AluOp, JmpOp
from epass.semantics import ops
from epass.semantics.domain import CONCRETE, Word

LIMIT = 32
MASK64 = (1 << 64) - 1
ROUNDS = 200  # fixpoint iterations before giving up (widening makes this ample)


@dataclass(frozen=True)
class Span:
    """Every value in [lo, hi], unsigned."""

    lo: int
    hi: int


Abstract = frozenset[int] | Span | None  # None: any value; frozenset(): not reached yet
ANY = Span(0, MASK64)
NEGATE = {JmpOp.EQ: JmpOp.NE, JmpOp.NE: JmpOp.EQ, JmpOp.LT: JmpOp.GE, JmpOp.GE: JmpOp.LT,
          JmpOp.GT: JmpOp.LE, JmpOp.LE: JmpOp.GT}


def _norm(a: Abstract) -> Abstract:
    if isinstance(a, Span):
        if a.lo > a.hi:
            return frozenset()
        return frozenset(range(a.lo, a.hi + 1)) if a.hi - a.lo < LIMIT else a
    if a is not None and len(a) > LIMIT:
        return Span(min(a), max(a))
    return a


def _span(a: Abstract) -> Span:
    if isinstance(a, frozenset):
        return Span(min(a), max(a)) if a else Span(1, 0)
    return a if a is not None else ANY


def join(a: Abstract, b: Abstract) -> Abstract:
    if isinstance(a, frozenset) and isinstance(b, frozenset):
        return _norm(a | b)
    if a is None or b is None:
        return None
    sa, sb = _span(a), _span(b)
    return _norm(Span(min(sa.lo, sb.lo), max(sa.hi, sb.hi)))


def _alu(op: AluOp, bits: int, a: int, b: int) -> int:
    return ops.alu(CONCRETE, op, bits, Word(a, 64), Word(b, 64)).value


def _holds(op: JmpOp, bits: int, a: int, b: int) -> bool:
    return bool(ops.condition(CONCRETE, op, bits, Word(a, 64), Word(b & MASK64, 64)))


def refine(a: Abstract, op: JmpOp, bits: int, c: int, holds: bool) -> Abstract:
    """`a` where `a op c` is `holds`."""
    if isinstance(a, frozenset):
        return frozenset(x for x in a if _holds(op, bits, x, c) == holds)
    s = _span(a)
    if bits == 32 and s.hi > 0xFFFF_FFFF:
        return a  # the upper half is unknown: a 32-bit test says nothing about the whole
    if not holds:
        if op not in NEGATE:
            return a
        op = NEGATE[op]
    c &= MASK64 if bits == 64 else 0xFFFF_FFFF
    lo, hi = s.lo, s.hi
    match op:
        case JmpOp.EQ:
            return frozenset({c}) if lo <= c <= hi else frozenset()
        case JmpOp.LT:
            hi = min(hi, c - 1)
        case JmpOp.LE:
            hi = min(hi, c)
        case JmpOp.GT:
            lo = max(lo, c + 1)
        case JmpOp.GE:
            lo = max(lo, c)
        case _:
            return a
    return _norm(Span(lo, hi))


def _transfer(inst: ir.Inst, get) -> Abstract:  # noqa: ANN001 - get: Operand -> Abstract
    if isinstance(inst, ir.Load):
        return None if inst.signed else Span(0, (1 << (8 * inst.size)) - 1)
    if isinstance(inst, ir.LoadImm):
        return frozenset({inst.value})
    if not isinstance(inst, ir.Alu):
        return None
    args = [get(o) for o in inst.operands]
    if any(a == frozenset() for a in args):
        return frozenset()  # not reached yet
    if all(isinstance(a, frozenset) for a in args):
        if len(args) == 1:  # mov and movsx read their operand as src, neg as dst
            neg = inst.op == AluOp.NEG
            return _norm(frozenset(_alu(inst.op, inst.bits, x if neg else 0, 0 if neg else x)
                                   for x in args[0]))
        if len(args[0]) * len(args[1]) <= LIMIT * LIMIT:
            return _norm(frozenset(_alu(inst.op, inst.bits, x, y)
                                   for x in args[0] for y in args[1]))
    s = _span(args[0])
    if inst.op == AluOp.MOV and (inst.bits == 64 or s.hi <= 0xFFFF_FFFF):
        return args[0]
    if len(args) == 2 and isinstance(args[1], frozenset) and len(args[1]) == 1:
        (c,) = args[1]
        if inst.bits == 32 and s.hi > 0xFFFF_FFFF:
            s = Span(0, 0xFFFF_FFFF)
        if inst.op == AluOp.AND:
            return _norm(Span(0, min(s.hi, c)))
        if inst.op == AluOp.RSH and c < inst.bits:
            return _norm(Span(s.lo >> c, s.hi >> c))
    return None


class ValueSets:
    def __init__(self, func: ir.Function) -> None:
        self.func = func
        self.facts: dict[ir.Value, Abstract] = {}
        preds = func.predecessors()
        self.single = {b: ps[0] for b, ps in preds.items() if len(ps) == 1}
        order = reverse_postorder(func)
        for _ in range(ROUNDS):
            changed = False
            for block in order:
                for p in block.params:
                    new = frozenset()
                    for pred in preds[block]:
                        term = pred.terminator
                        assert term is not None
                        i = block.params.index(p)
                        for e in term.edges:
                            if e.target is block:
                                new = join(new, self._on_edge(e.args[i], pred, term, e))
                    changed |= self._set(p, new)
                for inst in block.insts:
                    if inst.result is not None:
                        changed |= self._set(inst.result, _transfer(inst, self._get))
            if not changed:
                return
        self.facts = {}  # no fixpoint: claim nothing

    def _get(self, o: ir.Operand) -> Abstract:
        if isinstance(o, int):
            return frozenset({o & MASK64})
        if isinstance(o, ir.Value):
            return self.facts.get(o, frozenset())
        return None  # fp

    def _set(self, v: ir.Value, new: Abstract) -> bool:
        old = self.facts.get(v, frozenset())
        if new == old:
            return False
        if isinstance(old, Span) and isinstance(new, Span):
            new = None  # widening: a growing range would not settle
        self.facts[v] = new
        return True

    def _test(self, v: ir.Value, a: Abstract, term: ir.Inst, edge: ir.Edge) -> Abstract:
        if isinstance(term, ir.Branch) and term.operands[0] is v:
            c = self._get(term.operands[1])
            if isinstance(c, frozenset) and len(c) == 1:
                return refine(a, term.op, term.bits, next(iter(c)), edge is term.then)
        return a

    def _on_edge(self, v: ir.Operand, pred: ir.Block, term: ir.Inst, edge: ir.Edge) -> Abstract:
        a = self.at(v, pred)
        return self._test(v, a, term, edge) if isinstance(v, ir.Value) else a

    def at(self, v: ir.Operand, block: ir.Block) -> Abstract:
        """What `v` may hold in `block`: narrowed by the tests on the way there through
        blocks with a single predecessor."""
        a = self._get(v)
        if not isinstance(v, ir.Value):
            return a
        seen = {block}
        while block in self.single:
            pred = self.single[block]
            term = pred.terminator
            if pred in seen or term is None:
                break
            edges = [e for e in term.edges if e.target is block]
            if len(edges) == 1:
                a = self._test(v, a, term, edges[0])
            if v.definition is pred or v.definition in pred.insts:
                break
            seen.add(pred)
            block = pred
        return a

    def values(self, v: ir.Operand, block: ir.Block) -> list[int] | None:
        """The values `v` may hold in `block`, sorted, when they are at most LIMIT."""
        a = self.at(v, block)
        return sorted(a) if isinstance(a, frozenset) and a else None


def address(v: ir.Operand, sets: ValueSets, block: ir.Block
            ) -> tuple[ir.Operand, int, ir.Value | None]:
    """An address `v` used in `block` as (root, constant, index), root + constant + index,
    through copies and additions; the index is a scalar with a few possible values (None:
    there is none). The constant is signed."""
    off, index = 0, None
    while isinstance(v, ir.Value) and isinstance(d := v.definition, ir.Alu) and d.bits == 64:
        ops = d.operands
        if d.op == AluOp.MOV and not isinstance(ops[0], int):
            v = ops[0]
            continue
        if d.op in (AluOp.ADD, AluOp.SUB) and isinstance(ops[1], int):
            off, v = off + (ops[1] if d.op == AluOp.ADD else -ops[1]), ops[0]
            continue
        if d.op != AluOp.ADD:
            break
        known = [sets.values(o, block) for o in ops]
        one = [i for i in (1, 0) if known[i] is not None and len(known[i]) == 1]  # type: ignore
        few = [i for i in (1, 0) if known[i]]
        if one:
            off += known[one[0]][0]  # type: ignore[index]
            v = ops[1 - one[0]]
        elif few and index is None:
            index, v = ops[few[0]], ops[1 - few[0]]
        else:
            break
    off &= MASK64
    return v, off - (1 << 64) if off >> 63 else off, index  # type: ignore[return-value]
