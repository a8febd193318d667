"""Loop pairing: prove programs with loops equivalent one loop iteration at a time.

Unrolling (prove's default) gives up on a loop that runs more often than
the bound. For a transformation that keeps the loop structure, this mode
cuts both programs at their loop headers (the targets of backward jumps),
pairs the k-th header of one with the k-th header of the other, and
proves every *segment*: starting from the entry, or from a pair of headers
with one shared state of fresh variables (registers r0-r10 equal by
number, all memory, the packet length and the number of helper calls so
far), both programs reach the same next cut point with the same registers
and memory, or exit with the same results (r0, packet, maps, context,
helper calls). By induction over the segments a run takes, the programs
then agree on every input, whatever the trip counts.

The relation is fixed (equal registers, equal memory), so the mode proves
only; a segment that fails means "not shown", never a counterexample of
the whole programs: the state it starts from may be unreachable.
Programs with bpf-to-bpf calls are left to unrolling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import z3

from epass.isa import Call, CallKind, Insn, jump_offset, slot_indices
from epass.isa.insn import Goto, Jump, MayGoto
from epass.semantics import step as st
from epass.semantics.memory import STACK_BASE, STACK_SIZE, MemoryFault
from epass.semantics.symbolic import Segment, SymbolicEnv, SymbolicResult, run_symbolic

MAX_SEGMENT_STEPS = 20_000  # one iteration of a loop body, over all its paths


@dataclass
class Pairing:
    """The outcome of loop pairing: `proven`, or why not (`reason`)."""

    proven: bool
    reason: str
    loops: int
    segments: list[tuple[SymbolicResult, SymbolicResult]]


def loop_headers(insns: list[Insn]) -> list[int]:
    """Slots that a backward (or self) jump targets, in slot order."""
    headers = set()
    for slot, insn in zip(slot_indices(insns), insns, strict=True):
        off = jump_offset(insn)
        if isinstance(insn, Jump | Goto | MayGoto) and off is not None and off < 0:
            headers.add(slot + 1 + off)
    return sorted(headers)


def _has_local_calls(insns: list[Insn]) -> bool:
    return any(isinstance(i, Call) and i.kind == CallKind.LOCAL for i in insns)


Check = Callable[[SymbolicResult, SymbolicResult], tuple[bool, str]]


def segments(original: list[Insn], transformed: list[Insn], env: SymbolicEnv,
             check: Check) -> Pairing:
    """Run every segment pair and hand it to `check(p, t) -> (ok, reason)`."""
    hp, ht = loop_headers(original), loop_headers(transformed)
    if len(hp) != len(ht):
        return Pairing(False, f"the programs have {len(hp)} and {len(ht)} loop headers", 0,
                       [])
    if _has_local_calls(original) or _has_local_calls(transformed):
        return Pairing(False, "loop pairing does not handle bpf-to-bpf calls", len(hp), [])
    cuts_p = {slot: k for k, slot in enumerate(hp)}
    cuts_t = {slot: k for k, slot in enumerate(ht)}
    done = []
    for k in range(-1, len(hp)):  # -1: the segment from the entry
        start_p = start_t = None
        if k >= 0:
            regs = [z3.BitVec(f"cut{k}_r{r}", 64) for r in range(10)]
            regs.append(z3.BitVecVal(STACK_BASE + STACK_SIZE, 64))  # frame 0's r10
            mem = z3.Array(f"cut{k}_mem", z3.BitVecSort(64), z3.BitVecSort(8))
            hashes = z3.Array(f"cut{k}_hash", z3.BitVecSort(64), z3.BitVecSort(8))
            calls = z3.BitVec(f"cut{k}_calls", 64)
            start_p = Segment(hp[k], list(regs), mem, hashes, calls)
            start_t = Segment(ht[k], list(regs), mem, hashes, calls)
        try:
            p = run_symbolic(original, _with(env, start_p, cuts_p))
            t = run_symbolic(transformed, _with(env, start_t, cuts_t))
        except (st.Unsupported, MemoryFault) as e:
            return Pairing(False, str(e), len(hp), done)
        where = "the entry" if k < 0 else f"loop header {k + 1} (insn {hp[k]} and {ht[k]})"
        if not (p.complete and t.complete):
            return Pairing(False, f"the segment from {where} runs past the step bound",
                           len(hp), done)
        ok, reason = check(p, t)
        done.append((p, t))
        if not ok:
            return Pairing(False, f"the segment from {where}: {reason}", len(hp), done)
    return Pairing(True, f"{len(hp)} loop(s) paired, {len(done)} segments proven", len(hp),
                   done)


def _with(env: SymbolicEnv, start: Segment | None, cuts: dict[int, int]) -> SymbolicEnv:
    return SymbolicEnv(prog_type=env.prog_type, packet_len=env.packet_len, maps=env.maps,
                       strict_helpers=env.strict_helpers, max_steps=MAX_SEGMENT_STEPS,
                       max_total_steps=MAX_SEGMENT_STEPS, start=start, cuts=cuts)
