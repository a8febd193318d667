"""helper_validation: abort before a helper call whose arguments break the helper's contract.

The verifier checks pointer types and bounds sizes; what a helper refuses only at run time
(unknown flags, a NULL probe_read source) fails quietly, and programs often ignore the
error. CONTRACTS lists, for the helpers epass's semantics model, the flags argument and its
valid values, the pointers that must not be NULL and the (pointer, size) pairs that must
fit a stack buffer. See docs/passes/helper_validation.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.errors import EpassError
from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.cfg import Dominators, reverse_postorder
from epass.ir.model import FP, Block, Function, Module, Operand, Value
from epass.isa.helpers import helper_name
from epass.isa.opcodes import AluOp, CallKind, JmpOp
from epass.passes.registry import Option, Pass, register

U32, U64 = (1 << 32) - 1, (1 << 64) - 1
BPF_EXIST, BPF_F_LOCK, BPF_RB_FORCE_WAKEUP = 2, 4, 2  # include/uapi/linux/bpf.h


@dataclass(frozen=True)
class Flags:
    arg: int  # r1..r5
    limit: int  # the valid values are 0..limit
    valid: str  # their names, for the error message
    lock: bool = False  # BPF_F_LOCK may be or-ed in (with the `lock` option)


@dataclass(frozen=True)
class Contract:
    flags: Flags | None = None
    nonnull: tuple[int, ...] = ()  # pointer arguments that must not be NULL
    sized: tuple[tuple[int, int], ...] = ()  # (pointer, size): the bytes must fit the buffer


WAKEUP = "0, BPF_RB_NO_WAKEUP or BPF_RB_FORCE_WAKEUP"  # one notification flag at most
PROBE_READ = Contract(nonnull=(3,), sized=((1, 2),))
CONTRACTS: dict[str, Contract] = {
    "bpf_map_update_elem": Contract(Flags(4, BPF_EXIST, "BPF_ANY, BPF_NOEXIST or BPF_EXIST",
                                          lock=True)),
    "bpf_ringbuf_reserve": Contract(Flags(3, 0, "0")),
    "bpf_ringbuf_submit": Contract(Flags(2, BPF_RB_FORCE_WAKEUP, WAKEUP)),
    "bpf_ringbuf_discard": Contract(Flags(2, BPF_RB_FORCE_WAKEUP, WAKEUP)),
    "bpf_ringbuf_output": Contract(Flags(4, BPF_RB_FORCE_WAKEUP, WAKEUP), sized=((2, 3),)),
    "bpf_loop": Contract(Flags(4, 0, "0")),
    "bpf_for_each_map_elem": Contract(Flags(4, 0, "0")),
    "bpf_get_current_comm": Contract(sized=((1, 2),)),
    "bpf_skb_load_bytes": Contract(sized=((3, 4),)),
    "bpf_trace_printk": Contract(sized=((1, 2),)),
    **{f"bpf_probe_read{kind}": PROBE_READ
       for kind in ("", "_str", "_kernel", "_kernel_str", "_user", "_user_str")},
}


@dataclass(frozen=True)
class Check:
    """Abort before `call` when `value` (and-ed with `mask` first) `op` `limit`."""

    call: ir.Call
    op: JmpOp
    value: Value
    limit: int
    mask: int | None = None


def _const(op: Operand | None) -> int | None:
    """The operand's value when it is a constant: an immediate, an lddw, a mov of one."""
    d = op.definition if isinstance(op, Value) else None
    if isinstance(d, ir.LoadImm):
        return d.value
    if isinstance(d, ir.Alu) and d.op == AluOp.MOV and isinstance(d.operands[0], int):
        return d.operands[0] & (U32 if d.bits == 32 else U64)
    return op & U64 if isinstance(op, int) else None


def _bound(op: Operand) -> int:
    """An unsigned upper bound: the constant, a mask, a load's width, 32 bits, or none."""
    c, d = _const(op), op.definition if isinstance(op, Value) else None
    if c is not None:
        return c
    if isinstance(d, ir.Load) and not d.signed:
        return (1 << 8 * d.size) - 1
    if not isinstance(d, ir.Alu):
        return U64
    top = U32 if d.bits == 32 else U64
    if d.op in (AluOp.AND, AluOp.MOV):  # an and is at most either side
        return min(top, *(_bound(o) for o in d.operands))
    return top


def _root(op: Operand | None) -> Operand | None:
    """The value a chain of 64-bit copies started from."""
    while isinstance(op, Value) and isinstance(d := op.definition, ir.Alu) and d.is_copy:
        op = d.operands[0]
    return op


