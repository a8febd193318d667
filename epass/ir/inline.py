"""Inline a bpf-to-bpf call: the callee's blocks copied into the caller.

`inline_call(call, shift)` replaces `%r = call @g(args)` by a copy of g's blocks (in g's
order, between the call's block and the rest of it): g's arguments become the call's
operands, each `ret v` a jump to the rest with v, which takes the call's result's place.
The callee's stack slots move `shift` bytes down in the caller's frame (loads, stores and
pointers derived from fp). g is dropped from the module once nothing calls it.

The copy runs the same instructions on the same values; what changes is the frame its
stack lives in (and r6-r9, which a call preserves and the inlined code may now use: the
register allocator sees the values live across it), so the meaning is kept as long as
the moved slots do not overlap caller slots still in use (`stack_free_after`).
"""

from __future__ import annotations

from epass.errors import IRError
from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.cfg import reverse_postorder
from epass.ir.duplicate import clone
from epass.ir.model import FP, STACK_SIZE, Value
from epass.isa.opcodes import AluOp, CallKind


class InlineError(IRError):
    pass


def callee(module: ir.Module, call: ir.Inst) -> ir.Function | None:
    if isinstance(call, ir.Call) and call.kind == CallKind.LOCAL:
        return module.function(str(call.target))
    return None


def stack_free_after(call: ir.Call) -> bool:
    """Whether nothing from `call` on (its arguments, the rest of the caller, loops back to
    it included) touches the caller's frame: then the callee's slots may reuse it."""
    func = call.block.function
    derived: set[Value] = set()  # values computed from fp
    changed = True
    while changed:
        changed = False
        for inst in func.instructions():
            uses = [o for o in inst.operands if o is FP or o in derived]
            if isinstance(inst, ir.Alu) and uses and inst.result not in derived:
                derived.add(inst.result)  # type: ignore[arg-type]
                changed = True
            for e in inst.edges if isinstance(inst, ir.Terminator) else []:
                for p, a in zip(e.target.params, e.args, strict=True):
                    if a in derived and p not in derived:
                        derived.add(p)
                        changed = True
    after, todo = set(), [call.block]
    while todo:
        for s in todo.pop().successors:
            if s not in after:
                after.add(s)
                todo.append(s)
    tail = call.block.insts[call.block.insts.index(call):]
    return not any(FP in i.operands or any(v in derived for v in i.used_values())
                   for i in [*tail, *(i for b in after for i in b.insts)])


def inline_call(module: ir.Module, call: ir.Call, shift: int) -> None:
    g = callee(module, call)
    caller = call.block.function
    if g is None or g is caller:
        raise InlineError("not a call to another function")
    if shift + g.frame_size() > STACK_SIZE:
        raise InlineError(f"{g.name}'s {g.frame_size()} bytes do not fit below {shift}")
    block = call.block
    rest = Builder.after(call).split()
    assert call.result is not None
    result = rest.add_param(caller.new_value(call.result.reg))
    call.result.replace_all_uses(result)
    mapping: dict[Value, Value] = {}
    copies: dict[ir.Block, ir.Block] = {}
    after = block
    for b in g.blocks:  # g's layout, between the call and the rest
        copies[b] = after = caller.new_block(after=after)
        for p in b.params:
            mapping[p] = copies[b].add_param(caller.new_value(p.reg))
    for b in reverse_postorder(g):  # definitions before uses
        out = Builder.at_end(copies[b])
        for inst in b.insts:
            if isinstance(inst, ir.Arg):
                assert inst.result is not None
                if inst.index > len(call.operands):
                    raise InlineError(f"{g.name} reads r{inst.index}, which the call does "
                                      "not pass")
                operand = call.operands[inst.index - 1]
                mapping[inst.result] = operand if isinstance(operand, Value) else \
                    out.mov(operand)
            elif isinstance(inst, ir.Undef):
                raise InlineError(f"{g.name} reads a register nothing wrote")
            elif isinstance(inst, ir.Ret):
                v = mapping.get(inst.operands[0], inst.operands[0])  # type: ignore[arg-type]
                out.jump(rest, [v if isinstance(v, Value) else out.mov(v)])
            else:
                new = out.insert(clone(inst, mapping, caller))
                _relocate(new, inst, shift, mapping, out)
                if isinstance(new, ir.Terminator):
                    for e in new.edges:
                        e.target = copies[e.target]
    jump = block.terminator
    assert isinstance(jump, ir.Jump)
    jump.retarget(jump.edges[0], copies[g.entry], [])
    call.erase()
    if not any(callee(module, i) is g or (isinstance(i, ir.LoadFunc) and i.function == g.name)
               for f in module.functions for i in f.instructions()):
        module.functions.remove(g)


def _relocate(new: ir.Inst, old: ir.Inst, shift: int, mapping: dict[Value, Value],
              out: Builder) -> None:
    """Move the callee's frame `shift` bytes down: fp-based accesses get a lower offset,
    a value computed from fp is lowered right after it is."""
    if shift == 0 or FP not in new.operands:
        return
    if isinstance(new, ir.Load | ir.Store | ir.Atomic) and new.operands[0] is FP and \
            FP not in new.operands[1:]:
        new.off -= shift
    elif isinstance(new, ir.Alu) and new.result is not None and old.result is not None:
        mapping[old.result] = out.alu(AluOp.ADD, new.result, -shift)
    else:
        raise InlineError("the frame pointer is used in a way inlining does not move")
