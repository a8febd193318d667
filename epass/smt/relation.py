"""What two programs' states have in common at paired loop headers, and how loop
pairing (loops.py) finds it.

A `Relation` says, at each pair of headers, which of the original's registers equal
which of the transformed's, what some of the original's registers hold (a constant,
or a pointer into one object's 64 KiB block), and which stack bytes only the
transformed program writes (each program has its own there). `infer` finds the
strongest relation made of such facts that every segment keeps (Houdini): start from
every candidate, run the segments from states that satisfy them, drop each fact some
pair of paths breaks on arriving at a header, again until none breaks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import z3

from epass.isa import Insn
from epass.semantics import step as st
from epass.semantics.memory import MAP_STRIDE, STACK_BASE, STACK_SIZE, MemoryFault
from epass.semantics.symbolic import (
    ETH_HLEN,
    MAX_PACKET,
    Segment,
    SymbolicEnv,
    SymbolicResult,
    distinct_keys,
    run_symbolic,
)
from epass.smt.solver import PortfolioSolver

MAX_SEGMENT_STEPS = 20_000  # one iteration of a loop body, over all its paths
# the memory model places each object (a stack frame, a map value, the packet, the
# context, a ring buffer record) in a 64 KiB block of its own: a pointer's bits above
# say which object it points into
BLOCK_SHIFT = MAP_STRIDE.bit_length() - 1


@dataclass(frozen=True)
class Programs:
    original: list[Insn]
    transformed: list[Insn]
    hp: list[int]  # loop headers of the original
    ht: list[int]  # and of the transformed program
    env: SymbolicEnv


@dataclass(frozen=True)
class Relation:
    """What the two programs' states have in common at each pair of loop headers.

    `edges[k]`: pairs (i, j), the original's r`i` equal to the transformed's r`j` at header
    k (r10, the frame pointer, is always equal). `facts[k]`: what one of the original's
    registers holds there, ("const", i, value) or ("block", i, block): r`i` points into
    that 64 KiB block (BLOCK_SHIFT), one object. Memory is equal but at `private`,
    addresses of frame 0 that only the transformed program writes (a pass's counter
    slot): each program has its own bytes there."""

    edges: tuple[frozenset[tuple[int, int]], ...]
    facts: tuple[frozenset[tuple[str, int, int]], ...] = ()
    private: tuple[int, ...] = ()

    @staticmethod
    def identity(headers: int) -> Relation:
        return Relation(tuple(frozenset((r, r) for r in range(10)) for _ in range(headers)),
                        tuple(frozenset() for _ in range(headers)))

    def describe(self) -> str:
        parts = []
        for k, edges in enumerate(self.edges):
            # the original's registers related by another name only (not the constants,
            # such as unset registers, which many registers equal)
            constant = {i for kind, i, _ in self.facts[k] if kind == "const"}
            moved = sorted((i, j) for i, j in edges if i != j and (i, i) not in edges and
                           i not in constant)
            if moved:
                parts.append(f"at header {k + 1} " +
                             " ".join(f"r{i}=r{j}" for i, j in moved))
        if self.private:
            parts.append(f"{len(self.private)} stack byte(s) of the transformed program's "
                         "own")
        return "; ".join(parts) or "registers equal by number"


def _start(k: int, relation: Relation, pcs: tuple[int, int]) -> tuple[Segment, Segment]:
    """Fresh states at header k that satisfy `relation`: one variable per class of
    related registers (a constant, or its high bits fixed when it points into a known
    object), memory shared but at the private bytes."""
    classes = _Classes()
    for i, j in relation.edges[k]:
        classes.join(("p", i), ("t", j))
    known: dict[tuple[str, int], tuple[str, int]] = {}
    for kind, i, value in sorted(relation.facts[k]):  # "block" < "const": constants win
        known[classes.find(("p", i))] = (kind, value)
    regs: dict[str, list] = {}
    for side in ("p", "t"):
        regs[side] = []
        for r in range(10):
            root = classes.find((side, r))
            name = f"cut{k}_{root[0]}{root[1]}"
            kind, value = known.get(root, ("", 0))
            if kind == "const":
                regs[side].append(z3.BitVecVal(value, 64))
            elif kind == "block":  # the object's block, and fresh bits within it
                regs[side].append(z3.Concat(z3.BitVecVal(value, 64 - BLOCK_SHIFT),
                                            z3.BitVec(name, BLOCK_SHIFT)))
            else:
                regs[side].append(z3.BitVec(name, 64))
        regs[side].append(z3.BitVecVal(STACK_BASE + STACK_SIZE, 64))  # frame 0's r10
    mem = z3.Array(f"cut{k}_mem", z3.BitVecSort(64), z3.BitVecSort(8))
    own = {}
    for side in ("p", "t"):
        own[side] = mem
        for a in relation.private:
            own[side] = z3.Store(own[side], z3.BitVecVal(a, 64),
                                 z3.BitVec(f"cut{k}_{side}_own{a:#x}", 8))
    hashes = z3.Array(f"cut{k}_hash", z3.BitVecSort(64), z3.BitVecSort(8))
    calls = z3.BitVec(f"cut{k}_calls", 64)
    return (Segment(pcs[0], regs["p"], own["p"], hashes, calls),
            Segment(pcs[1], regs["t"], own["t"], hashes, calls))


class _Classes:
    """Union-find over registers ("p", i) and ("t", j)."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(self, x: tuple[str, int]) -> tuple[str, int]:
        while self.parent.get(x, x) != x:
            x = self.parent[x]
        return x

    def join(self, a: tuple[str, int], b: tuple[str, int]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def run_segment(programs: Programs, k: int, relation: Relation | None
         ) -> tuple[SymbolicResult, SymbolicResult]:
    """The segment pair from header k (-1: the entry) under `relation`."""
    start_p = start_t = None
    if k >= 0:
        assert relation is not None
        start_p, start_t = _start(k, relation, (programs.hp[k], programs.ht[k]))
    env = programs.env
    p = run_symbolic(programs.original,
                     _with(env, start_p, {s: n for n, s in enumerate(programs.hp)}))
    t = run_symbolic(programs.transformed,
                     _with(env, start_t, {s: n for n, s in enumerate(programs.ht)}))
    return p, t


# the observation at a path's end (symbolic._observation): the cut point in bits 767-704,
# then r0-r10, 64 bits each
def _cut_of(obs: Any) -> Any:
    return z3.Extract(767, 704, obs)


def _reg_of(obs: Any, r: int) -> Any:
    return z3.Extract(703 - 64 * r, 640 - 64 * r, obs)


def _block_of(value: Any) -> Any:
    return z3.Extract(63, BLOCK_SHIFT, value)


def projected(p: SymbolicResult, t: SymbolicResult, relation: Relation
               ) -> tuple[SymbolicResult, SymbolicResult]:
    """The results as the checks compare them at cut points: each of the original's
    registers that the header relates, against one related register of the transformed
    program (`infer` proved the relation's other facts); the private bytes left out."""
    zero = z3.BitVecVal(0, 64)
    obs_p, obs_t = p.r0, t.r0
    for k in range(len(relation.edges) - 1, -1, -1):
        partner: dict[int, int] = {}
        for i, j in sorted(relation.edges[k]):
            partner.setdefault(i, j)
        at_p = [_reg_of(p.r0, i) if i in partner else zero for i in range(10)]
        at_t = [_reg_of(t.r0, partner[i]) if i in partner else zero for i in range(10)]
        cut = z3.BitVecVal(k, 64)
        obs_p = z3.If(_cut_of(p.r0) == cut, z3.Concat(cut, *at_p, _reg_of(p.r0, 10)), obs_p)
        obs_t = z3.If(_cut_of(t.r0) == cut, z3.Concat(cut, *at_t, _reg_of(t.r0, 10)), obs_t)
    private = set(relation.private)

    def shared(written: list) -> list:
        return [(a, tag) for a, tag in written
                if not (z3.is_bv_value(a) and a.as_long() in private)]

    return (replace(p, r0=z3.simplify(obs_p), written=shared(p.written)),
            replace(t, r0=z3.simplify(obs_t), written=shared(t.written)))


MAX_ROUNDS = 40  # of dropping the facts that do not hold
INFER_SECONDS = 10.0  # at most, for infer's Z3 questions


def infer(programs: Programs, seconds: float = INFER_SECONDS) -> Relation | None:
    """The strongest relation made of candidate facts that every segment keeps (Houdini):
    start with every register pair (i, j), and with the value and the object of each of
    the original's registers at one arrival at the header; run the segments; drop the
    facts some segment's end breaks; again until none breaks. Headers the entry does not
    reach get their value candidates from an arrival once the rest is settled. Memory
    only the transformed program writes (constant stack addresses of frame 0) becomes
    private. None when Z3 cannot tell in time or a segment runs past the step bound."""
    hp = programs.hp
    deadline = time.perf_counter() + seconds
    every = frozenset((i, j) for i in range(10) for j in range(10))
    try:
        entry = run_segment(programs, -1, None)
        seen: list[frozenset | None] = [None] * len(hp)  # value candidates, once arrived
        _candidates(entry[0], seen, deadline)
        relation = Relation(tuple(every for _ in hp),
                            tuple(f or frozenset() for f in seen), _private([entry]))
        while True:
            settled = _houdini(programs, entry, relation, deadline)
            if settled is None:
                return None
            relation, runs = settled
            fresh = [k for k in range(len(hp)) if seen[k] is None]
            for p, _ in runs[1:]:
                _candidates(p, seen, deadline)
            seeded = [k for k in fresh if seen[k] is not None]
            if not seeded:
                return relation
            # with its values known, a header's register pairs get another chance too
            relation = replace(
                relation,
                edges=tuple(every if k in seeded else e for k, e in enumerate(relation.edges)),
                facts=tuple(seen[k] if k in seeded else f for k, f in enumerate(relation.facts)))
    except (st.Unsupported, MemoryFault):
        return None


def _houdini(programs: Programs, entry: tuple[SymbolicResult, SymbolicResult],
             relation: Relation, deadline: float
             ) -> tuple[Relation, list[tuple[SymbolicResult, SymbolicResult]]] | None:
    """Drop the facts of `relation` the segments break until none does: the relation and
    the segments' runs under it."""
    for _ in range(MAX_ROUNDS):
        runs = [entry] + [run_segment(programs, k, relation) for k in range(len(programs.hp))]
        if not all(p.complete and t.complete for p, t in runs):
            return None
        edges = [set(e) for e in relation.edges]
        facts = [set(f) for f in relation.facts]
        for p, t in runs:
            broken = _broken(p, t, relation, deadline)
            if broken is None:
                return None
            for k, fact in broken:
                if fact[0] == "edge":
                    edges[k].discard(fact[1:])
                else:
                    facts[k].discard(fact)
        # a byte only the transformed program writes stops being compared
        private = tuple(sorted(set(relation.private) | set(_private(runs))))
        new = Relation(tuple(frozenset(e) for e in edges),
                       tuple(frozenset(f) for f in facts), private)
        if new == relation:
            return relation, runs
        relation = new
    return None


def _candidates(p: SymbolicResult, seen: list[frozenset | None], deadline: float) -> None:
    """Candidate facts for the headers `seen` has none for yet, where this run of the
    original arrives: each register's value and block at one such arrival."""
    solver = _solver(p, p)
    for k in range(len(seen)):
        left = deadline - time.perf_counter()
        if seen[k] is not None or left <= 0:
            continue
        # does not arrive (or Z3 gave up)
        if solver.check(_cut_of(p.r0) == k, seconds=left) != z3.sat:
            continue
        model = solver.model()
        facts = set()
        for i in range(10):
            value = model.eval(_reg_of(p.r0, i), model_completion=True).as_long()
            facts |= {("const", i, value), ("block", i, value >> BLOCK_SHIFT)}
        seen[k] = frozenset(facts)


def _private(runs: list[tuple[SymbolicResult, SymbolicResult]]) -> tuple[int, ...]:
    """Constant frame-0 stack addresses the transformed program writes and the original
    does not, in these runs."""
    frame = range(STACK_BASE, STACK_BASE + STACK_SIZE)

    def constant(written: list) -> set[int]:
        return {a.as_long() for a, _ in written if z3.is_bv_value(a) and a.as_long() in frame}

    wrote_p = set().union(*(constant(p.written) for p, _ in runs))
    wrote_t = set().union(*(constant(t.written) for _, t in runs))
    return tuple(sorted(wrote_t - wrote_p))


def _solver(p: SymbolicResult, t: SymbolicResult) -> PortfolioSolver:
    """The inputs the checks consider: a packet of a possible length, hash map keys told
    apart, and no fault of the original (the verifier keeps such inputs away)."""
    solver = PortfolioSolver(0)  # each check gives its own time
    if p.packet_len is not None and not z3.is_bv_value(p.packet_len):
        solver.add(z3.ULE(ETH_HLEN, p.packet_len), z3.ULE(p.packet_len, MAX_PACKET))
    solver.add(z3.Not(p.fault), *distinct_keys(p, t))
    return solver


def _broken(p: SymbolicResult, t: SymbolicResult, relation: Relation, deadline: float
            ) -> set[tuple[int, tuple]] | None:
    """The facts of `relation`, as (header, ("edge", i, j)) or (header, fact), that a
    pair of paths of this segment breaks on arriving at a header together (None: Z3 gave
    up)."""
    solver = _solver(p, t)
    candidates = {}
    for k, edges in enumerate(relation.edges):
        cut = z3.BitVecVal(k, 64)
        here = z3.And(_cut_of(p.r0) == cut, _cut_of(t.r0) == cut)
        for i, j in edges:
            candidates[(k, ("edge", i, j))] = z3.And(here,
                                                     _reg_of(p.r0, i) != _reg_of(t.r0, j))
        for kind, i, value in relation.facts[k]:
            held = _reg_of(p.r0, i) if kind == "const" else _block_of(_reg_of(p.r0, i))
            candidates[(k, (kind, i, value))] = z3.And(here, held != value)
    candidates = {key: z3.simplify(c) for key, c in candidates.items()}
    candidates = {key: c for key, c in candidates.items() if not z3.is_false(c)}
    broken: set[tuple[int, tuple]] = set()
    while candidates:
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        outcome = solver.check(z3.Or(*candidates.values()), seconds=left)
        if outcome == z3.unsat:
            break
        if outcome != z3.sat:
            return None
        model = solver.model()
        hit = {key for key, c in candidates.items()
               if z3.is_true(model.eval(c, model_completion=True))}
        broken |= hit
        candidates = {key: c for key, c in candidates.items() if key not in hit}
    return broken


def _with(env: SymbolicEnv, start: Segment | None, cuts: dict[int, int]) -> SymbolicEnv:
    return SymbolicEnv(prog_type=env.prog_type, packet_len=env.packet_len, maps=env.maps,
                       strict_helpers=env.strict_helpers, max_steps=MAX_SEGMENT_STEPS,
                       max_total_steps=MAX_SEGMENT_STEPS, start=start, cuts=cuts)
