"""The Z3 encoding: the same `step()` run on Z3 bit-vectors, over every path.

Memory is one Z3 array from 64-bit addresses to bytes, over the same
fixed region layout as the interpreter (memory.py). Bytes nobody wrote are
the initial array's: unknown, unless the caller constrains them (packet
bytes, the conformance suite's memory, map contents). An access outside
every region adds to the run's fault condition instead of stopping it.

Paths fork at branches whose condition is not decided by simplification
and are explored depth first; each finished path contributes its r0 under
its path condition, so the result is `r0 = ite(path1, v1, ite(path2, ...))`.
A path longer than the step bound makes the result incomplete (`bounded`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import z3

from epass.isa import CallReg, Insn, LoadImm64, PseudoKind, helper_name, slot_count
from epass.semantics import step as st
from epass.semantics.domain import SYMBOLIC
from epass.semantics.interp import CODE_BASE
from epass.semantics.memory import MEM_BASE, STACK_BASE, STACK_SIZE, STACK_STRIDE, MemoryFault

MAX_CALL_FRAMES = 8


@dataclass(frozen=True)
class Span:
    """An address range a path may access: [base + lo, base + hi)."""

    name: str
    base: int
    lo: Any  # z3 64-bit expression or int
    hi: Any


@dataclass
class PathState:
    """One path's state; z3 terms are immutable, so copying is cheap."""

    regs: tuple[Any, ...]
    mem: Any  # z3 Array(BitVec 64, BitVec 8)
    cond: Any  # z3 Bool: the path condition
    pc: int
    frames: tuple[tuple[int, tuple[Any, ...]], ...] = ()  # (return slot, saved r6-r10)
    steps: int = 0
    fault: Any = field(default_factory=lambda: z3.BoolVal(False))
    calls: int = 0


@dataclass
class SymbolicResult:
    """r0 as one term over all finished paths; `complete` is False if a path hit the bound."""

    r0: Any
    mem: Any
    fault: Any  # z3 Bool: some access on some path was out of bounds
    paths: int
    complete: bool
    memory0: Any  # the initial memory array, to constrain inputs


HelperModel = Callable[["SymbolicMachine", int], Any]


class _Fork(Exception):
    """Raised by a helper model that needs the path split on a condition."""


