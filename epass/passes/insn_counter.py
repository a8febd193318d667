"""insn_counter: abort a program that runs more instructions than a limit.

The verifier bounds how much of a program it explores, not how long a run
takes: a bounded loop may still run for millions of instructions. This pass
counts, at run time, the instructions each call frame executes and aborts
with `code` once the count passes `limit`.

What is counted: per call frame. A function with a loop gets its own 8-byte
counter in a new stack slot below the frame it already uses; a bpf-to-bpf
callee (or a bpf_loop callback) starts afresh on every call and its
instructions are not added to the caller's count. Sizes are instructions and
terminators as lifted (`arg`/`undef` are not code; the counter's own
instructions are not counted). A block on no cycle runs at most once per
call, so the counter starts at the summed size of those blocks. In a loop,
by default only the loop headers update the counter: each adds the longest
stretch a run can go from it before it meets a header again (every cycle
passes one), so one update per trip stands for the whole trip; a stretch
entered from outside the loop before any header is charged up front like
loop-free code. With `exact=1` every block on a cycle adds its own size as
it runs instead (slower; the count then runs ahead only by loop-free code).
Either way the count never lags the instructions run. The limit is
compared only in loop headers (the targets of retreating edges in a
depth-first order, irreducible loops included): only a cycle can run long,
and a function without loops is left untouched. See
docs/passes/insn_counter.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.errors import EpassError
from epass.ir.builder import Builder
from epass.ir.cfg import in_cycles, reverse_postorder
from epass.ir.model import FP, STACK_SIZE, Arg, Block, Function, Module, Undef
from epass.isa.opcodes import AluOp, JmpOp
from epass.passes.registry import Option, Pass, register

IMM_MAX = 2**31 - 1  # larger limits need an lddw: compare immediates are 32-bit signed


@dataclass(frozen=True)
class Plan:
    """What the pass does to one function, decided before any block changes."""

    slot: int  # fp offset of the counter
    start: int  # what the counter starts at: code that runs at most once per call
    sizes: dict[Block, int]  # what each counting block adds when it runs
    headers: frozenset[Block]  # blocks that compare with the limit


def block_size(block: Block) -> int:
    return sum(1 for inst in block.insts if not isinstance(inst, Arg | Undef))


def loop_headers(func: Function) -> frozenset[Block]:
    """Targets of retreating edges: an edge to a block not later in reverse post-order."""
    order = reverse_postorder(func)
    index = {b: i for i, b in enumerate(order)}
    return frozenset(s for b in order for s in b.successors if index[s] <= index[b])


def stretches(order: list[Block], looping: set[Block],
              headers: frozenset[Block]) -> dict[Block, int]:
    """For each block on a cycle, the most instructions a run executes from its start
    until it meets a loop header or leaves the loops. Without the edges into headers
    the looping blocks form a DAG (every cycle passes a header), whose edges all go
    forward in reverse post-order: walk it backwards."""
    longest: dict[Block, int] = {}
    for b in reversed(order):
        if b in looping:
            longest[b] = block_size(b) + max((longest[s] for s in b.successors
                                              if s in looping and s not in headers),
                                             default=0)
    return longest


def plan(func: Function, exact: bool = False) -> Plan | None:
    """What to insert, or None for a function without loops (it cannot run long)."""
    headers = loop_headers(func)
    if not headers:
        return None
    used = -(-func.frame_size() // 8) * 8  # round up: the counter is an aligned u64
    if used + 8 > STACK_SIZE:
        raise EpassError(f"insn_counter: function {func.name} uses {func.frame_size()} "
                         f"bytes of stack; no room for an 8-byte counter within "
                         f"{STACK_SIZE}")
    looping, order = in_cycles(func), reverse_postorder(func)
    start = sum(block_size(b) for b in order if b not in looping)
    if exact:
        return Plan(-(used + 8), start, {b: block_size(b) for b in order if b in looping},
                    headers)
    longest = stretches(order, looping, headers)
    # loops entered other than at a header: charge that first stretch up front; the edge
    # is taken at most once per call (its source is on no cycle)
    start += sum(longest[s] for b in order if b not in looping for s in b.successors
                 if s in looping and s not in headers)
    return Plan(-(used + 8), start, {h: longest[h] for h in order if h in headers}, headers)


def instrument(func: Function, p: Plan, limit: int, code: int) -> None:
    b = Builder(func.entry, 0)
    # after the arguments are read: they must stay where the calling convention put them
    while isinstance(func.entry.insts[b.index], Arg | Undef):
        b.index += 1
    # The start, then its top byte written again (0 already: counts stay below 2^56).
    # That byte store does not line up with the 8-byte slot, so the verifier forgets the
    # constant and keeps "some bytes" (STACK_MISC): every count loaded from the slot is
    # an unknown number to it. Were it a known constant, each comparison with the limit
    # would have a known outcome, the count would be marked precise, and paths of
    # different lengths would never prune (loop_bounded is rejected as too large that
    # way). An atomic add would hide it too, but a locked add costs several plain ones
    b.stack_store(p.slot, p.start)
    b.store(1, FP, p.slot + 7, 0)
    for block, size in p.sizes.items():
        b = Builder(block, 0)
        count = b.alu(AluOp.ADD, b.stack_load(p.slot), size)
        b.stack_store(p.slot, count)
        if block in p.headers:
            bound = limit if limit <= IMM_MAX else b.lddw(limit)
            b.guard(JmpOp.GT, count, bound, code=code)


def run(module: Module, options: dict[str, int]) -> None:
    limit, code, exact = options["limit"], options["code"], options["exact"]
    if not 0 <= limit < 2**63:
        raise EpassError(f"insn_counter: limit must be between 0 and 2^63-1, got {limit}")
    if not -2**31 <= code <= IMM_MAX:
        raise EpassError(f"insn_counter: code must fit in 32 signed bits, got {code}")
    if exact not in (0, 1):
        raise EpassError(f"insn_counter: exact must be 0 or 1, got {exact}")
    plans = [(f, plan(f, bool(exact))) for f in module.functions]  # errors before changes
    for func, p in plans:
        if p is not None:
            instrument(func, p, limit, code)


register(Pass(
    name="insn_counter",
    kind="safety",
    round="final",
    description="count executed instructions per call frame and abort past a limit",
    run=run,
    options=(Option("limit", 1000000, "abort once a frame has run more instructions"),
             Option("code", 0, "the return value when the limit is passed"),
             Option("exact", 0, "1: every block in a loop counts as it runs (slower); 0: "
                                "each loop header adds the longest trip")),
))
