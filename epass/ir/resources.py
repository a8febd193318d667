"""What a program holds at each instruction: ringbuf reservations not yet released.

A reservation is the result of `bpf_ringbuf_reserve`; `bpf_ringbuf_submit`
or `bpf_ringbuf_discard` of it (or of a copy of it) releases it. The
analysis is a must-analysis: a reservation counts as held at a point only
if it is held on every path there, which also makes its value available
(its definition dominates the point). An abort inserted there releases
exactly these.
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.cfg import reverse_postorder
from epass.ir.model import Block, Function, Value
from epass.isa.helpers import HELPER_IDS
from epass.isa.opcodes import CallKind

RESERVE = HELPER_IDS["bpf_ringbuf_reserve"]
RELEASE = {HELPER_IDS["bpf_ringbuf_submit"], HELPER_IDS["bpf_ringbuf_discard"]}


def _root(v: ir.Operand, roots: dict[Value, Value]) -> Value | None:
    return roots.get(v) if isinstance(v, Value) else None


def held_reservations(func: Function) -> dict[int, list[Value]]:
    """For each instruction (by `id`), the reservations held right before it."""
    roots: dict[Value, Value] = {}  # value -> the reservation it is (a copy of)
    for inst in func.instructions():
        if isinstance(inst, ir.Call) and inst.kind == CallKind.HELPER and \
                inst.target == RESERVE and inst.result is not None:
            roots[inst.result] = inst.result
    if not roots:
        return {}
    order = reverse_postorder(func)
    changed = True
    while changed:  # copies and block parameters that always carry one reservation
        changed = False
        for b in order:
            for inst in b.insts:
                if isinstance(inst, ir.Alu) and inst.is_copy and inst.result not in roots:
                    r = _root(inst.operands[0], roots)
                    if r is not None:
                        roots[inst.result] = r  # type: ignore[index]
                        changed = True
        preds = func.predecessors()
        for b in order:
            for i, p in enumerate(b.params):
                if p in roots:
                    continue
                incoming = {_root(e.args[i], roots) for pred in preds[b]
                            for e in pred.terminator.edges if e.target is b}  # type: ignore
                if len(incoming) == 1 and None not in incoming:
                    roots[p] = incoming.pop()  # type: ignore[assignment]
                    changed = True
    preds = func.predecessors()
    held_in: dict[Block, frozenset[Value] | None] = {b: None for b in order}
    held_in[func.entry] = frozenset()
    out: dict[int, list[Value]] = {}
    changed = True
    while changed:
        changed = False
        for b in order:
            if b is not func.entry:
                outs = [_after(p, held_in[p], roots) for p in preds[b] if held_in.get(p)
                        is not None]
                new = frozenset.intersection(*outs) if outs else None
                if new != held_in[b]:
                    held_in[b] = new
                    changed = True
    for b in order:
        state = held_in[b]
        if state is None:
            continue
        for inst in b.insts:
            out[id(inst)] = sorted(state, key=lambda v: v.id)
            state = _step(inst, state, roots)
    return out


def _step(inst: ir.Inst, state: frozenset[Value], roots: dict[Value, Value]) -> frozenset[Value]:
    if isinstance(inst, ir.Call) and inst.kind == CallKind.HELPER:
        if inst.target == RESERVE and inst.result is not None:
            return state | {inst.result}
        if inst.target in RELEASE and inst.operands:
            r = _root(inst.operands[0], roots)
            if r is not None:
                return state - {r}
    return state


def _after(b: Block, state: frozenset[Value] | None,
           roots: dict[Value, Value]) -> frozenset[Value]:
    assert state is not None
    for inst in b.insts:
        state = _step(inst, state, roots)
    return state
