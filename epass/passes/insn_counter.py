"""insn_counter: abort a program that runs more instructions than a limit.

The verifier bounds how much of a program it explores, not how long a run
takes: a bounded loop may still run for millions of instructions. This pass
counts, at run time, the instructions each call frame executes and aborts
with `code` once the count passes `limit`.

What is counted: per call frame. A function with a loop gets its own 8-byte
counter in a new stack slot below the frame it already uses; a bpf-to-bpf
callee (or a bpf_loop callback) starts afresh on every call and its
instructions are not added to the caller's count. Only blocks on a cycle pay
at run time: each adds its size when it starts (its instructions and
terminator as lifted; `arg`/`undef` are not code; the counter's own
instructions are not counted). A block on no cycle runs at most once per
call, so the counter starts at the summed size of those blocks: it never
lags the true count, and runs ahead of it by at most the loop-free code not
(yet) run. The limit is compared only in loop headers (the targets of
retreating edges in a depth-first order, so every cycle has one, irreducible
loops included): only a cycle can run long. So a run may pass the limit by
up to one trip around a loop before the abort, and a function without loops
is left untouched. See docs/passes/insn_counter.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.errors import EpassError
from epass.ir.builder import Builder
from epass.ir.cfg import in_cycles, reverse_postorder
from epass.ir.model import FP, STACK_SIZE, Arg, Atomic, Block, Function, Module, Undef
from epass.isa.opcodes import AtomicOp, JmpOp
from epass.passes.registry import Option, Pass, register

IMM_MAX = 2**31 - 1  # larger limits need an lddw: compare immediates are 32-bit signed


@dataclass(frozen=True)
class Plan:
    """What the pass does to one function, decided before any block changes."""

    slot: int  # fp offset of the counter
    start: int  # the loop-free code's size: what the counter starts at
    sizes: dict[Block, int]  # instructions each block on a cycle adds when it runs
    headers: frozenset[Block]  # blocks that compare with the limit


def block_size(block: Block) -> int:
    return sum(1 for inst in block.insts if not isinstance(inst, Arg | Undef))


def loop_headers(func: Function) -> frozenset[Block]:
    """Targets of retreating edges: an edge to a block not later in reverse post-order."""
    order = reverse_postorder(func)
    index = {b: i for i, b in enumerate(order)}
    return frozenset(s for b in order for s in b.successors if index[s] <= index[b])


def plan(func: Function) -> Plan | None:
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
    return Plan(-(used + 8), start, {b: block_size(b) for b in order if b in looping}, headers)


def instrument(func: Function, p: Plan, limit: int, code: int) -> None:
    b = Builder(func.entry, 0)
    # after the arguments are read: they must stay where the calling convention put them
    while isinstance(func.entry.insts[b.index], Arg | Undef):
        b.index += 1
    b.stack_store(p.slot, p.start)
    for block, size in p.sizes.items():
        b = Builder(block, 0)
        # an atomic add, not load/add/store: it leaves the slot unknown to the verifier
        # (STACK_MISC), so paths of different lengths still look alike to state pruning
        b.insert(Atomic(AtomicOp.ADD, 8, p.slot, [FP, b.mov(size)], None))
        if block in p.headers:
            count = b.stack_load(p.slot)
            bound = limit if limit <= IMM_MAX else b.lddw(limit)
            b.guard(JmpOp.GT, count, bound, code=code)


def run(module: Module, options: dict[str, int]) -> None:
    limit, code = options["limit"], options["code"]
    if not 0 <= limit < 2**63:
        raise EpassError(f"insn_counter: limit must be between 0 and 2^63-1, got {limit}")
    if not -2**31 <= code <= IMM_MAX:
        raise EpassError(f"insn_counter: code must fit in 32 signed bits, got {code}")
    plans = [(f, plan(f)) for f in module.functions]  # all errors before any change
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
             Option("code", 0, "the return value when the limit is passed")),
))
