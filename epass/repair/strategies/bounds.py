"""bounds: give the verifier an upper bound on the variable part of a pointer.

Answers "math between map_value pointer and register with unbounded min value", "R?
min value is negative", "value .. makes pkt pointer be out of bounds", "R? max value is
outside of the allowed memory range", "R? unbounded memory access" and "invalid access
to map value": the scalar added to the pointer is not known to keep the access inside
its region, often because the verifier cannot follow how it was computed (a MOD, a
DIV, a shift, a 32-bit operation, a spill), although it always does.

The rewrite is `if s > limit goto abort` right before `ptr += s`, where `limit` keeps
the furthest access through the result inside the region the verifier knows for the
pointer (a map value's size, the frame, a `mem` buffer's size; for the packet the
verifier's own cap on offsets, 0xffff, after which a data_end check may still be
needed: the next round's). Z3 must show the check never fires.
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.builder import Builder, replace_all_uses
from epass.isa import insn as bc
from epass.isa.opcodes import AluOp, JmpOp
from epass.kernel.verifier_log import ErrorClass
from epass.kernel.vimap import RegState
from epass.repair.site import Site
from epass.repair.strategies import Candidate, Strategy, register

MAX_PACKET_OFF = 0xFFFF  # the verifier's limit on a packet pointer's offset
ACCESSES = (ir.Load, ir.Store, ir.Atomic)


def _const_step(inst: ir.Inst | ir.Block | None) -> tuple[ir.Value, int] | None:
    """(base, c) when `inst` is `base + c` (64-bit, constant c)."""
    if isinstance(inst, ir.Alu) and inst.bits == 64 and inst.op == AluOp.ADD and \
            isinstance(inst.operands[0], ir.Value) and isinstance(inst.operands[1], int):
        return inst.operands[0], inst.operands[1]
    return None


def pointer_add(site: Site, start: ir.Value | None = None) -> tuple[ir.Alu, int, int] | None:
    """The `ptr += scalar` the rejected instruction (or the pointer `start`) depends on:
    (the add, the index of the scalar operand, the pointer's register there)."""
    inst: ir.Inst | ir.Block | None = site.inst if start is None else start.definition
    if isinstance(inst, ACCESSES):
        inst = inst.base.definition if isinstance(inst.base, ir.Value) else None
    if inst is not site.inst:
        while (step := _const_step(inst)) is not None:
            inst = step[0].definition
    if not (isinstance(inst, ir.Alu) and inst.bits == 64 and inst.op == AluOp.ADD and
            all(isinstance(o, ir.Value) for o in inst.operands)):
        return None
    code = site.bytecode(inst)
    if not isinstance(code, bc.Alu) or code.src is None:
        return None
    dst, src = site.reg_at(inst, code.dst), site.reg_at(inst, code.src)
    if dst is None or src is None:
        return None
    if src.is_scalar and not dst.is_scalar:
        return inst, 1, code.dst
    if dst.is_scalar and not src.is_scalar:
        return inst, 0, code.src
    return None


def reach(value: ir.Value, extra: int = 0, depth: int = 0) -> int:
    """How far past `value` the accesses through it (and constant steps from it) go."""
    far = 0
    for use in value.uses:
        if isinstance(use, ACCESSES) and use.base is value:
            far = max(far, extra + use.off + use.size)
        elif (step := _const_step(use)) is not None and step[0] is value and depth < 4 and \
                use.result is not None:
            far = max(far, reach(use.result, extra + step[1], depth + 1))
    return far


def room(ptr: RegState) -> int | None:
    """Bytes from the pointer's fixed offset to the end of its region, as the verifier
    sees it; None for regions without one."""
    if ptr.type.startswith("map_value") and ptr.value_size is not None:
        return ptr.value_size - ptr.off
    if ptr.type == "fp":
        return -ptr.off
    if ptr.type.startswith("mem") and ptr.mem_size is not None:
        return ptr.mem_size - ptr.off
    return None


def propose(site: Site) -> list[Candidate]:
    found = pointer_add(site)
    if found is None:
        return []
    add, which, preg = found
    ptr = site.reg_at(add, preg)
    assert ptr is not None
    if ptr.type == "pkt":
        limit = MAX_PACKET_OFF
    else:
        space = room(ptr)
        if space is None or add.result is None:
            return []
        own = ptr.umax if not ptr.is_const else 0  # the pointer's own variable part
        limit = space - max(reach(add.result), 1) - own
        if limit < 0:
            return []
    origin = add.origin

    def bound(s: Site) -> None:
        target = _alu_at(s, origin)
        Builder.before(target).guard(JmpOp.GT, target.operands[which], limit, code=0)

    out = [Candidate(f"check the offset added at insn {origin} is at most {limit}", bound)]
    return out + _rebase(site, add, which)


def _alu_at(site: Site, origin: int | None) -> ir.Alu:
    return next(i for f in site.module.functions for i in f.instructions()
                if i.origin == origin and isinstance(i, ir.Alu))


def _rebase(site: Site, add: ir.Alu, which: int) -> list[Candidate]:
    """When the pointer is itself `base + s1` (and the verifier bounded s1 and s2 each but
    lost how they relate, "offset + size <= 1024"): add the two offsets first, check the
    sum, and point from the base: `base + (s1 + s2)`."""
    pointer = add.operands[1 - which]
    while isinstance(pointer, ir.Value) and isinstance(pointer.definition, ir.Alu) and \
            pointer.definition.is_copy:
        pointer = pointer.definition.operands[0]
    if not isinstance(pointer, ir.Value):
        return []
    found = pointer_add(site, pointer)
    if found is None or add.result is None:
        return []
    inner, inner_which, preg = found
    base = site.reg_at(inner, preg)
    assert base is not None
    space = room(base)
    if space is None or base.type == "pkt":
        return []
    limit = space - max(reach(add.result), 1) - (base.umax if not base.is_const else 0)
    if limit < 0:
        return []
    outer_at, inner_at = add.origin, inner.origin

    def rebase(s: Site) -> None:
        outer, first = _alu_at(s, outer_at), _alu_at(s, inner_at)
        assert outer.result is not None
        b = Builder.before(outer)
        total = b.alu(AluOp.ADD, first.operands[inner_which], outer.operands[which])
        b.guard(JmpOp.GT, total, limit, code=0)
        moved = b.alu(AluOp.ADD, first.operands[1 - inner_which], total)
        replace_all_uses(outer.result, moved)

    return [Candidate(f"add the offsets of insns {inner_at} and {outer_at} first, check the "
                      f"sum is at most {limit}, and add it to the pointer", rebase)]


register(Strategy(
    name="bounds",
    classes=frozenset({ErrorClass.UNBOUNDED_MIN_VALUE, ErrorClass.OUT_OF_RANGE,
                       ErrorClass.UNBOUNDED_ACCESS, ErrorClass.INVALID_MAP_VALUE_ACCESS}),
    description="bound the scalar added to a pointer so the access stays in its region",
    propose=propose,
))
