"""rce: remove the checks safety passes inserted where they can never fire.

A check is a branch with one edge into an abort region (blocks whose every
path ends in `abort`, as `Builder.guard` builds them). It becomes a jump
along its other edge only when proven never to fire; undecided checks stay.
1. VI map: `v op c` right before an original ALU op or jump that reads `v`
   cannot hold given the verifier's bounds of `v`'s register there, on every
   visit. Only on the unique path from the entry: elsewhere state pruning
   (which ignores imprecise scalars) may have hidden a path.
2. Z3: a compiled copy of the module is run symbolically once; a check goes
   when no input that does not fault reaches its abort exits.
See docs/passes/rce.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import z3

from epass.codegen import compile_module
from epass.errors import EpassError
from epass.ir import model as ir
from epass.ir.cfg import reverse_postorder
from epass.ir.text import format_module, parse_module
from epass.isa import insn as isa
from epass.isa import slot_count, slot_indices
from epass.isa.opcodes import CallKind, JmpOp, PseudoKind
from epass.kernel.vimap import RegState
from epass.obj.model import MapOrigin, Program
from epass.passes.registry import Option, Pass, register
from epass.semantics.ctx import layout_for
from epass.semantics.interp import MapSpec
from epass.semantics.memory import MemoryFault
from epass.semantics.step import Unsupported
from epass.semantics.symbolic import SymbolicEnv, distinct_keys, run_symbolic
from epass.uapi import ProgType

Check = tuple[ir.Branch, int]  # a branch and the index of its edge into an abort region


def _aborting(block: ir.Block, memo: dict[ir.Block, bool]) -> bool:
    if block not in memo:
        memo[block] = False  # a cycle through here is no abort region
        t = block.terminator
        memo[block] = t.abort if isinstance(t, ir.Ret) else isinstance(t, ir.Jump | ir.Branch) \
            and all(_aborting(s, memo) for s in block.successors)
    return memo[block]


def checks(func: ir.Function) -> list[Check]:
    memo: dict[ir.Block, bool] = {}
    return [(t, k) for b in reverse_postorder(func) if isinstance(t := b.terminator, ir.Branch)
            and not _aborting(b, memo) for k, e in enumerate(t.edges) if _aborting(e.target, memo)]


def unique_path(program: Program) -> set[int]:
    """Slots the verifier reaches on one path only: nothing can be pruned on the way there."""
    code = dict(zip(slot_indices(program.insns), program.insns, strict=True))
    if any(isinstance(i, isa.LoadImm64) and i.kind == PseudoKind.FUNC for i in code.values()):
        return set()  # callbacks: the verifier visits the calls that take them repeatedly
    succ = {s: [] if isinstance(i, isa.Exit) else [s + i.off + 1] if isinstance(i, isa.Goto)
            else [s + 1, s + i.off + 1] if isinstance(i, isa.Jump | isa.MayGoto)
            else [s + slot_count(i)] for s, i in code.items()}
    preds = Counter(t for ts in succ.values() for t in ts)
    out, todo = set(), [0] if preds[0] == 0 else []
    while todo:
        out.add(s := todo.pop())
        if not (isinstance(code[s], isa.Call) and code[s].kind == CallKind.LOCAL):
            todo += [t for t in succ[s] if preds[t] == 1]  # (a return point may be pruned)
    return out


def never(op: JmpOp, bits: int, r: RegState, c: int) -> bool:
    """`r op c` is false for every value within the verifier's bounds of r."""
    u = c & ((1 << bits) - 1)
    s = u - (u >> (bits - 1) << bits)
    lo, hi, slo, shi = (r.umin, r.umax, r.smin, r.smax) if bits == 64 else \
        (r.u32_min, r.u32_max, r.s32_min, r.s32_max)
    return {JmpOp.EQ: not lo <= u <= hi or not slo <= s <= shi, JmpOp.NE: lo == hi == u,
            JmpOp.GT: hi <= u, JmpOp.GE: hi < u, JmpOp.LT: lo >= u, JmpOp.LE: lo > u,
            JmpOp.SGT: shi <= s, JmpOp.SGE: shi < s, JmpOp.SLT: slo >= s, JmpOp.SLE: slo > s,
            JmpOp.SET: (r.var_off_value | r.var_off_mask) & u == 0}.get(op, False)


def _next_original(block: ir.Block, found: dict[ir.Branch, int]) -> ir.Inst | None:
    """The first original instruction run from `block` on, past jumps and other checks."""
    seen = set()
    while block not in seen:
        seen.add(block)
        inst = next(i for i in block.insts if i.origin is not None or i.is_terminator)
        if inst.origin is not None:
            return inst
        if not isinstance(inst, ir.Jump) and inst not in found:
            return None
        block = inst.edges[1 - found[inst] if isinstance(inst, ir.Branch) else 0].target
    return None


def vimap_never(module: ir.Module, check: Check, found: dict[ir.Branch, int],
                unique: set[int]) -> bool:
    br, k = check
    v, c = br.operands
    g = _next_original(br.orelse.target, found) if k == 0 else None
    if g is None or g.origin not in unique or not isinstance(c, int) or \
            not isinstance(v, ir.Value) or v.reg is None or len(g.operands) != 2:
        return False
    insn = dict(zip(slot_indices(module.source.insns), module.source.insns,  # type: ignore
                    strict=True))[g.origin]
    if not isinstance(insn, isa.Alu | isa.Jump) or all(  # the original reads v in v.reg there
            op is not v or r != v.reg for op, r in zip(g.operands, (insn.dst, insn.src),
                                                       strict=True)):
        return False
    regs = [s.regs.get(v.reg) for s in module.vimap.states(g.origin)]  # type: ignore
    return bool(regs) and all(r is not None and r.is_scalar and never(br.op, br.bits, r, c)
                              for r in regs)


