"""lost_bounds: give back bounds the verifier lost on the way, by re-deriving the value.

Answers the bounds messages ("R? min value is negative", "R? unbounded memory access",
"value .. makes pkt pointer be out of bounds", "R? max value is outside of the allowed
memory range", "math between .. pointer and register with unbounded min value", and
"R? invalid zero-sized read", which has no class of its own) when the scalar at fault
(the one added to the pointer, or the helper argument the message names) was bounded
once, and the verifier lost it:

- through a 32-bit subregister: the value is the result of 32-bit operations (so its
  upper half is zero) but the verifier's 64-bit bounds are wider than its 32-bit ones
  (32-bit arithmetic on pointers, `w4 = w7; w4 -= w8`, leaves an unknown 64-bit value;
  a join of such values). Rewrite: `v' = mov.32 v` right before the use, which reads
  v'. Z3 must show v's upper half is zero wherever the use runs: then v' == v.
- through a stack spill/fill: the value (or one it is computed from, a few steps up)
  was reloaded from a stack slot the verifier does not track (a 4-byte slot not 8-byte
  aligned, a `volatile` re-read). Rewrite: use the value the nearest dominating store
  to that slot wrote (truncated to the load's size) instead of the reload. Z3 must show
  the reload reads what the store wrote (nothing in between writes the slot).
- through the verifier's one interval per register: a helper's buffer offset and its
  size are bounded together by the program (pos + n <= room), not each alone. Rewrite:
  one path per possible size (size_cases.py). Z3 must show its checks never fire.

The rewrites compute the same numbers as the original on every input; the proof is
the guarantee that the assumption (upper half zero, slot unchanged, relation) holds.
"""

from __future__ import annotations

import re

from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.cfg import Dominators
from epass.isa import insn as bc
from epass.isa.opcodes import AluOp
from epass.kernel.verifier_log import ErrorClass
from epass.kernel.vimap import U32_MAX, RegState
from epass.repair.site import Site
from epass.repair.strategies import Candidate, Strategy, register, size_cases
from epass.repair.strategies.bounds import pointer_add

DEPTH = 6  # how far up the computation of the faulty operand a reload is looked for
ZERO_SIZE = re.compile(r"R(?P<reg>\d+) invalid zero-sized read")


def faulty_operand(site: Site) -> tuple[ir.Inst, int, RegState | None] | None:
    """(instruction, operand index, the verifier's state of that operand there)."""
    found = pointer_add(site)
    if found is not None:
        add, which, _ = found
        code = site.bytecode(add)
        assert isinstance(code, bc.Alu) and code.src is not None
        return add, which, site.reg_at(add, code.src if which == 1 else code.dst)
    reg = _named_reg(site)
    if isinstance(site.inst, ir.Call) and reg is not None and \
            1 <= int(reg) <= len(site.inst.operands):
        return site.inst, int(reg) - 1, site.reg(int(reg))
    return None


def _named_reg(site: Site) -> str | None:
    found = ZERO_SIZE.search(site.error.message)
    return found["reg"] if found else site.error.fields.get("reg")


def _locate(s: Site, origin: int | None, which: int) -> tuple[ir.Inst, ir.Value]:
    """The same operand in a fresh lift."""
    inst = next(i for f in s.module.functions for i in f.instructions()
                if i.origin == origin and not isinstance(i, ir.Arg | ir.Undef))
    value = inst.operands[which]
    assert isinstance(value, ir.Value)
    return inst, value


def zero_extend(origin: int | None, which: int) -> Candidate:
    def apply(s: Site) -> None:
        inst, value = _locate(s, origin, which)
        inst.set_operand(which, Builder.before(inst).mov(value, bits=32))
    return Candidate(f"zero-extend operand {which + 1} of insn {origin} (its upper half is "
                     "zero)", apply)


def reloads(value: ir.Value) -> list[ir.Load]:
    """Stack reloads among the values `value` is computed from (breadth first)."""
    out, todo, seen = [], [(value, 0)], {value}
    while todo:
        v, depth = todo.pop(0)
        inst = v.definition
        if isinstance(inst, ir.Load) and inst.is_stack and not inst.signed:
            out.append(inst)
        elif isinstance(inst, ir.Alu | ir.Endian) and depth < DEPTH:
            for op in inst.operands:
                if isinstance(op, ir.Value) and op not in seen:
                    seen.add(op)
                    todo.append((op, depth + 1))
    return out


def stored_by(load: ir.Load) -> ir.Store | None:
    """The nearest store before `load` (in its block, then up the dominator tree) that
    writes any of its bytes, when it writes all of them from the same slot offset."""
    assert load.block is not None
    doms = Dominators(load.block.function)
    block, end = load.block, load.block.insts.index(load)
    while True:
        for inst in reversed(block.insts[:end]):
            if isinstance(inst, ir.Store | ir.Atomic) and inst.base is ir.FP and \
                    inst.off < load.off + load.size and load.off < inst.off + inst.size:
                ok = isinstance(inst, ir.Store) and inst.off == load.off and \
                    inst.size >= load.size
                return inst if ok else None
        parent = doms.idom.get(block)
        if parent is None or parent is block:
            return None
        block, end = parent, len(parent.insts)


def reuse_store(origin: int | None) -> Candidate:
    def apply(s: Site) -> None:
        load = next(i for f in s.module.functions for i in f.instructions()
                    if i.origin == origin and isinstance(i, ir.Load))
        store = stored_by(load)
        assert store is not None and load.result is not None
        b = Builder.before(load)
        value = b.mov(store.value)
        if load.size == 4:
            value = b.mov(value, bits=32)
        elif load.size < 8:
            value = b.alu(AluOp.AND, value, (1 << (8 * load.size)) - 1)
        load.result.replace_all_uses(value)
        load.erase()
    return Candidate(f"use the value stored to the slot instead of the reload at insn {origin}",
                     apply)


def propose(site: Site) -> list[Candidate]:
    if site.error.error_class == ErrorClass.UNKNOWN and not ZERO_SIZE.search(site.error.message):
        return []
    found = faulty_operand(site)
    if found is None:
        return []
    inst, which, state = found
    value = inst.operands[which]
    if not isinstance(value, ir.Value):
        return []
    out = []
    if state is not None and state.is_scalar and state.umax > U32_MAX and \
            state.u32_max < state.umax:
        out.append(zero_extend(inst.origin, which))
    out += [reuse_store(load.origin) for load in reloads(value)
            if load.origin is not None and stored_by(load) is not None]
    reg = _named_reg(site)
    if isinstance(inst, ir.Call) and reg is not None:
        out += size_cases.propose(site, int(reg))
    return out


register(Strategy(
    name="lost_bounds",
    classes=frozenset({ErrorClass.UNBOUNDED_MIN_VALUE, ErrorClass.OUT_OF_RANGE,
                       ErrorClass.UNBOUNDED_ACCESS, ErrorClass.INVALID_MAP_VALUE_ACCESS,
                       ErrorClass.UNKNOWN}),  # "R4 invalid zero-sized read" has no class
    description="re-derive a value whose bounds the verifier lost (32-bit subregister, "
                "stack spill, a buffer offset's relation to the size)",
    propose=propose,
))
