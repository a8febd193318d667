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

When registers equal by number do not hold at the headers (a register
allocator renamed them, a pass keeps a counter of its own), `infer` looks
for a relation that does: pairs of registers, values and objects the
original's registers hold, stack bytes only the transformed program
writes; it keeps only facts every segment preserves (Houdini).

The mode proves only; a segment that fails means "not shown", never a
counterexample of the whole programs: the state it starts from may be
unreachable. Programs with bpf-to-bpf calls or callbacks are left to
unrolling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from epass.isa import Call, CallKind, Insn, LoadImm64, PseudoKind, jump_offset, slot_indices
from epass.isa.insn import Goto, Jump, MayGoto
from epass.semantics import step as st
from epass.semantics.memory import MemoryFault
from epass.semantics.symbolic import SymbolicEnv, SymbolicResult
from epass.smt.relation import INFER_SECONDS, Programs, Relation, infer, projected, run_segment


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
    """bpf-to-bpf calls, or callbacks (bpf_loop, for_each_map_elem): a segment that starts
    at a header inside a function has no frames, and would take its return for the
    program's exit, never comparing what the caller does next."""
    return any(isinstance(i, Call) and i.kind == CallKind.LOCAL or
               isinstance(i, LoadImm64) and i.kind == PseudoKind.FUNC for i in insns)


Check = Callable[[SymbolicResult, SymbolicResult], tuple[bool, str]]


def segments(original: list[Insn], transformed: list[Insn], env: SymbolicEnv,
             check: Check, deadline: float | None = None, inferred: bool = True) -> Pairing:
    """Run every segment pair and hand it to `check(p, t) -> (ok, reason)`: with registers
    equal by number first; when that fails (and `inferred`), with the relation `infer`
    finds."""
    hp, ht = loop_headers(original), loop_headers(transformed)
    if len(hp) != len(ht):
        return Pairing(False, f"the programs have {len(hp)} and {len(ht)} loop headers", 0,
                       [])
    if _has_local_calls(original) or _has_local_calls(transformed):
        return Pairing(False, "loop pairing does not handle bpf-to-bpf calls or callbacks",
                       len(hp), [])
    programs = Programs(original, transformed, hp, ht, env)
    identity = Relation.identity(len(hp))
    first = _pair(programs, identity, check)
    if first.proven or not inferred:
        return first
    left = INFER_SECONDS if deadline is None else min(INFER_SECONDS,
                                                      deadline - time.perf_counter())
    relation = infer(programs, left) if left > 0 else None
    if relation is None or relation == identity:
        return first
    second = _pair(programs, relation, check)
    if second.proven:
        second.reason += f" ({relation.describe()})"
    else:
        second.reason = (f"{first.reason}; with the relation inferred "
                         f"({relation.describe()}), {second.reason}")
    return second


def _pair(programs: Programs, relation: Relation, check: Check) -> Pairing:
    """Prove every segment under `relation`."""
    hp, ht = programs.hp, programs.ht
    identity = relation == Relation.identity(len(hp))
    done = []
    for k in range(-1, len(hp)):  # -1: the segment from the entry
        try:
            p, t = run_segment(programs, k, relation)
        except (st.Unsupported, MemoryFault) as e:
            return Pairing(False, str(e), len(hp), done)
        where = "the entry" if k < 0 else f"loop header {k + 1} (insn {hp[k]} and {ht[k]})"
        if not (p.complete and t.complete):
            return Pairing(False, f"the segment from {where} runs past the step bound",
                           len(hp), done)
        if not identity:
            p, t = projected(p, t, relation)
        ok, reason = check(p, t)
        done.append((p, t))
        if not ok:
            return Pairing(False, f"the segment from {where}: {reason}", len(hp), done)
    return Pairing(True, f"{len(hp)} loop(s) paired, {len(done)} segments proven", len(hp),
                   done)
