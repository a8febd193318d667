"""runtime_validation: check at run time the facts the verifier's safety argument rests on.

A bug in the verifier's inference (CVE-2022-23222: a maybe-NULL ringbuf pointer copied
before its NULL check, the copy then taken as non-NULL) lets an unsafe program through.
From the VI map of the original program this pass checks, where the program relies on
them, that a pointer derived from a maybe-NULL value is non-NULL and that a variable
pointer offset or helper size lies in the verifier's bounds; it aborts with `code` when
one is false. A fact must hold on every visit. See docs/passes/runtime_validation.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.errors import EpassError
from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.cfg import Dominators, reverse_postorder
from epass.ir.model import Block, Module, Value
from epass.isa.helpers import HELPER_IDS
from epass.isa.opcodes import AluOp, CallKind, JmpOp
from epass.passes.registry import Option, Pass, register

U64_MAX, S64_MIN, S64_MAX = (1 << 64) - 1, -(1 << 63), (1 << 63) - 1
IMM_MIN, IMM_MAX = -(1 << 31), (1 << 31) - 1
LOOKUP = HELPER_IDS["bpf_map_lookup_elem"]
# helper arguments (0-based) the verifier takes as the size of a memory argument
# (ARG_CONST_SIZE[_OR_ZERO], ARG_CONST_ALLOC_SIZE_OR_ZERO): their bounds are what it relies on
SIZES: dict[int, tuple[int, ...]] = {HELPER_IDS["bpf_" + name]: args for args, names in (
    ((1,), "probe_read probe_read_str probe_read_kernel probe_read_user probe_read_kernel_str "
           "probe_read_user_str get_current_comm trace_printk ringbuf_reserve"),
    ((2,), "get_stack get_task_stack ringbuf_output probe_write_user d_path"),
    ((3,), "skb_load_bytes skb_load_bytes_relative skb_store_bytes xdp_load_bytes "
           "xdp_store_bytes"),
    ((4,), "perf_event_output"), ((1, 3), "csum_diff"), ((1, 4), "snprintf"),
) for name in names.split()}


@dataclass(frozen=True)
class Check:
    """Abort before `inst` when `value op bound` holds for any (op, bound) of `fails`."""

    inst: ir.Inst
    value: Value
    fails: tuple[tuple[JmpOp, int], ...]


def _regs(module: Module, inst: ir.Inst, v: object) -> list:
    """The register holding `v` before `inst` on every visit; [] if a visit lacks it."""
    if not isinstance(v, Value) or v.reg is None:
        return []
    regs = [s.regs.get(v.reg) for s in module.verifier_states(inst)]
    return [] if None in regs else regs


def _pointer(module: Module, inst: ir.Inst, v: object) -> bool:
    """Every visit of `inst` has `v` as one non-NULL pointer type."""
    types = {r.type for r in _regs(module, inst, v)}
    return len(types) == 1 and (t := types.pop()) != "scalar" and "or_null" not in t


def _maybe_null(module: Module, v: Value) -> bool:
    """A map lookup's result (NULL by contract, whatever the verifier inferred: it takes an
    array lookup with a constant key in range as non-NULL), or a call's result or a join
    that the verifier had as `*_or_null` at some instruction reading it."""
    d = v.definition
    if isinstance(d, ir.Call) and d.kind == CallKind.HELPER and d.target == LOOKUP:
        return True
    return isinstance(d, ir.Call | Block) and any(
        "or_null" in s.regs[v.reg].type for use in v.uses if use.origin is not None
        for s in module.verifier_states(use) if v.reg in s.regs)


def _root(module: Module, v: Value, path: frozenset[Value]) -> tuple[Value, bool] | None:
    """The maybe-NULL value `v` derives from by 64-bit copies and pointer arithmetic, and
    whether v is it (copies only). `path`: the values being traced; meeting one again
    closes a loop through its join, which then ignores that contribution."""
    d = v.definition
    if v in path or _maybe_null(module, v):
        return v, True
    path |= {v}
    if isinstance(d, Block):  # a join: of values with one root, or of maybe-NULL values
        i = d.params.index(v)
        found = {_root(module, e.args[i], path) for b in d.function.blocks
                 if b.terminator is not None for e in b.terminator.edges if e.target is d}
        if None in found:
            return None
        exact = all(e for _, e in found)  # type: ignore[misc]
        roots = {r for r, _ in found} - {v}  # type: ignore[misc]
        return (roots.pop(), exact) if len(roots) == 1 else (v, True) if exact else None
    if isinstance(d, ir.Alu) and d.bits == 64 and d.op in (AluOp.MOV, AluOp.ADD, AluOp.SUB):
        for op in d.operands[:2 if d.op == AluOp.ADD else 1]:  # scalar + ptr: either side
            if isinstance(op, Value) and (root := _root(module, op, path)) is not None:
                return root[0], root[1] and d.op == AluOp.MOV
    return None


def _range(module: Module, inst: ir.Inst, v: object) -> list[Check]:
    """Abort when `v` leaves the bounds the visits of `inst` gave it (the weakest: joined)."""
    regs, d = _regs(module, inst, v), getattr(v, "definition", None)
    if not regs or any(r.type != "scalar" for r in regs) or \
            isinstance(d, ir.Alu) and d.op == AluOp.MOV and isinstance(d.operands[0], int):
        return []  # no fact, or a constant the program wrote itself
    umin, umax = min(r.umin for r in regs), max(r.umax for r in regs)
    smin, smax = min(r.smin for r in regs), max(r.smax for r in regs)
    fails = [(JmpOp.GT, umax)] if umax < U64_MAX else []
    fails += [(JmpOp.LT, umin)] if umin > 0 else []
    # an unsigned range that does not cross 2^63 is a signed one too: add only what is more
    implied = (umin - (1 << 64), umax - (1 << 64)) if umin > S64_MAX else \
        (umin, umax) if umax <= S64_MAX else (S64_MIN, S64_MAX)
    fails += [(JmpOp.SGT, smax)] if smax < implied[1] else []
    fails += [(JmpOp.SLT, smin)] if smin > implied[0] else []
    return [Check(inst, v, tuple(fails))] if fails else []  # type: ignore[arg-type]


def _facts(module: Module, inst: ir.Inst) -> list[Check]:
    """What `inst` relies on: non-NULL pointers it goes through, ranges of offsets, sizes."""
    out, ops = [], inst.operands
    calls = isinstance(inst, ir.Call) and inst.kind in (CallKind.HELPER, CallKind.KFUNC)
    through = ops if calls else ops[:1] if isinstance(inst, ir.Load | ir.Store | ir.Atomic) else []
    for p in through:
        root = _root(module, p, frozenset()) if _pointer(module, inst, p) else None
        out += [Check(inst, root[0], ((JmpOp.EQ, 0),))] if root is not None else []
    if calls and inst.kind == CallKind.HELPER:
        out += [c for k in SIZES.get(inst.target, ()) if k < len(ops)  # type: ignore[arg-type]
                for c in _range(module, inst, ops[k])]
    elif isinstance(inst, ir.Alu) and inst.bits == 64 and inst.op in (AluOp.ADD, AluOp.SUB):
        for ptr, off in ((ops[0], ops[1]), (ops[1], ops[0]))[:2 if inst.op == AluOp.ADD else 1]:
            if _pointer(module, inst, ptr):  # ptr += scalar: a variable offset
                out += _range(module, inst, off)
    return out


def checks(module: Module, func: ir.Function) -> list[Check]:
    """The facts to check in `func`, minus those an earlier identical check dominates."""
    dom, kept = Dominators(func), []
    for block in reverse_postorder(func):
        for inst in block.insts:
            if inst.origin is None:
                continue  # inserted by a pass: the verifier never saw it
            for c in _facts(module, inst):
                d = c.value.definition
                if dom.dominates(d if isinstance(d, Block) else d.block, block) and not any(
                        k.value is c.value and k.fails == c.fails and
                        dom.dominates(k.inst.block, block) for k in kept):
                    kept.append(c)
    return kept


def run(module: Module, options: dict[str, int]) -> None:
    code = options["code"]
    if module.vimap is None:
        raise EpassError("runtime_validation needs the verifier's facts: no VI map is "
                         "attached (epass compile and epass load attach one)")
    if not IMM_MIN <= code <= IMM_MAX:
        raise EpassError(f"runtime_validation: code must fit in 32 signed bits, got {code}")
    for func in module.functions:
        for c in checks(module, func):
            for op, bound in c.fails:
                b = Builder.before(c.inst)
                s = bound - (1 << 64) if bound > S64_MAX else bound  # immediates sign-extend
                b.guard(op, c.value, s if IMM_MIN <= s <= IMM_MAX else b.lddw(bound & U64_MAX),
                        code=code)


register(Pass(name="runtime_validation", kind="safety", round="final",
              description="check the verifier's non-NULL and range facts at run time; abort "
              "if false", run=run, needs_verifier=True,
              options=(Option("code", 0, "the return value when a check fires"),)))
