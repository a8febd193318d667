"""stack_depth: shorten a call chain the verifier finds too deep or too big, by inlining.

Answers "the call stack of N frames is too deep" (more than 8 frames on one chain) and
"combined stack size of N calls is S. Too large" (the frames of one chain above 512
bytes). The rewrite inlines a bpf-to-bpf call (epass/ir/inline.py): the callee's blocks
are copied into the caller, so the chain has one frame fewer. For the depth message it
is the rejected call; for the size message each call, biggest caller + callee frames
first. The callee's stack slots go below the caller's; when nothing the caller runs from
the call on touches its frame, they reuse it from the top instead (dead slots), so the
merged frame is max(caller, callee) rather than their sum.

Why behaviour is kept (what Z3 must prove): the inlined code runs the same instructions
on the same values; only the frame its slots live in differs. Z3 compares return
values, packet, maps and helper calls, so a callee that hands a pointer to its own stack
to a helper (bpf_skb_load_bytes into a buffer) is not proven: the prover compares helper
arguments as values, and the buffer's address changed.
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.inline import callee, inline_call, stack_free_after
from epass.isa.opcodes import CallKind
from epass.kernel.verifier_log import ErrorClass
from epass.repair.site import Site
from epass.repair.strategies import Candidate, Strategy, register

MAX_CANDIDATES = 4


def _calls(module: ir.Module) -> list[ir.Call]:
    return [i for f in module.functions for i in f.instructions()
            if isinstance(i, ir.Call) and i.kind == CallKind.LOCAL]


def _at(module: ir.Module, origin: int) -> ir.Call:
    return next(c for c in _calls(module) if c.origin == origin)


def _shift(call: ir.Call, reuse: bool) -> int:
    """Where the callee's frame goes in the caller's: below the caller's slots, or from the
    top when the caller's frame is dead from the call on."""
    return 0 if reuse else -(-call.block.function.frame_size() // 8) * 8


def propose(site: Site) -> list[Candidate]:
    module = site.module
    if site.error.error_class == ErrorClass.CALL_STACK_TOO_DEEP:
        calls = [site.inst] if callee(module, site.inst) is not None else []
    else:
        def chain(c: ir.Call) -> int:
            g = callee(module, c)
            return c.block.function.frame_size() + (g.frame_size() if g else 0)

        calls = sorted(_calls(module), key=chain, reverse=True)[:MAX_CANDIDATES]
    out = []
    for call in calls:
        assert isinstance(call, ir.Call)
        g = callee(module, call)
        if call.origin is None or g is None or g is call.block.function:
            continue
        origin, caller = call.origin, call.block.function.name
        options = [False, True] if stack_free_after(call) else [False]
        if site.error.error_class == ErrorClass.STACK_TOO_LARGE:
            options.reverse()  # the size message wants the frames merged: reuse first
        for reuse in options:
            def inline(s: Site, origin: int = origin, reuse: bool = reuse) -> None:
                c = _at(s.module, origin)
                inline_call(s.module, c, _shift(c, reuse))

            where = "reusing the caller's dead frame" if reuse else \
                f"below the caller's {call.block.function.frame_size()} bytes"
            out.append(Candidate(f"inline {g.name} into {caller} at insn {origin} (its "
                                 f"{g.frame_size()} stack bytes {where})", inline))
    return out


register(Strategy(
    name="stack_depth",
    classes=frozenset({ErrorClass.CALL_STACK_TOO_DEEP, ErrorClass.STACK_TOO_LARGE}),
    description="inline a bpf-to-bpf call: one frame fewer on the chain, dead slots reused",
    propose=propose,
))
