"""Helpers for the IR and codegen tests: lifting objects and bare instruction lists,
removing the allocator's hints, counting slots."""

from __future__ import annotations

from kernel_run import subprogram_starts

from epass.codegen import compile_module
from epass.ir.lift import lift_program
from epass.ir.model import Arg, Module, Undef
from epass.isa import Insn, slot_count
from epass.obj.model import Placement, Program
from epass.obj.sections import program_kind

# An XDP program dividing by the packet's first byte and the result by its second:
# both divisors can be zero.
DIVIDE = """
module @div section "xdp"
func @div args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0]
  %2:r3 = load u32 [%0 + 4]
  %3:r4 = mov %1
  %4:r4 = add %3, 2
  br jgt %4, %2, bb2, bb1
bb1:
  %5:r5 = load u8 [%1]
  %6:r0 = mov 100
  %7:r0 = div.32 %6, %5
  %8:r6 = load u8 [%1 + 1]
  %9:r0 = mod %7, %8
  ret %9
bb2:
  ret 99
}
"""


def slots(insns: list[Insn]) -> int:
    return sum(slot_count(i) for i in insns)


def program_from_insns(insns: list[Insn], section: str = "xdp") -> Program:
    """A linked program from bare instructions: functions start where calls point."""
    starts = subprogram_starts(insns)
    total = slots(insns)
    ends = starts[1:] + [total]
    placements = [Placement(f"f{i}" if i else "main", section, s, s, e - s)
                  for i, (s, e) in enumerate(zip(starts, ends, strict=True))]
    return Program("main", section, program_kind(section), list(insns), functions=placements)


def strip_hints(module: Module) -> Module:
    """Forget which register each value came from: the allocator must choose alone."""
    for f in module.functions:
        for b in f.blocks:
            for p in b.params:
                p.reg = None
            for inst in b.insts:
                if inst.result is not None and not isinstance(inst, Arg | Undef):
                    inst.result.reg = None
    return module


def round_trip(program: Program, hints: bool = True, maps: list | None = None) -> Program:
    module = lift_program(program, maps or [])
    if not hints:
        strip_hints(module)
    return compile_module(module)
