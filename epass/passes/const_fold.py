"""const_fold: sparse conditional constant propagation (Wegman and Zadeck) and folding.

Values move from unknown-yet (TOP) to a constant to not-a-constant; reached
blocks are swept in reverse post-order until nothing changes; a branch on
constants reaches only the side it takes. ALU ops and byte swaps are
evaluated by the interpreter's semantics (epass/semantics/ops.py). Only
immediates and lddw are constants (fp, loads, calls, maps, arguments never),
so no pointer is folded. Then: branches with a known outcome become jumps,
constant results `mov imm` or `mov.32 imm`, constant operands immediates
where the kernel takes them; unreached blocks and unused values go.
See docs/passes/const_fold.md.
"""

from __future__ import annotations

from epass.ir import analysis
from epass.ir import model as ir
from epass.ir.analysis import MASK64, imm_for, replace
from epass.ir.cfg import reverse_postorder
from epass.ir.model import Edge, Function, Module, Value
from epass.isa.opcodes import AluOp
from epass.passes.registry import Pass, register
from epass.semantics import ops
from epass.semantics.domain import Concrete

TOP, OVER = "top", "over"  # not computed yet / not a constant; a constant is its int
Lattice = int | str
D = Concrete()
DIVISIONS = (AluOp.DIV, AluOp.SDIV, AluOp.MOD, AluOp.SMOD)
SHIFTS = (AluOp.LSH, AluOp.RSH, AluOp.ARSH)


def meet(a: Lattice, b: Lattice) -> Lattice:
    return b if a == TOP else a if b == TOP or a == b else OVER


def _get(op: ir.Operand, vals: dict[Value, Lattice]) -> Lattice:
    if isinstance(op, Value):
        return vals.get(op, TOP)
    return op & MASK64 if isinstance(op, int) else OVER  # fp: a pointer


def _evaluate(inst: ir.Inst, vals: dict[Value, Lattice]) -> Lattice:
    if isinstance(inst, ir.LoadImm):
        return inst.value
    if not isinstance(inst, ir.Alu | ir.Endian):
        return OVER  # loads, calls, maps, arguments: anything, pointers among them
    args = [_get(op, vals) for op in inst.operands]
    if OVER in args or TOP in args:
        return OVER if OVER in args else TOP
    a, b = D.const(int(args[0]), 64), D.const(int(args[-1]), 64)  # unary ops: a is b
    if isinstance(inst, ir.Endian):
        return ops.endian(D, inst.kind, inst.bits, a).value
    return ops.alu(D, inst.op, inst.bits, a, b).value


def _taken(t: ir.Terminator, vals: dict[Value, Lattice]) -> list[Edge]:
    if not isinstance(t, ir.Branch):
        return list(t.edges)
    a, b = (_get(op, vals) for op in t.operands)
    if not isinstance(a, int) or not isinstance(b, int):
        return [] if TOP in (a, b) else list(t.edges)
    holds = ops.condition(D, t.op, t.bits, D.const(a, 64), D.const(b, 64))
    return [t.then if holds else t.orelse]


def propagate(func: Function) -> tuple[dict[Value, Lattice], set[Edge]]:
    """The lattice value of every value and the edges some execution may take."""
    into = analysis.incoming(func)
    vals: dict[Value, Lattice] = {}
    live: set[Edge] = set()
    reached = {func.entry}
    order = reverse_postorder(func)

    def update(v: Value, new: Lattice) -> bool:
        old, vals[v] = vals.get(v, TOP), meet(vals.get(v, TOP), new)
        return vals[v] != old

    changed = True
    while changed:
        changed = False
        for block in (b for b in order if b in reached):
            for k, p in enumerate(block.params):
                for e in (e for _, e in into[block] if e in live):
                    changed |= update(p, vals.get(e.args[k], TOP))
            for inst in block.insts:
                if inst.result is not None:
                    changed |= update(inst.result, _evaluate(inst, vals))
            assert block.terminator is not None
            for e in _taken(block.terminator, vals):
                changed |= e not in live
                live.add(e)
                reached.add(e.target)
    return vals, live


def _immediate(inst: ir.Inst, k: int, c: int) -> int | None:
    """The immediate that may replace operand k of inst, holding constant c, or None."""
    if isinstance(inst, ir.Alu) and k == 1:
        imm = imm_for(c, inst.bits)
        if imm is None or inst.op in DIVISIONS and imm == 0 or \
                inst.op in SHIFTS and not 0 <= imm < inst.bits:
            return None  # the kernel rejects `/= 0` and shifts past the width
        return imm
    if isinstance(inst, ir.Branch) and k == 1:
        return imm_for(c, inst.bits)
    if isinstance(inst, ir.Store) and k == 1 and inst.base is ir.FP:
        return imm_for(c, 64 if inst.size == 8 else 32)
    return None


def _materialize(c: int, res: Value) -> ir.Alu | None:
    """`res = c` in one instruction: `mov imm`, or `mov.32 imm` (zero-extending); None when
    only an lddw (two slots) can load c."""
    bits = 64 if imm_for(c, 64) is not None else 32 if c >> 32 == 0 else 0
    return ir.Alu(AluOp.MOV, bits, [imm_for(c, bits)], res) if bits else None


def fold(func: Function) -> None:
    vals, live = propagate(func)
    consts = {v: c for v, c in vals.items() if isinstance(c, int)}
    for block in list(func.blocks):
        t = block.terminator
        if isinstance(t, ir.Branch) and len(taken := [e for e in t.edges if e in live]) == 1:
            replace(t, ir.Jump(Edge(taken[0].target, list(taken[0].args))))
    analysis.remove_unreachable(func)  # never reached, or reached only through a folded branch
    for inst in list(func.instructions()):
        res = inst.result
        if isinstance(inst, ir.Alu | ir.Endian | ir.LoadImm) and res in consts and \
                not (isinstance(inst, ir.Alu) and inst.op == AluOp.MOV and
                     isinstance(inst.operands[0], int)) and \
                (mov := _materialize(consts[res], res)) is not None:
            replace(inst, mov)
            continue
        for k, op in enumerate(list(inst.operands)):
            if isinstance(op, Value) and op in consts and \
                    (imm := _immediate(inst, k, consts[op])) is not None:
                inst.set_operand(k, imm)
    analysis.simplify_params(func)
    analysis.remove_dead_values(func)


def run(module: Module, options: dict[str, int]) -> None:
    for func in module.functions:
        fold(func)


register(Pass(name="const_fold", kind="optimization", round="final",
              description="propagate and fold constants, fold branches with a known outcome",
              run=run))
