"""msan: abort instead of loading stack bytes that were never written.

Privileged programs may read uninitialized stack, so the verifier lets such
bugs through. A forward must-be-initialized dataflow first proves most stack
reads safe (their bytes are written on every path there); only the others
get a check against a shadow bitmap (one bit per stack byte) kept below the
frame. A function whose reads are all proven is left untouched.
"""

from __future__ import annotations

from epass.errors import EpassError
from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.cfg import reverse_postorder
from epass.ir.model import FP, STACK_SIZE, Function, Module, Value
from epass.isa.helpers import HELPER_IDS
from epass.isa.opcodes import AluOp, AtomicOp, CallKind, JmpOp
from epass.passes.registry import Option, Pass, register

Access = tuple[int, int]  # (offset from fp, size)
# helpers the verifier treats as writing `size` bytes at a stack pointer (ARG_PTR_TO_UNINIT_MEM,
# constant size): id -> (pointer argument, size argument). Every other call (helper, kfunc,
# subprogram) is assumed to initialize nothing it is handed: unknown contract.
WRITERS = {HELPER_IDS["bpf_" + n]: (k, k + 1) for k, names in enumerate((
    "probe_read probe_read_str probe_read_user probe_read_kernel probe_read_user_str "
    "probe_read_kernel_str copy_from_user get_current_comm", "get_stack get_task_stack",
    "skb_load_bytes skb_load_bytes_relative xdp_load_bytes")) for n in names.split()}


def _fp_offsets(func: Function) -> dict[Value, int]:
    """Values pointing into the frame at a known offset (copies of fp plus constants)."""
    known: dict[Value, int] = {}
    changed = True
    while changed:  # SSA: a few rounds settle even across loops
        changed = False
        for inst in func.instructions():
            a = inst.operands[0] if inst.operands else None
            base = 0 if a is FP else known.get(a) if isinstance(a, Value) else None
            step = inst.operands[1] if len(inst.operands) > 1 else 0
            if base is None or not isinstance(inst, ir.Alu) or inst.bits != 64 or \
                    inst.result in known or not isinstance(step, int) or \
                    inst.op not in (AluOp.MOV, AluOp.ADD, AluOp.SUB):
                continue
            known[inst.result] = base + (-step if inst.op == AluOp.SUB else step)
            changed = True
    return known


def _const(op: object) -> int | None:  # an immediate, or a value `mov`ed from one
    d = op.definition if isinstance(op, Value) else None
    if isinstance(d, ir.Alu) and d.op == AluOp.MOV and isinstance(d.operands[0], int):
        return d.operands[0] & (0xFFFF_FFFF if d.bits == 32 else -1)
    return op if isinstance(op, int) else None


def _effects(inst: ir.Inst, fp: dict[Value, int]) -> tuple[Access | None, Access | None]:
    """(frame bytes the instruction reads, frame bytes it writes), where known."""
    if isinstance(inst, ir.Load | ir.Store | ir.Atomic):
        at = 0 if inst.base is FP else fp.get(inst.base) if isinstance(inst.base, Value) else None
        acc = (at + inst.off, inst.size) if at is not None else (1, 0)
        if not -STACK_SIZE <= acc[0] < acc[0] + acc[1] <= 0:
            return None, None
        if isinstance(inst, ir.Atomic):  # read-modify-write, but for a release store
            return (None if inst.op == AtomicOp.STORE_RELEASE else acc), acc
        return (acc, None) if isinstance(inst, ir.Load) else (None, acc)
    if isinstance(inst, ir.Call) and inst.kind == CallKind.HELPER and inst.target in WRITERS:
        (p, n), args = WRITERS[inst.target], inst.operands + [None] * 5
        at, size = fp.get(args[p]) if isinstance(args[p], Value) else None, _const(args[n])
        if at is not None and size is not None and -STACK_SIZE <= at < at + size <= 0:
            return None, (at, size)
    return None, None


def _bits(acc: Access) -> int:
    return ((1 << acc[1]) - 1) << (acc[0] + STACK_SIZE)


def unproven(func: Function) -> list[tuple[ir.Inst, Access]]:
    """The frame reads whose bytes are not written on every path before them."""
    fp, order, preds = _fp_offsets(func), reverse_postorder(func), func.predecessors()
    full = (1 << STACK_SIZE) - 1
    out = dict.fromkeys(order, full)  # optimistic start: a must-analysis only shrinks it
    while True:
        found, changed = [], False
        for block in order:
            init = 0 if block is func.entry else full
            for p in preds[block]:
                init &= out.get(p, full)
            for inst in block.insts:
                read, write = _effects(inst, fp)
                if read is not None and _bits(read) & ~init:
                    found.append((inst, read))
                for acc in (read, write):  # past a read's check its bytes are written too
                    init |= _bits(acc) if acc is not None else 0
            changed |= init != out[block]
            out[block] = init
        if not changed:
            return found


def instrument(func: Function, code: int) -> None:
    checks = unproven(func)
    if not checks:
        return  # the common case: every read proven, nothing to pay
    watched = 0  # only bytes some check reads need shadow bits
    for _, acc in checks:
        watched |= _bits(acc)
    # the shadow: bit i % 8 of its byte i // 8 stands for frame byte fp - top + i
    top = (func.frame_size() + 7) // 8 * 8
    size = (top // 8 + 7) // 8 * 8
    if top + size > STACK_SIZE:
        raise EpassError(f"msan: function {func.name} uses {top} bytes of stack, no room for "
                         f"its {size}-byte shadow below the frame")
    shadow = -top - size

    def touched(acc: Access) -> dict[int, int]:  # shadow byte offset -> the bits it covers
        masks: dict[int, int] = {}
        for i in range(acc[0] + top, acc[0] + top + acc[1]):
            masks[shadow + i // 8] = masks.get(shadow + i // 8, 0) | 1 << i % 8
        return masks

    fp = _fp_offsets(func)
    for inst in list(func.instructions()):
        _, write = _effects(inst, fp)
        if write is None or not _bits(write) & watched:
            continue
        b = Builder(inst.block, inst.block.insts.index(inst) + 1)  # after it, even a call
        for at, mask in touched(write).items():  # 8 bytes written: no need to read the byte
            b.store(1, FP, at, 0xFF if mask == 0xFF else b.alu(AluOp.OR, b.load(1, FP, at), mask))
    for inst, read in checks:
        b = Builder.before(inst)
        for at, mask in touched(read).items():
            bits = b.load(1, FP, at)
            b.guard(JmpOp.NE, bits if mask == 0xFF else b.alu(AluOp.AND, bits, mask), mask, code)
    # zero the shadow words holding watched bits at entry, after the arguments
    b = Builder(func.entry, next(k for k, i in enumerate(func.entry.insts)
                                 if not isinstance(i, ir.Arg | ir.Undef)))
    for word in sorted({at // 8 * 8 for _, acc in checks for at in touched(acc)}):
        b.store(8, FP, word, 0)


def run(module: Module, options: dict[str, int]) -> None:
    for func in module.functions:
        instrument(func, options["code"])


register(Pass(name="msan", kind="safety", round="final",
              description="abort when a load reads stack bytes that were never written",
              run=run, options=(Option("code", 0, "the return value when the check fires"),)))
