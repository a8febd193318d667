"""asan: abort instead of a variable-offset access outside the object it is based on.

The verifier keeps an accepted program inside whole regions (a map value, the frame, the
packet), so an index running from one variable into the next passes. This pass follows
pointers from where they are made (`map_value @m + off`, a map lookup, fp, the packet's
data) through copies and additions, and checks each load, store or atomic whose address
has a variable part against the object the pointer pointed into when that part was
added. See docs/passes/asan.md for how objects are found and the limits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from epass.errors import EpassError
from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.cfg import Dominators
from epass.ir.model import FP, Function, Module, Value
from epass.isa.helpers import HELPER_IDS
from epass.isa.opcodes import AluOp, CallKind, JmpOp
from epass.obj.model import MapOrigin
from epass.passes.registry import Option, Pass, register
from epass.uapi import MapType, ProgType

LOOKUPS = {HELPER_IDS["bpf_map_lookup_elem"], HELPER_IDS["bpf_map_lookup_percpu_elem"]}
# context offsets of the packet pointers (data, data_meta) and of data_end, by program type
PACKET_CTX = {ProgType.XDP: ((0, 8), 4)} | {t: ((76, 140), 80) for t in (
    ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB, ProgType.LWT_IN,
    ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.SK_SKB)}
Access = ir.Load | ir.Store | ir.Atomic


@dataclass(frozen=True)
class Ptr:
    """A pointer's origin: a region, the constant offset in it (from fp for the stack), at
    most one variable part and the constant offset it was added at (`anchor`)."""

    region: str  # "stack", "global" (a map_value lddw), "map" (a lookup's result), "packet"
    map: str
    off: int
    var: Value | None = None
    anchor: int = 0


@dataclass(frozen=True)
class Check:
    """Abort before `access` when `var + add` > `limit` (unsigned); for the packet (`limit`
    None) when `var + add` (base plus the access's end) > data_end: `end`, or an int: load
    it from the context at that offset."""

    access: Access
    var: Value
    add: int
    limit: int | None
    end: Value | int = 0


def _const(op: object) -> int | None:
    """An immediate, or a value `mov`ed or `lddw`ed from one, as a signed 64-bit number."""
    d = op.definition if isinstance(op, Value) else None
    if isinstance(d, ir.LoadImm):
        return d.value - (d.value >> 63 << 64)
    if isinstance(d, ir.Alu) and d.op == AluOp.MOV and isinstance(d.operands[0], int):
        return d.operands[0] & 0xFFFF_FFFF if d.bits == 32 else d.operands[0]
    return op if isinstance(op, int) else None


def _ctx(func: Function) -> Value | None:
    """The context: the entry function's first argument (a subprogram's is not known)."""
    return next((i.result for i in func.entry.insts if isinstance(i, ir.Arg) and i.index == 1
                 and func.is_main), None)


def provenance(module: Module, func: Function, order: list[ir.Block]) -> dict[Value, Ptr]:
    """The pointers of `func` whose origin is known; block parameters never are."""
    ctx, arg = PACKET_CTX.get(module.kind.prog_type) if module.kind else None, _ctx(func)
    out: dict[Value, Ptr] = {}
    for inst in (i for block in order for i in block.insts):  # definitions before uses
        ops, p, d = inst.operands, None, None
        if isinstance(inst, ir.Call) and inst.kind == CallKind.HELPER and \
                inst.target in LOOKUPS and isinstance(ops[0], Value):
            d = ops[0].definition
        if isinstance(inst, ir.LoadMap) and inst.value:
            p = Ptr("global", inst.map, inst.offset)
        elif isinstance(d, ir.LoadMap) and not d.value and (m := module.map_def(d.map)) and \
                m.type not in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
            p = Ptr("map", d.map, 0)
        elif isinstance(inst, ir.Load) and ctx and arg and inst.base is arg and \
                inst.size == 4 and inst.off in ctx[0]:
            p = Ptr("packet", "", 0)
        elif isinstance(inst, ir.Alu) and inst.bits == 64 and inst.op == AluOp.MOV:
            p = Ptr("stack", "", 0) if ops[0] is FP else out.get(ops[0])
        elif isinstance(inst, ir.Alu) and inst.bits == 64 and inst.op in (AluOp.ADD, AluOp.SUB):
            base, other = ops if ops[0] in out or inst.op == AluOp.SUB else ops[::-1]
            q, c = out.get(base), _const(other)
            if q is None or other in out:
                pass  # not a pointer, or two pointers
            elif c is not None:
                p = replace(q, off=q.off + (-c if inst.op == AluOp.SUB else c))
            elif inst.op == AluOp.ADD and q.var is None:
                p = replace(q, var=other, anchor=q.off)
        if p is not None and inst.result is not None:
            out[inst.result] = p
    return out


def _object(module: Module, p: Ptr, marks: set[int]) -> tuple[int, int] | None:
    """[start, end) of the object `p` is based on, in its region's offsets; None: unknown."""
    if p.region == "stack":  # up to the next frame offset the function uses, or fp
        return p.anchor, min((m for m in marks if m > p.anchor), default=0)
    d = module.map_def(p.map)
    if d is not None and p.region == "global" and d.origin == MapOrigin.DATA:
        return next(((v.offset, v.offset + v.size) for v in d.vars
                     if v.offset <= p.anchor < v.offset + v.size), None)
    return (0, d.value_size) if d is not None else None