Slots = dict[tuple[int, int], int]  # (function index, block id) of an abort exit -> its slot


def compiled(module: ir.Module) -> tuple[list[isa.Insn], list[MapSpec], Slots] | None:
    """The module as bytecode for a symbolic run (maps by index), and its abort exits' slots;
    None when that cannot be had."""
    try:
        copy = parse_module(format_module(module))  # compiling changes a module
        exits = []  # per function, in layout order: codegen emits reachable blocks in order
        for n, f in enumerate(copy.functions):
            live = set(reverse_postorder(f))
            exits.append([(n, b.id) for b in f.blocks if b in live and
                          isinstance(t := b.terminator, ir.Ret) and t.abort])
        program = compile_module(copy)
    except EpassError:
        return None  # the real compile will say why
    slot_of: Slots = {}
    for rets, place in zip(exits, program.functions, strict=True):
        slots = [s for s in program.aborts if place.start <= s < place.start + place.slots]
        if len(slots) != len(rets):
            return None
        slot_of.update(zip(rets, sorted(slots), strict=True))
    maps = {m.name: i for i, m in enumerate(module.maps)}
    insns, where = list(program.insns), slot_indices(program.insns)
    for ref in program.map_refs:
        if ref.map not in maps:
            return None  # a map a pass asked for: not modelled
        pos = where.index(ref.insn)
        insns[pos] = replace(insns[pos], imm=maps[ref.map], aux=ref.offset, kind=PseudoKind.
                             MAP_IDX_VALUE if ref.value else PseudoKind.MAP_IDX)
    specs = [MapSpec(m.name, m.type, m.key_size, m.value_size, m.max_entries,
                     {bytes(4): m.initial} if m.origin == MapOrigin.DATA and m.initial else {})
             for m in module.maps]
    return insns, specs, slot_of


def z3_never(module: ir.Module, todo: list[tuple[int, Check]], opts: dict[str, int]
             ) -> list[Check]:
    """The checks (after their function's index) whose abort exits no input reaches."""
    prog_type = module.kind.prog_type if module.kind else None
    if layout_for(prog_type).has_packet and prog_type != ProgType.XDP:
        return []  # Z3's packets are at most 4096 bytes long: XDP's too, an skb's not
    if (got := compiled(module)) is None:
        return []
    insns, specs, slot_of = got
    try:
        result = run_symbolic(insns, SymbolicEnv(
            prog_type=prog_type, maps=specs, max_steps=opts["unroll"] * len(insns),
            max_total_steps=opts["steps"], strict_helpers=True))
    except (Unsupported, MemoryFault):
        return []  # a helper without a model
    if not result.complete:
        return []  # some path ran past the bound: it may reach any abort
    solver = z3.Solver()
    solver.set("timeout", opts["timeout"] * 1000)
    # path conditions bound the packet's length; the verifier keeps faults away
    solver.add(z3.Not(result.fault), *distinct_keys(result))
    out = []
    for n, (br, k) in todo:
        blocks, region = [br.edges[k].target], set()
        while blocks:  # the abort region, for its exits
            region.add(b := blocks.pop())
            blocks += [s for s in b.successors if s not in region]
        slots = {slot_of.get((n, b.id)) for b in region if isinstance(b.terminator, ir.Ret)}
        fires = [cond for cond, pc, _ in result.path_ends if pc in slots]
        if None not in slots and (not fires or solver.check(z3.Or(*fires)) == z3.unsat):
            out.append((br, k))
    return out


def remove(module: ir.Module, gone: list[Check]) -> None:
    for br, k in gone:
        keep, block = br.edges[1 - k], br.block
        br.erase()
        block.append(ir.Jump(ir.Edge(keep.target, list(keep.args))))  # type: ignore[union-attr]
    for f in module.functions:  # the abort regions are unreachable now
        live = set(reverse_postorder(f))
        for inst in [i for b in f.blocks if b not in live for i in b.insts]:
            inst.drop_uses()
        f.blocks = [b for b in f.blocks if b in live]


def run(module: ir.Module, options: dict[str, int]) -> None:
    if min(options["timeout"], options["unroll"], options["steps"]) < 1 or \
            options["z3"] not in (0, 1):
        raise EpassError("rce: timeout, unroll and steps must be at least 1, z3 0 or 1; got "
                         + " ".join(f"{k}={v}" for k, v in options.items()))
    found = [(n, c) for n, f in enumerate(module.functions) for c in checks(f)]
    vimap = module.vimap
    unique = unique_path(module.source) if vimap is not None and module.source is not None \
        and not vimap.unparsed and vimap.head_fragment is None else set()  # type: ignore
    table = dict(c for _, c in found)
    gone = [c for _, c in found if unique and vimap_never(module, c, table, unique)]
    remove(module, gone)
    rest = [(n, c) for n, c in found if c not in gone]
    if rest and options["z3"]:
        remove(module, z3_never(module, rest, options))


register(Pass(
    name="rce", kind="optimization", round="final", needs_verifier=True, run=run,
    description="remove inserted checks that the VI map or Z3 proves can never fire",
    options=(Option("timeout", 5, "seconds Z3 may spend on each check"),
             Option("unroll", 4, "a symbolic path may run this many times the program's length"),
             Option("steps", 10000, "symbolic steps over all paths before Z3 gives up"),
             Option("z3", 1, "1: ask Z3 about the checks the VI map does not decide; 0: not")),
))
