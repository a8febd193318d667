"""Code duplication: one instruction per path, so the verifier sees one pointer type (or one
constant offset) per instruction.

- `duplicate_per_edge(block, upto)`: each incoming edge of `block` gets its own copy of
  the block's instructions up to `upto`, with the block's parameters replaced by what
  that edge passes; the copies join again in a block holding the rest.
- `split_by_value(inst, index, values, emit)`: `inst` becomes a chain of
  `if index != v` tests, one copy per value (built by `emit`), and an abort for any
  other value; the copies' results join in a block parameter.
- `copy_access`, `rebase`: an access again at another base and offset.
- `prune(value)`: delete the pure ALU instructions a rewrite left without uses.

Both keep the program's meaning by construction (the copies run the same instructions
on the same values); the abort of `split_by_value` is where a wrong guess of the values
would show, which is why a caller must prove it never fires.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.model import Block, Edge, Value
from epass.isa.opcodes import JmpOp


def clone(inst: ir.Inst, mapping: dict[Value, Value], func: ir.Function) -> ir.Inst:
    """A copy of `inst` reading `mapping[v]` for each mapped value v; its result is a new
    value, recorded in `mapping`."""
    new = copy.copy(inst)
    new.operands, new.block = [], None
    for op in inst.operands:
        new._add_operand(mapping.get(op, op) if isinstance(op, Value) else op)
    if inst.result is not None:
        new.result = func.new_value(inst.result.reg)
        new.result.definition = new
        mapping[inst.result] = new.result
    if isinstance(new, ir.Terminator):
        new.edges = []
        for e in inst.edges:  # type: ignore[attr-defined]
            args = [mapping.get(a, a) for a in e.args]
            new.edges.append(Edge(e.target, args))
            for a in args:
                a.uses.append(new)
    return new


def _live_out(block: Block, rest: Block) -> None:
    """Values of `block` read elsewhere become parameters of `rest`, its only successor."""
    jump = block.terminator
    assert isinstance(jump, ir.Jump) and jump.edges[0].target is rest
    defined = list(block.params) + [i.result for i in block.insts if i.result is not None]
    for v in defined:
        outside = [u for u in dict.fromkeys(v.uses) if u.block is not block]
        if outside:
            param = rest.add_param(block.function.new_value(v.reg))
            for user in outside:
                user.replace_value(v, param)
            jump.add_edge_arg(jump.edges[0], v)


def duplicate_per_edge(block: Block, upto: ir.Inst) -> list[Block]:
    """Copy `block` up to and including `upto` once per incoming edge (see the module
    docstring); returns the copies, in the order of the edges."""
    func = block.function
    if block is func.entry or upto.block is not block or upto.is_terminator:
        raise ValueError("only a non-entry block's own instruction can end the copied part")
    rest = Builder.after(upto).split()
    _live_out(block, rest)
    edges = [(pred.terminator, e) for pred in dict.fromkeys(func.predecessors()[block])
             for e in pred.terminator.edges if e.target is block]  # type: ignore[union-attr]
    copies, after = [], block
    for term, edge in edges:
        dup = func.new_block(after=after)
        mapping = dict(zip(block.params, edge.args, strict=True))
        for inst in block.insts:
            dup.append(clone(inst, mapping, func))
        assert term is not None
        term.retarget(edge, dup, [])
        copies.append(dup)
        after = dup
    for inst in block.insts:
        inst.drop_uses()
    func.blocks.remove(block)
    return copies


def split_by_value(inst: ir.Inst, index: Value, values: list[int],
                   emit: Callable[[Builder, int], Value | None], code: int = 0) -> None:
    """Replace `inst` by `if index == v: emit(v)` for each v in `values`; any other value
    aborts with `code`. `emit` builds the copy for one value and returns its result (None
    when `inst` has none)."""
    if not values or any(not -(1 << 31) <= v < 1 << 31 for v in values):
        raise ValueError("the values must be 32-bit immediates")
    func = inst.block.function  # type: ignore[union-attr]
    abort = Builder.before(inst).abort_block(code)
    head = inst.block
    assert head is not None
    join = Builder.before(inst).split()
    if inst.result is not None:
        param = join.add_param(func.new_value(inst.result.reg))
        inst.result.replace_all_uses(param)
    inst.erase()
    jump = head.terminator
    assert jump is not None
    jump.drop_uses()
    head.insts.remove(jump)
    test = head
    for i, v in enumerate(values):
        # `if index != v goto next` falls through into the copy for v
        case = func.new_block(after=test)
        other = abort if i == len(values) - 1 else func.new_block(after=case)
        Builder.at_end(test).branch(JmpOp.NE, index, v, other, case)
        b = Builder(case, 0)
        result = emit(b, v)
        b.jump(join, [result] if result is not None else [])
        test = other


def prune(value: ir.Operand) -> None:
    """Delete the ALU instruction defining `value` if nothing reads it, then its operands'."""
    work = [value]
    while work:
        v = work.pop()
        if not isinstance(v, Value) or v.uses or not isinstance(v.definition, ir.Alu):
            continue
        inst = v.definition
        inst.erase()
        work.extend(inst.operands)


def copy_access(access: ir.Inst, base: ir.Operand, off: int, b: Builder) -> Value | None:
    """A copy of the load, store or atomic `access` at [base + off], inserted at `b`;
    returns its result."""
    result = b.func.new_value(access.result.reg) if access.result is not None else None
    if isinstance(access, ir.Load):
        assert result is not None
        b.insert(ir.Load(access.size, base, off, result, access.signed))
    elif isinstance(access, ir.Store):
        b.insert(ir.Store(access.size, base, off, access.value))
    elif isinstance(access, ir.Atomic):
        b.insert(ir.Atomic(access.op, access.size, off, [base, *access.operands[1:]], result))
    else:
        raise TypeError(f"{type(access).__name__} is not a memory access")
    return result


def rebase(access: ir.Inst, base: ir.Operand, off: int) -> None:
    """Make `access` use [base + off] (a copy replaces it); prune its old address."""
    old = access.operands[0]
    result = copy_access(access, base, off, Builder.before(access))
    if access.result is not None:
        assert result is not None
        access.result.replace_all_uses(result)
    access.erase()
    prune(old)
