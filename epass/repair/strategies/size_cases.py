"""Part of lost_bounds: a relation between a helper's buffer offset and its size.

`bpf_skb_load_bytes(skb, off, buf + pos, n)` with `pos + n <= room` checked by the
program: the verifier keeps one interval per register, so it sees pos <= room and
n <= max, not their sum, and refuses the call ("R3 max value is outside of the
allowed memory range"; with n possibly 0 for all it knows, "R4 invalid zero-sized
read"). No bound on pos or n alone is true on every input; for each value of n, one
on pos is.

The rewrite, right before `ptr = base + pos` (the add the buffer pointer comes
from): `if n == K goto case_K` for every value K the verifier thinks n may have
(from its bounds and known bits, on every visit of the call, at most MAX_CASES);
`case_K: if pos > room - K goto abort; goto add` (K = 0: abort, as the helper takes
no empty buffer); no case: abort. On each path to the call the verifier then knows n
exactly and pos small enough. Nothing is computed differently: Z3 must show that no
abort fires (n is always one of the values, and pos + n <= room wherever the add
runs).
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.cfg import Dominators
from epass.isa.opcodes import AluOp, JmpOp
from epass.kernel.vimap import RegState
from epass.repair.site import Site
from epass.repair.strategies import Candidate
from epass.repair.strategies.bounds import pointer_add, room

MAX_CASES = 128
MAX_SPAN = 1 << 16  # value ranges wider than this are not enumerated


def values(states: list[RegState]) -> list[int] | None:
    """Every value the verifier allows a scalar on any of its visits, or None (too many)."""
    out: set[int] = set()
    for r in states:
        if not r.is_scalar or r.umax - r.umin > MAX_SPAN:
            return None
        out |= {v for v in range(r.umin, r.umax + 1)
                if v & ~r.var_off_mask == r.var_off_value}
        if len(out) > MAX_CASES:
            return None
    return sorted(out)


def _switched(size: ir.Value) -> tuple[ir.Value, int]:
    """The value to compare for the size, and the comparison's width: copies are looked
    through (a 32-bit copy keeps only the low half, so it is compared on 32 bits)."""
    bits = 64
    while isinstance(d := size.definition, ir.Alu) and d.op == AluOp.MOV and \
            isinstance(d.operands[0], ir.Value):
        bits = min(bits, d.bits)
        size = d.operands[0]
    return size, bits


def available(value: ir.Value, inst: ir.Inst) -> bool:
    """Whether `value` is defined on every path to `inst` (it may be read there)."""
    where = value.definition
    block = where if isinstance(where, ir.Block) else where.block if where else None
    if block is None or inst.block is None:
        return False
    if block is inst.block:
        return where is block or block.insts.index(where) < block.insts.index(inst)
    return Dominators(block.function).dominates(block, inst.block)


def propose(site: Site, reg: int) -> list[Candidate]:
    call = site.inst
    named = site.reg(reg)
    if not isinstance(call, ir.Call) or named is None:
        return []
    preg = reg if not named.is_scalar else reg - 1  # the buffer, then its size
    if not 1 <= preg < len(call.operands):
        return []
    ptr, size = call.operands[preg - 1], call.operands[preg]
    if not isinstance(ptr, ir.Value) or not isinstance(size, ir.Value):
        return []
    found = pointer_add(site, ptr)
    at_call = site.reg(preg)
    sizes = values([s.regs[preg + 1] for s in site.vimap.states(call.origin or 0)
                    if preg + 1 in s.regs])
    if found is None or at_call is None or not sizes:
        return []
    add, which, base_reg = found
    if not available(_switched(size)[0], add):
        return []
    base = site.reg_at(add, base_reg)
    space = room(base) if base is not None else None
    if space is None or base is None:
        return []
    own = base.umax if not base.is_const else 0
    space -= (at_call.off - base.off) + own  # the constant steps from the add to the call
    limits = {k: space - k if 0 < k <= space else None for k in sizes}
    origins = (call.origin, add.origin)

    def apply(s: Site) -> None:
        split(s, origins, preg, which, limits)

    return [Candidate(f"split the call at insn {call.origin} by its size ({len(sizes)} "
                      f"cases), bounding the offset added at insn {add.origin} in each",
                      apply)]


def split(s: Site, origins: tuple[int | None, int | None], preg: int, which: int,
          limits: dict[int, int | None]) -> None:
    found = {i.origin: i for f in s.module.functions for i in f.instructions()
             if i.origin in origins and isinstance(i, ir.Call | ir.Alu)}
    call, add = found[origins[0]], found[origins[1]]
    size = call.operands[preg]
    offset = add.operands[which]
    assert isinstance(size, ir.Value) and isinstance(offset, ir.Value)
    size, bits = _switched(size)
    b = Builder.before(add)
    abort = b.abort_block(0)
    join = b.split()
    func = join.function
    current = func.blocks[func.blocks.index(join) - 1]
    jump = current.terminator
    assert jump is not None
    jump.drop_uses()
    current.insts.remove(jump)
    for k, limit in limits.items():
        case = func.new_block(after=current)
        following = func.new_block(after=case)
        Builder.at_end(current).branch(JmpOp.EQ, size, k, case, following, bits=bits)
        if limit is None:
            Builder.at_end(case).jump(abort)
        else:
            Builder.at_end(case).branch(JmpOp.GT, offset, limit, abort, join)
        current = following
    Builder.at_end(current).jump(abort)

