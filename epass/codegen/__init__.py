"""Compile a `Module` back to a linked `Program` (bytecode, map references, BTF info).

    program = compile_module(module)

Steps per function: `prepare` (calling convention as fixed values),
`allocate` (registers, spills), `emit_function` (out of SSA, instructions);
then `layout` places all functions, the entry first, and jumps, calls and
function pointers get their offsets. Compiling changes the module's
functions (copies and spill code are inserted): lift again to reuse it.
"""

from __future__ import annotations

from dataclasses import replace

from epass.codegen.emit import FunctionCode, Item, Label, emit_function, layout
from epass.codegen.prepare import prepare
from epass.codegen.regalloc import allocate
from epass.ir.model import Module
from epass.isa import insn as isa
from epass.isa.opcodes import CallKind, PseudoKind
from epass.obj.btf_ext import LineInfo
from epass.obj.model import FuncInfo, MapRef, Placement, Program

__all__ = ["compile_module"]


def compile_module(module: Module) -> Program:
    labels = {f.name: Label(f"@{f.name}") for f in module.functions}
    codes: list[FunctionCode] = []
    for f in module.functions:
        constraints = prepare(f)
        alloc = allocate(f, constraints)
        codes.append(emit_function(f, alloc, constraints, labels))
    return _assemble(module, codes)


def _assemble(module: Module, codes: list[FunctionCode]) -> Program:
    where, at = layout(codes)
    source = module.source
    prog = Program(module.name, module.section, module.kind, [],
                   core_relos_applied=source.core_relos_applied if source else 0)
    for code in codes:
        start = where[code.start]
        items = [x for x in code.items if isinstance(x, Item)]
        slots = sum(x.slots for x in items)
        prog.functions.append(Placement(code.name, code.section or module.section, start, 0,
                                        slots))
        if code.type_id:
            prog.func_info.append(FuncInfo(start, code.type_id, code.name))
        lines: list[LineInfo] = []
        for x in items:
            pos = at[id(x)]
            if x.line is not None and (not lines or lines[-1].insn < pos):
                lines.append(replace(x.line, insn=pos))
            if x.abort:
                prog.aborts.append(pos)
            if x.map_ref is not None:
                name, value, offset = x.map_ref
                prog.map_refs.append(MapRef(pos, name, value, offset))
            prog.insns += _encode(x, pos, where)
        if lines and lines[0].insn != start:
            lines.insert(0, replace(lines[0], insn=start))  # the kernel wants one at each start
        prog.line_info += lines
    if len(prog.func_info) != len(codes):
        prog.func_info = []  # the kernel takes func_info for every function or for none
    return prog


def _encode(x: Item, pos: int, where: dict[Label, int]) -> list[isa.Insn]:
    insn = x.insn
    if x.target is None:
        return [insn]
    off = where[x.target] - (pos + 1)
    match insn:
        case isa.Call(kind=CallKind.LOCAL):
            return [isa.Call(CallKind.LOCAL, off)]
        case isa.LoadImm64(kind=PseudoKind.FUNC):
            return [replace(insn, imm=off)]
        case isa.Goto():
            return [isa.Goto(off, long=x.long)]
        case isa.Jump() | isa.MayGoto():
            if not x.long:
                return [replace(insn, off=off)]
            # `if cond goto +1; goto +1; gotol target`: the gotol sits two slots further on
            return [replace(insn, off=1), isa.Goto(1), isa.Goto(off - 2, long=True)]
    raise AssertionError(f"unexpected jump target on {insn}")