class SymbolicMachine:
    """Implements `step.Machine` for one path at a time."""

    d = SYMBOLIC

    def __init__(self, spans: list[Span], helpers: dict[int, HelperModel],
                 indirect_calls: bool) -> None:
        self.spans = spans
        self.helpers = helpers
        self.indirect_calls = indirect_calls
        self.state: PathState | None = None
        self.exits: list[tuple[Any, Any]] = []  # early exits a helper asked for: (cond, r0)

    # ------------------------------------------------------------ Machine

    def reg(self, n: int, index: int) -> Any:
        assert self.state is not None
        value = self.state.regs[n]
        if value is None:
            raise MemoryFault(index, f"read of uninitialized register r{n}")
        return value

    def set_reg(self, n: int, value: Any) -> None:
        assert self.state is not None
        regs = list(self.state.regs)
        regs[n] = z3.simplify(value)
        self.state.regs = tuple(regs)

    def _in_bounds(self, addr: Any, size: int) -> Any:
        ok = []
        for s in self.spans:
            lo = z3.BitVecVal(s.base, 64) + s.lo
            hi = z3.BitVecVal(s.base, 64) + s.hi
            ok.append(z3.And(z3.ULE(lo, addr), z3.ULE(addr + size, hi), z3.ULT(addr, hi)))
        return z3.Or(*ok) if ok else z3.BoolVal(False)

    def _check(self, addr: Any, size: int) -> None:
        assert self.state is not None
        bad = z3.simplify(z3.Not(self._in_bounds(addr, size)))
        if not z3.is_false(bad):
            self.state.fault = z3.simplify(z3.Or(self.state.fault, z3.And(self.state.cond, bad)))

    def load(self, addr: Any, size: int, index: int) -> Any:
        assert self.state is not None
        addr = z3.simplify(addr)
        self._check(addr, size)
        mem = self.state.mem
        value = z3.Select(mem, addr)
        for i in range(1, size):
            value = z3.Concat(z3.Select(mem, addr + i), value)  # little endian
        return z3.simplify(value)

    def store(self, addr: Any, size: int, value: Any, index: int) -> None:
        assert self.state is not None
        addr = z3.simplify(addr)
        self._check(addr, size)
        mem = self.state.mem
        for i in range(size):
            mem = z3.Store(mem, addr + i, z3.Extract(8 * i + 7, 8 * i, value))
        self.state.mem = mem

    def pseudo_address(self, insn: LoadImm64, index: int) -> Any:
        if insn.kind == PseudoKind.IMM:
            return z3.BitVecVal(insn.imm, 64)
        if insn.kind == PseudoKind.FUNC:
            return z3.BitVecVal(CODE_BASE + 8 * (index + 1 + insn.imm), 64)
        raise st.Unsupported(f"insn {index}: lddw of {insn.kind.name} has no symbolic model yet")

    def packet_load(self, offset: Any, size: int, index: int) -> Any:
        raise st.Unsupported(f"insn {index}: LD_ABS/LD_IND have no symbolic model yet")

    def call_helper(self, helper_id: int, index: int) -> None:
        assert self.state is not None
        model = self.helpers.get(helper_id)
        if model is None:
            result = self._uninterpreted(helper_id)
        else:
            result = model(self, index)
        self.state.calls += 1
        regs = list(self.state.regs)
        regs[0] = z3.simplify(result)
        for r in range(1, 6):
            regs[r] = None
        self.state.regs = tuple(regs)

    def _uninterpreted(self, helper_id: int) -> Any:
        """An unknown helper: a function of its arguments and of how many calls came before."""
        assert self.state is not None
        name = helper_name(helper_id) or f"helper{helper_id}"
        args = [r if r is not None else z3.BitVecVal(0, 64) for r in self.state.regs[1:6]]
        f = z3.Function(name, *([z3.BitVecSort(64)] * 6), z3.BitVecSort(64))
        return f(z3.BitVecVal(self.state.calls, 64), *args)

    def exit_when(self, cond: Any, r0: Any) -> None:
        """End the program with `r0` on this path when `cond` holds (for helper models)."""
        assert self.state is not None
        self.exits.append((z3.And(self.state.cond, cond), r0))
        self.state.cond = z3.simplify(z3.And(self.state.cond, z3.Not(cond)))


def run_symbolic(insns: list[Insn], *, mem_size: int | None = None, max_steps: int = 100_000,
                 helpers: dict[int, HelperModel] | None = None,
                 indirect_calls: bool = False) -> SymbolicResult:
    """Explore every path of a program whose r1 points at `mem_size` bytes (conformance).

    The initial memory is the unconstrained array `mem0` of the result.
    """
    code: dict[int, Insn] = {}
    slot = 0
    for insn in insns:
        code[slot] = insn
        slot += slot_count(insn)
    mem0 = z3.Array("mem0", z3.BitVecSort(64), z3.BitVecSort(8))
    spans = [Span(f"stack{k}", STACK_BASE + k * STACK_STRIDE, 0, STACK_SIZE)
             for k in range(MAX_CALL_FRAMES)]
    regs: list[Any] = [None] * 11
    if mem_size is not None:
        spans.append(Span("mem", MEM_BASE, 0, mem_size))
        regs[1] = z3.BitVecVal(MEM_BASE if mem_size else 0, 64)
        regs[2] = z3.BitVecVal(mem_size, 64)
    regs[10] = z3.BitVecVal(STACK_BASE + STACK_SIZE, 64)
    machine = SymbolicMachine(spans, helpers or {}, indirect_calls)
    todo = [PathState(tuple(regs), mem0, z3.BoolVal(True), 0)]
    finished: list[tuple[Any, Any, Any]] = []  # (cond, r0, mem)
    fault = z3.BoolVal(False)
    complete = True
    while todo:
        state = todo.pop()
        machine.state = state
        outcome = _run_path(machine, code, todo, max_steps)
        fault = z3.Or(fault, state.fault)
        if outcome is None:
            complete = False
            continue
        finished.append((state.cond, machine.reg(0, state.pc), state.mem))
    for cond, r0 in machine.exits:
        finished.append((cond, r0, mem0))
    if not finished:
        return SymbolicResult(z3.BitVecVal(0, 64), mem0, z3.simplify(fault), 0, False, mem0)
    r0 = finished[-1][1]
    mem = finished[-1][2]
    for cond, value, m in reversed(finished[:-1]):
        r0 = z3.If(cond, value, r0)
        mem = z3.If(cond, m, mem)
    return SymbolicResult(z3.simplify(r0), mem, z3.simplify(fault), len(finished), complete,
                          mem0)