def _frame_offsets(func: Function) -> dict[Operand, int]:
    """Values that point into the frame at a known offset: fp moved by constants."""
    known: dict[Operand, int] = {FP: 0}
    for block in reverse_postorder(func):  # SSA: a definition comes before its uses
        for inst in block.insts:
            a, step = (inst.operands + [0, 0])[:2]
            if isinstance(inst, ir.Alu) and inst.bits == 64 and a in known and \
                    isinstance(step, int) and inst.op in (AluOp.MOV, AluOp.ADD, AluOp.SUB):
                sign = {AluOp.MOV: 0, AluOp.ADD: 1, AluOp.SUB: -1}[inst.op]
                known[inst.result] = known[a] + sign * step
    return known


def _tested_nonzero(func: Function) -> list[tuple[Operand | None, Block]]:
    """(v, block): the block is entered only from a test that found v (64 bits) not 0."""
    preds, out = func.predecessors(), []
    for block in func.blocks:
        t = block.terminator
        if isinstance(t, ir.Branch) and t.bits == 64 and t.op in (JmpOp.EQ, JmpOp.NE) and \
                isinstance(t.operands[1], int) and t.operands[1] == 0:
            target = (t.orelse if t.op == JmpOp.EQ else t.then).target
            if preds[target] == [block]:
                out.append((_root(t.operands[0]), target))
    return out


def plan(func: Function, lock: bool) -> list[Check]:
    """The checks the function's helper calls need; an error for a constant that never fits."""
    frame, tested, dom, checks = _frame_offsets(func), _tested_nonzero(func), Dominators(func), []
    for call in func.instructions():
        name = helper_name(call.target) if isinstance(call, ir.Call) and \
            call.kind == CallKind.HELPER and isinstance(call.target, int) else None
        if not isinstance(call, ir.Call) or (contract := CONTRACTS.get(name or "")) is None:
            continue
        args: dict[int, Operand] = dict(enumerate(call.operands, 1))
        where = f"helper_validation: function {func.name}: {name}"
        if (f := contract.flags) is not None and (flags := args.get(f.arg)) is not None:
            mask, c = U64 & ~BPF_F_LOCK if lock and f.lock else None, _const(flags)
            if c is not None and c & (mask or U64) > f.limit:
                valid = f.valid + (", with or without BPF_F_LOCK" if mask else "")
                raise EpassError(f"{where}: flags {c:#x} are never valid (valid: {valid})",
                                 index=call.origin)
            if isinstance(flags, Value) and c is None and _bound(flags) > f.limit:
                checks.append(Check(call, JmpOp.GT, flags, f.limit, mask))
        for k in contract.nonnull:
            p, root = args.get(k), _root(args.get(k))
            if _const(p) == 0:
                raise EpassError(f"{where}: argument {k} is NULL", index=call.origin)
            known = root in frame or isinstance(getattr(root, "definition", None), ir.LoadMap)
            if isinstance(p, Value) and _const(p) is None and not known and not any(
                    v is root and dom.dominates(b, call.block) for v, b in tested):
                checks.append(Check(call, JmpOp.EQ, p, 0))
        for pk, sk in contract.sized:
            at, size = frame.get(args.get(pk, 0)), args.get(sk)
            if at is None or at >= 0 or size is None or _bound(size) <= -at:
                continue  # a region we do not know, or a size that fits
            if not isinstance(size, Value) or _const(size) is not None:
                raise EpassError(f"{where}: size {_const(size)} does not fit the {-at} bytes "
                                 f"at fp{at}", index=call.origin)
            checks.append(Check(call, JmpOp.GT, size, -at))
    return checks


def run(module: Module, options: dict[str, int]) -> None:
    code, lock = options["code"], options["lock"]
    if not -2**31 <= code < 2**31:
        raise EpassError(f"helper_validation: code must fit in 32 signed bits, got {code}")
    if lock not in (0, 1):
        raise EpassError(f"helper_validation: lock must be 0 or 1, got {lock}")
    plans = [plan(f, bool(lock)) for f in module.functions]  # every error before a change
    for check in (c for checks in plans for c in checks):
        b = Builder.before(check.call)
        value = check.value if check.mask is None else \
            b.alu(AluOp.AND, check.value, check.mask - (1 << 64))  # as a sign-extended imm
        b.guard(check.op, value, check.limit, code=code)


register(Pass(
    name="helper_validation",
    kind="safety",
    round="final",
    description="abort before a helper call whose flags, pointer or size break its contract",
    run=run,
    options=(Option("code", 0, "the return value when a check fires"),
             Option("lock", 0, "1: bpf_map_update_elem flags may include BPF_F_LOCK")),
))
