"""provenance: give the verifier back a pointer whose type or constant offset it lost.

- "dereference of modified ctx ptr R? off=.. disallowed" (ctx + something): a constant
  is folded into the access (`load [ctx + 8]`); an index with a few possible values
  splits the access per value (`if i != 4 goto next; load [ctx + 52]`, an abort after
  the last); a pointer chosen at a join gets the join block copied per incoming edge
  (epass/ir/duplicate.py), each copy with its constant folded in.
- "same insn cannot be used with different pointers": the join block is copied per
  incoming edge, so each pointer type has its own instruction.
- "R? invalid mem access 'scalar'": a pointer read back from the stack at a variable
  offset: that load is split per offset, each copy reading a spilled pointer from a
  constant slot (the verifier keeps its type). Or a packet pointer a helper invalidated
  (bpf_xdp_adjust_tail): it is loaded again from the context before the access.
- "R? pointer arithmetic on pkt_end prohibited": `x op data_end + k` (unsigned or
  equality) becomes `x - k op data_end`.
- "R? !read_ok": an unwritten register reaching the instruction is set to 0 there.

Each rewrite performs the same accesses at the same addresses. What Z3 must prove: a
split's abort never fires (the values found, epass/ir/valueset.py, are all the values);
`x - k op end` decides as `x op end + k` (neither side wraps around); the result does
not depend on what the unwritten register held; a reload reads the value it replaces
(which needs a model of the helper in between).
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.cfg import Dominators
from epass.ir.duplicate import copy_access, duplicate_per_edge, prune, rebase, split_by_value
from epass.ir.valueset import ValueSets, address
from epass.isa.opcodes import AluOp, JmpOp
from epass.kernel.verifier_log import ErrorClass
from epass.repair.site import Site
from epass.repair.strategies import Candidate, Strategy, register
from epass.semantics.ctx import layout_for

ACCESSES = (ir.Load, ir.Store, ir.Atomic)
UNSIGNED = (JmpOp.EQ, JmpOp.NE, JmpOp.GT, JmpOp.GE, JmpOp.LT, JmpOp.LE)
S16, S32 = range(-(1 << 15), 1 << 15), range(-(1 << 31), 1 << 31)


def _find(s: Site, origin: int | None, kind: type = ir.Inst) -> ir.Inst:
    """The instruction lifted from slot `origin` in the fresh lift `s`."""
    return next(i for f in s.module.functions for i in f.instructions()
                if i.origin == origin and isinstance(i, kind))


def _where(inst: ir.Inst, v: ir.Operand | None = None
           ) -> tuple[ir.Operand, int, ir.Value | None, ValueSets]:
    """The address `v` (by default the access's own, with its offset) as (root, constant,
    index), and the value sets of the function."""
    assert inst.block is not None
    sets = ValueSets(inst.block.function)
    root, off, index = address(inst.operands[0] if v is None else v, sets, inst.block)
    return root, off + (inst.off if v is None else 0), index, sets  # type: ignore[attr-defined]


def _fold(inst: ir.Inst) -> None:
    root, off, index, _ = _where(inst)
    if index is None and root is not inst.operands[0] and off in S16:
        rebase(inst, root, off)


def _split(target: ir.Inst) -> Candidate | None:
    """One copy of the access `target` per value of the variable part of its address."""
    root, off, index, sets = _where(target)
    found = sets.values(index, target.block) if index is not None else None  # type: ignore
    values = [v - (1 << 64) if v >> 63 else v for v in found or []]
    if not values or any(v not in S32 or off + v not in S16 for v in values):
        return None
    origin, kind = target.origin, type(target)

    def apply(s: Site) -> None:
        inst = _find(s, origin, kind)
        root, off, index, _ = _where(inst)
        old = inst.operands[0]
        split_by_value(inst, index, values,  # type: ignore[arg-type]
                       lambda b, v: copy_access(inst, root, off + v, b))
        prune(old)

    return Candidate(f"split the access at insn {origin} per value of its offset "
                     f"({', '.join(map(str, values))})", apply)


def _pointer_access(site: Site) -> list[Candidate]:
    inst, origin = site.inst, site.inst.origin
    if not isinstance(inst, ACCESSES) or not isinstance(inst.operands[0], ir.Value):
        return []
    kind = type(inst)
    root, off, index, _ = _where(inst)
    out = []
    if site.error.error_class == ErrorClass.MODIFIED_CTX:
        if index is None and root is not inst.operands[0] and off in S16:
            out.append(Candidate(f"fold the constant offset into the access at insn {origin}",
                                 lambda s: _fold(_find(s, origin, kind))))
        out.append(_split(inst))
    if index is None and isinstance(root, ir.Value) and root.definition is inst.block:

        def duplicate(s: Site) -> None:
            access = _find(s, origin, kind)
            for copy in duplicate_per_edge(access.block, access):  # type: ignore[arg-type]
                _fold(next(i for i in copy.insts if i.origin == origin and isinstance(i, kind)))

        out.append(Candidate(f"copy the block of insn {origin} per incoming edge", duplicate))
    return [c for c in out if c is not None]


def _scalar_base(site: Site) -> list[Candidate]:
    """The pointer was loaded as a scalar: split a variable-offset stack load, or load a
    packet pointer from the context again."""
    inst = site.inst
    if not isinstance(inst, ACCESSES) or not isinstance(inst.operands[0], ir.Value):
        return []
    root, _, index, sets = _where(inst)
    load = root.definition if isinstance(root, ir.Value) and index is None else None
    if not isinstance(load, ir.Load):
        return []
    if (split := _split(load)) is not None:
        return [split]
    func, kind = inst.block.function, site.module.kind  # type: ignore[union-attr]
    field = layout_for(kind.prog_type if kind else None).pointer_at(load.off, load.size)
    ctx = next((i.result for i in func.entry.insts if isinstance(i, ir.Arg) and i.index == 1),
               None)
    if field is None or field.what == "data_end" or not func.is_main or ctx is None or \
            address(load.base, sets, load.block)[:2] != (ctx, 0):  # type: ignore[arg-type]
        return []
    origin, stale, access_kind = inst.origin, load.origin, type(inst)

    def reload(s: Site) -> None:
        access, old = _find(s, origin, access_kind), _find(s, stale, ir.Load)
        here = access.block
        assert here is not None and old.result is not None
        arg = next(i.result for i in here.function.entry.insts
                   if isinstance(i, ir.Arg) and i.index == 1)
        b = Builder.before(access)
        fresh = b.load(old.size, arg, old.off)  # type: ignore[attr-defined]
        dom = Dominators(here.function)
        for user in list(dict.fromkeys(old.result.uses)):
            at = user.block
            if (at is here and here.insts.index(user) >= b.index) or \
                    (at is not here and dom.dominates(here, at)):  # type: ignore[arg-type]
                user.replace_value(old.result, fresh)

    return [Candidate(f"load {field.what} from the context again before insn {origin}",
                      reload)]


def _pkt_end(site: Site) -> list[Candidate]:
    """`x op end + k` -> `x - k op end` in every comparison that reads the sum."""
    inst, origin = site.inst, site.inst.origin
    if site.error.fields.get("type") != "pkt_end" or inst.result is None:
        return []
    _, k, index, _ = _where(inst, inst.result)
    users = list(dict.fromkeys(inst.result.uses))
    if index is not None or not users or k == 0 or -k not in S32 or any(
            not isinstance(u, ir.Branch) or u.bits != 64 or u.op not in UNSIGNED or
            not all(isinstance(o, ir.Value) for o in u.operands) for u in users):
        return []

    def move(s: Site) -> None:
        sum_ = _find(s, origin)
        total, end = sum_.result, _where(sum_, sum_.result)[0]
        assert total is not None
        for branch in list(dict.fromkeys(total.uses)):
            side = branch.operands.index(total)
            other = branch.operands[1 - side]
            branch.set_operand(1 - side, Builder.before(branch).alu(AluOp.ADD, other, -k))
            branch.set_operand(side, end)
        prune(total)

    return [Candidate(f"compare with data_end itself, adding {-k} to the other side "
                      f"(insn {origin})", move)]


def _undef(site: Site) -> list[Candidate]:
    """Set to 0, where they are read, the unwritten registers reaching the instruction."""
    found: set[int] = set()
    work, seen = site.inst.used_values(), set()
    while work:
        v = work.pop()
        if v.id in seen:
            continue
        seen.add(v.id)
        if isinstance(v.definition, ir.Undef):
            found.add(v.id)
        elif isinstance(block := v.definition, ir.Block):
            i = block.params.index(v)
            work += [e.args[i] for p in block.function.predecessors()[block]
                     for e in p.terminator.edges if e.target is block]  # type: ignore[union-attr]
    origin = site.inst.origin

    def init(s: Site) -> None:
        entry = _find(s, origin).block.function.entry  # type: ignore[union-attr]
        for undef in [i for i in entry.insts if isinstance(i, ir.Undef)]:
            v = undef.result
            if v is not None and v.id in found:
                for user in list(dict.fromkeys(v.uses)):
                    zero = Builder.before(user).mov(0)
                    zero.reg = v.reg  # the register the program meant to read
                    user.replace_value(v, zero)
                undef.erase()

    return [Candidate("set the unwritten register to 0 where it is read", init)] if found else []


def propose(site: Site) -> list[Candidate]:
    match site.error.error_class:
        case ErrorClass.MODIFIED_CTX | ErrorClass.SAME_INSN_DIFFERENT_POINTERS:
            return _pointer_access(site)
        case ErrorClass.INVALID_MEM_ACCESS if "'scalar'" in site.error.message:
            return _scalar_base(site)
        case ErrorClass.POINTER_ARITHMETIC:
            return _pkt_end(site)
        case ErrorClass.READ_NOT_OK:
            return _undef(site)
    return []


register(Strategy(
    name="provenance",
    classes=frozenset({ErrorClass.MODIFIED_CTX, ErrorClass.SAME_INSN_DIFFERENT_POINTERS,
                       ErrorClass.INVALID_MEM_ACCESS, ErrorClass.POINTER_ARITHMETIC,
                       ErrorClass.READ_NOT_OK}),
    description="re-derive a pointer the verifier lost track of, per path or per value",
    propose=propose,
))