def _run_path(m: SymbolicMachine, code: dict[int, Insn], todo: list[PathState],
              max_steps: int) -> bool | None:
    """Run `m.state` to its end; forks go onto `todo`. None when the step bound is hit."""
    s = m.state
    assert s is not None
    while True:
        if z3.is_false(s.cond):
            return False
        insn = code.get(s.pc)
        if insn is None:
            raise st.Unsupported(f"insn {s.pc}: control reaches a slot that holds no instruction")
        s.steps += 1
        if s.steps > max_steps:
            return None
        if isinstance(insn, CallReg) and m.indirect_calls:
            target = z3.simplify(m.reg(insn.reg, s.pc))
            if not z3.is_bv_value(target):
                raise st.Unsupported(f"insn {s.pc}: callx through a symbolic register")
            m.call_helper(target.as_long(), s.pc)
            s.pc += 1
            continue
        out = st.step(m, insn, s.pc)
        match out:
            case st.Next():
                s.pc += slot_count(insn)
            case st.Goto_(target=target):
                s.pc = target
            case st.Branch(cond=cond, target=target, fallthrough=fallthrough):
                cond = z3.simplify(cond)
                if z3.is_true(cond):
                    s.pc = target
                elif z3.is_false(cond):
                    s.pc = fallthrough
                else:
                    todo.append(replace(s, cond=z3.simplify(z3.And(s.cond, z3.Not(cond))),
                                        pc=fallthrough))
                    s.cond = z3.simplify(z3.And(s.cond, cond))
                    s.pc = target
            case st.MayGotoOut(fallthrough=fallthrough):
                s.pc = fallthrough  # the loop budget is far beyond any bound used here
            case st.CallLocal(target=target, ret=ret):
                if len(s.frames) + 1 >= MAX_CALL_FRAMES:
                    raise st.Unsupported(f"insn {s.pc}: more than {MAX_CALL_FRAMES} call frames")
                s.frames = (*s.frames, (ret, s.regs[6:11]))
                regs = list(s.regs)
                top = STACK_BASE + len(s.frames) * STACK_STRIDE + STACK_SIZE
                regs[10] = z3.BitVecVal(top, 64)
                s.regs = tuple(regs)
                s.pc = target
            case st.Return():
                if not s.frames:
                    return True
                (ret, saved), s.frames = s.frames[-1], s.frames[:-1]
                regs = list(s.regs)
                regs[6:11] = saved
                for r in range(1, 6):
                    regs[r] = None
                s.regs = tuple(regs)
                s.pc = ret


def conformance_helpers() -> dict[int, HelperModel]:
    """bpf_conformance's helper 5, `unwind`: end the program with 0 when r1 is 0."""

    def unwind(m: SymbolicMachine, index: int) -> Any:
        r1 = m.reg(1, index)
        m.exit_when(r1 == 0, z3.BitVecVal(0, 64))
        return r1

    return {5: unwind}
