"""Where the verifier stopped: the rejected instruction in a freshly lifted IR, with the
verifier's error and its state there. What every strategy works from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from epass.ir import model as ir
from epass.ir.lift import lift_program
from epass.isa import Insn, slot_indices
from epass.kernel.loader import ProgramLoad
from epass.kernel.verifier_log import ErrorClass, VerifierError
from epass.kernel.vimap import RegState, VerifierState, VIMap, build_vimap
from epass.obj.model import BpfObject, Program

# errors no instruction is to blame for (a level-0 log of a walk that hit the instruction
# limit does not name the last one either)
WHOLE_PROGRAM = frozenset({ErrorClass.PROGRAM_TOO_LARGE, ErrorClass.STACK_TOO_LARGE})


class Facts:
    """A verification's log, and its VI map built the first time a strategy asks: the
    log of a program that ran into the instruction limit has millions of lines."""

    def __init__(self, log: str) -> None:
        self.log = log

    @cached_property
    def vimap(self) -> VIMap:
        return build_vimap(self.log)


@dataclass
class Site:
    obj: BpfObject
    program: Program  # the program the verifier rejected (this round's)
    module: ir.Module  # lifted from it; a strategy edits this one
    inst: ir.Inst  # the rejected instruction in `module`
    insn: Insn  # ... and in bytecode
    error: VerifierError
    facts: Facts  # of this round's verification
    # submit a program (compiled from a module like this one) to the verifier, log level
    # 2: for strategies that must see how the verifier fares with a trial rewrite
    verify: Callable[[Program], ProgramLoad] | None = None

    @property
    def vimap(self) -> VIMap:
        return self.facts.vimap

    @property
    def state(self) -> VerifierState | None:
        """The verifier's state before the rejected instruction on the failing path (its
        last visit)."""
        states = self.vimap.states(self.error.insn) if self.error.insn is not None else []
        return states[-1] if states else None

    def reg(self, n: int) -> RegState | None:
        state = self.state
        return state.regs.get(n) if state is not None else None

    def reg_at(self, inst: ir.Inst, n: int) -> RegState | None:
        """Register `n` before another instruction of this program, on its last visit."""
        if inst.origin is None:
            return None
        regs = self.vimap.reg_at(inst.origin, n)
        return regs[-1] if regs else None

    def bytecode(self, inst: ir.Inst) -> Insn | None:
        """The bytecode instruction `inst` was lifted from."""
        if inst.origin is None:
            return None
        slots = slot_indices(self.program.insns)
        return self.program.insns[slots.index(inst.origin)] if inst.origin in slots else None


def make_site(obj: BpfObject, program: Program, error: VerifierError, facts: Facts,
              verify: Callable[[Program], ProgramLoad] | None = None) -> Site | None:
    """Lift `program` and find the instruction the error names; None when it names none.
    Errors about the whole program (its size, its stack) get the first instruction."""
    where = error.insn
    if where is None and error.error_class in WHOLE_PROGRAM:
        where = 0
    if where is None:
        return None
    module = lift_program(program, obj.maps)
    inst = next((i for f in module.functions for i in f.instructions()
                 if i.origin == where and not isinstance(i, ir.Arg | ir.Undef)), None)
    slots = slot_indices(program.insns)
    if inst is None or where not in slots:
        return None
    return Site(obj, program, module, inst, program.insns[slots.index(where)], error,
                facts, verify)
