"""dce: dead code elimination, per function, repeated until nothing changes.

- Blocks no path from the entry reaches go; a branch whose two edges reach
  one block with the same arguments becomes a jump.
- Pure instructions (ALU, byte swaps, lddw, map and function addresses,
  loads) and block parameters that nothing with an effect needs go, dead
  cycles through loop parameters included (mark and sweep).
- Dead stack stores go: a store or atomic add (no fetch) to a known frame
  slot whose bytes nothing reads before the function returns (backward
  liveness of the 512 frame bytes), in a function whose frame pointers do
  not escape: fp and pointers derived from it may only be memory bases at a
  known offset, compared, or passed to helpers without a callback or dynptr
  (which read at most from the pointer up to fp). Anything else leaves the
  function's stores alone. See docs/passes/dce.md.
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.analysis import fp_offsets, remove_dead_values, remove_unreachable, replace
from epass.ir.cfg import reverse_postorder
from epass.ir.model import FP, STACK_SIZE, Function, Module, Value
from epass.isa.helpers import helper_name
from epass.isa.opcodes import AtomicOp, CallKind
from epass.passes.registry import Pass, register

FULL = (1 << STACK_SIZE) - 1
ADDS = (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR)  # no fetch: a write, in effect


def _bytes(at: int, size: int) -> int | None:
    """Frame bytes [at, at + size) as a mask (bit i: byte fp - 512 + i); None if outside."""
    return ((1 << size) - 1) << (at + STACK_SIZE) if -STACK_SIZE <= at <= at + size <= 0 \
        else None


def _may_keep(call: ir.Call) -> bool:
    """Whether a call may reach a frame pointer it is given after it returns, or below it: a
    subprogram or kfunc may do anything, a callback receives it, a dynptr refers to it."""
    name = helper_name(call.target) if call.kind == CallKind.HELPER else None  # type: ignore
    callback = any(isinstance(op, Value) and isinstance(op.definition, ir.LoadFunc)
                   for op in call.operands)
    return name is None or "dynptr" in name or callback


def frame_effects(func: Function) -> dict[ir.Inst, tuple[int, int]] | None:
    """Per instruction touching the frame: (bytes it may read, bytes it may drop if dead).
    None when a frame pointer escapes and the frame's readers cannot be listed."""
    known = fp_offsets(func)
    derived: set[Value] = set()  # every value computed from fp, known offset or not
    changed = True
    while changed:
        changed = False
        for inst in func.instructions():
            if isinstance(inst, ir.Alu) and inst.result not in derived and \
                    any(op is FP or op in derived for op in inst.operands):
                derived.add(inst.result)
                changed = True
            for e in inst.edges if isinstance(inst, ir.Terminator) else ():
                new = {p for a, p in zip(e.args, e.target.params, strict=True) if a in derived}
                changed |= not new <= derived
                derived |= new
    out: dict[ir.Inst, tuple[int, int]] = {}
    for inst in func.instructions():
        ptrs = [(k, op) for k, op in enumerate(inst.operands) if op is FP or op in derived]
        if isinstance(inst, ir.Load | ir.Store | ir.Atomic):
            if any(k > 0 for k, _ in ptrs):
                return None  # a frame pointer stored to memory
            if not ptrs:
                continue
            at = 0 if inst.base is FP else known.get(inst.base)  # type: ignore[arg-type]
            acc = _bytes(at + inst.off, inst.size) if at is not None else None
            if acc is None:
                return None  # an unknown offset: it may touch any byte
            removable = isinstance(inst, ir.Store) or \
                isinstance(inst, ir.Atomic) and inst.op in ADDS and inst.result is None
            out[inst] = (0 if isinstance(inst, ir.Store) else acc, acc if removable else 0)
        elif ptrs and isinstance(inst, ir.Call) and not _may_keep(inst):
            read = 0
            for _, op in ptrs:  # from the pointer up to fp, or anywhere
                at = 0 if op is FP else known.get(op)  # type: ignore[arg-type]
                read |= (_bytes(at, -at) if at is not None else None) or FULL
            out[inst] = (read, 0)
        elif ptrs and not isinstance(inst, ir.Alu | ir.Branch):
            return None  # returned, or handed to a callee that may keep or offset it
    return out


def self_updates(func: Function) -> dict[ir.Inst, set[ir.Inst]]:
    """Frame loads whose value only reaches, through ALU operations, stores of the same
    bytes later in the same block: load -> those stores."""
    out: dict[ir.Inst, set[ir.Inst]] = {}
    for load in func.instructions():
        if not isinstance(load, ir.Load) or load.base is not FP or load.result is None:
            continue
        stores: set[ir.Inst] = set()
        frontier, ok = [load.result], True
        while frontier and ok:
            for use in frontier.pop().uses:
                if isinstance(use, ir.Alu) and use.result is not None:
                    frontier.append(use.result)
                elif isinstance(use, ir.Store) and use.base is FP and use.block is load.block \
                        and (use.off, use.size) == (load.off, load.size) and \
                        use.operands[0] is FP and \
                        load.block.insts.index(use) > load.block.insts.index(load):
                    stores.add(use)
                else:
                    ok = False
        if ok and stores:
            out[load] = stores
    return out


def remove_dead_stores(func: Function) -> bool:
    effects = frame_effects(func)
    if not effects:
        return False
    updates = self_updates(func)
    order = reverse_postorder(func)
    live_in = dict.fromkeys(order, 0)

    def walk(block: ir.Block, dead: list[ir.Inst] | None) -> int:
        live = 0  # returning ends the frame: nothing is read after the last block
        for s in block.successors:
            live |= live_in[s]
        kept: set[ir.Inst] = set()
        for inst in reversed(block.insts):
            read, drop = effects.get(inst, (0, 0))
            if drop and not drop & live:
                if dead is not None:
                    dead.append(inst)
                continue  # dead: it neither reads nor writes
            if isinstance(inst, ir.Store):
                kept.add(inst)
                live &= ~drop  # these bytes are overwritten: earlier stores to them are dead
            if inst in updates and not updates[inst] & kept:
                continue  # its value only feeds dead stores of its own bytes
            live |= read
        return live

    changed = True
    while changed:  # least fixpoint: a slot only an atomic add ever touches stays dead
        changed = False
        for block in reversed(order):
            new = walk(block, None)
            changed |= new != live_in[block]
            live_in[block] = new
    dead: list[ir.Inst] = []
    for block in order:
        walk(block, dead)
    for inst in dead:
        inst.erase()
    return bool(dead)


def _same_target_branches(func: Function) -> bool:
    changed = False
    for block in func.blocks:
        t = block.terminator
        if isinstance(t, ir.Branch) and t.then.target is t.orelse.target and \
                all(a is b for a, b in zip(t.then.args, t.orelse.args, strict=True)):
            replace(t, ir.Jump(ir.Edge(t.then.target, list(t.then.args))))
            changed = True
    return changed


def eliminate(func: Function) -> None:
    while remove_unreachable(func) | _same_target_branches(func) | \
            remove_dead_values(func) | remove_dead_stores(func):
        pass


def run(module: Module, options: dict[str, int]) -> None:
    for func in module.functions:
        eliminate(func)


register(Pass(name="dce", kind="optimization", round="final",
              description="remove unreachable blocks, unused values and dead stack stores",
              run=run))