def plan(module: Module, func: Function) -> list[Check]:
    """The checks `func` needs, but for those a dominating check already makes."""
    dom, ctx = Dominators(func), _ctx(func)
    ptrs = provenance(module, func, dom.order)

    def dominates(a: ir.Inst, b: ir.Inst) -> bool:
        if a.block is b.block:
            return a.block.insts.index(a) < b.block.insts.index(b)
        return dom.dominates(a.block, b.block)

    marks = {p.off for p in ptrs.values() if p.region == "stack" and p.var is None}
    for inst in func.instructions():  # and the frame offsets accessed at a constant offset
        p = ptrs.get(inst.base) if isinstance(inst, Access) else None
        if isinstance(inst, Access) and (inst.base is FP or p and p.region == "stack"
                                         and p.var is None):
            marks.add(inst.off + (p.off if p else 0))
    kept: list[Check] = []
    for inst in (i for block in dom.order for i in block.insts):
        p = ptrs.get(inst.base) if isinstance(inst, Access) else None
        if p is None or p.var is None:
            continue
        if p.region == "packet":  # data_end as the program loads it, when that dominates
            off = PACKET_CTX[module.kind.prog_type][1]
            end = next((i.result for i in func.instructions() if isinstance(i, ir.Load) and
                        i.base is ctx and (i.off, i.size) == (off, 4) and dominates(i, inst)),
                       off)
            check = Check(inst, inst.base, inst.off + inst.size, None, end)
        elif (obj := _object(module, p, marks)) is None or obj[1] - obj[0] < inst.size:
            continue
        else:  # in bounds: 0 <= k + var <= room; just `var <= room - k` when k is in [0, room]
            k, room = p.off + inst.off - obj[0], obj[1] - obj[0] - inst.size
            check = Check(inst, p.var, 0, room - k) if 0 <= k <= room else \
                Check(inst, p.var, k, room)
        if not any(dominates(c.access, inst) and c.var is check.var and (
                c.add >= check.add if c.limit is None and check.limit is None else
                c.add == check.add and c.limit is not None and check.limit is not None and
                c.limit <= check.limit) for c in kept):
            kept.append(check)  # unless a check that dominates it passes only if it does
    return kept


def run(module: Module, options: dict[str, int]) -> None:
    code = options["code"]
    if not -2**31 <= code < 2**31:
        raise EpassError(f"asan: code must fit in 32 signed bits, got {code}")
    for func, checks in [(f, plan(module, f)) for f in module.functions]:
        for c in checks:
            b = Builder.before(c.access)
            value = b.alu(AluOp.ADD, c.var, c.add) if c.add else c.var
            if c.limit is not None:
                b.guard(JmpOp.GT, value, c.limit, code)
            else:  # data_end loaded from the context as the program does
                end = b.load(4, _ctx(func), c.end) if isinstance(c.end, int) else c.end
                b.guard(JmpOp.GT, value, end, code)


register(Pass(name="asan", kind="safety", round="final",
              description="abort when a variable-offset access leaves the object it is based on",
              run=run, options=(Option("code", 0, "the return value when the check fires"),)))
