"""packet_recheck: compare with data_end again right before a packet access the verifier
could not tie to a comparison ("invalid access to packet, off=.. size=.., R2(..r=0)").

The check `if root + hi > data_end goto abort` gives the verifier the range it lacks;
data_end is loaded afresh from the context, so the check does not depend on which
register the program kept it in. `root` is the access's base without its constant
steps, and `hi` the far end of the accesses the check covers: the rejected one and,
in the wider candidates, every access through `root` that runs after it (in the
blocks it dominates, or only the rest of its block), so one round serves a group.

The verifier draws no range from a comparison when the pointer's variable part plus
its offset may exceed 0xffff (MAX_PACKET_OFF: a cursor advanced by a 16-bit length
from the packet). Then the pointer is re-derived first: `o = root - data` (any
scalar to the verifier), `if o > 0xffff - hi goto abort`, `root' = data + o` (a
bounded variable part), and the uses of `root` after the check read `root'`.

Z3 must show the checks never fire: the original program accesses [root + lo,
root + hi) on every input it does not fault on, so the packet reaches that far and
`o` is below the packet's length; and root' == root. Then the program is unchanged on
every input. The context is the entry function's first argument, so accesses in
subprograms are not handled.
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.cfg import Dominators
from epass.isa import insn as bc
from epass.isa.opcodes import AluOp, JmpOp
from epass.kernel.verifier_log import ErrorClass
from epass.repair.site import Site
from epass.repair.strategies import Candidate, Strategy, register
from epass.uapi import ProgType

SKB_TYPES = (ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB, ProgType.LWT_IN,
             ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.SK_SKB, ProgType.SOCKET_FILTER)
# where data and data_end sit in the context (struct xdp_md, struct __sk_buff)
DATA = {ProgType.XDP: 0} | {t: 76 for t in SKB_TYPES}
DATA_END = {ProgType.XDP: 4} | {t: 80 for t in SKB_TYPES}
MAX_PACKET_OFF = 0xFFFF
ACCESSES = (ir.Load, ir.Store, ir.Atomic)
SCOPES = ("after", "block", "site")  # which accesses one check covers, widest first


def context(func: ir.Function) -> ir.Value | None:
    """The entry function's context argument (r1 at entry)."""
    if not func.is_main:
        return None
    return next((i.result for i in func.entry.insts if isinstance(i, ir.Arg) and i.index == 1),
                None)


def _step(inst: ir.Inst | ir.Block | None) -> tuple[ir.Value, int] | None:
    """(source, c) when `inst` computes source + c (a 64-bit copy or constant add/sub)."""
    if not isinstance(inst, ir.Alu) or inst.bits != 64 or \
            not isinstance(inst.operands[0], ir.Value):
        return None
    if inst.op == AluOp.MOV:
        return inst.operands[0], 0
    if inst.op in (AluOp.ADD, AluOp.SUB) and isinstance(inst.operands[1], int):
        return inst.operands[0], inst.operands[1] * (1 if inst.op == AluOp.ADD else -1)
    return None


def root_of(value: ir.Value) -> tuple[ir.Value, int]:
    """The value `value` is a constant step from, and the step."""
    delta = 0
    while (step := _step(value.definition)) is not None:
        value, delta = step[0], delta + step[1]
    return value, delta


def accesses(root: ir.Value) -> list[tuple[ACCESSES, int]]:
    """Every access through `root` or a constant step from it, with its offset from root."""
    out: list[tuple[ir.Load | ir.Store | ir.Atomic, int]] = []
    todo, seen = [(root, 0)], {root}
    while todo:
        value, delta = todo.pop()
        for use in value.uses:
            if isinstance(use, ACCESSES) and use.base is value:
                out.append((use, delta + use.off))
            elif (step := _step(use)) is not None and use.result is not None and \
                    use.result not in seen:
                seen.add(use.result)
                todo.append((use.result, delta + step[1]))
    return out


def plan(access: ir.Load | ir.Store | ir.Atomic, scope: str) -> tuple[ir.Value, int, int]:
    """(root, lo, hi): the bytes [root + lo, root + hi) the check for `scope` covers."""
    assert isinstance(access.base, ir.Value) and access.block is not None
    root, _ = root_of(access.base)
    block = access.block
    doms = Dominators(block.function)
    group = []
    for inst, off in accesses(root):
        assert inst.block is not None
        later = inst.block is block and block.insts.index(inst) >= block.insts.index(access)
        if inst is access or (scope != "site" and later) or \
                (scope == "after" and inst.block is not block and
                 doms.dominates(block, inst.block)):
            group.append((off, off + inst.size))
    return root, min(lo for lo, _ in group), max(hi for _, hi in group)


def recheck(s: Site, scope: str, rederive: bool) -> None:
    access = s.inst
    assert isinstance(access, ACCESSES) and access.block is not None
    kind = s.module.kind
    assert kind is not None
    func = access.block.function
    ctx = context(func)
    root, lo, hi = plan(access, scope)
    lo = min(lo, 0)
    b = Builder.before(access)
    end = b.load(4, ctx, DATA_END[kind.prog_type])
    base = root
    if rederive:
        data = b.load(4, ctx, DATA[kind.prog_type])
        low = b.alu(AluOp.ADD, root, lo) if lo else root
        offset = b.alu(AluOp.SUB, low, data)
        b.guard(JmpOp.GT, offset, MAX_PACKET_OFF - (hi - lo), code=0)
        base = b.alu(AluOp.ADD, data, offset)
        if lo:
            base = b.alu(AluOp.ADD, base, -lo)
    reach = b.alu(AluOp.ADD, base, hi)
    rest = b.guard(JmpOp.GT, reach, end, code=0)
    if rederive:  # what runs after the check reads the bounded pointer
        doms = Dominators(func)
        for use in list(root.uses):
            if use.block is not None and doms.dominates(rest, use.block):
                use.replace_value(root, base)


def needs_rederive(site: Site, root_delta: int, lo: int, hi: int) -> bool | None:
    """Whether the verifier would draw no range from `root + hi > data_end`; None when the
    verifier's state of the base is not known."""
    code = site.bytecode(site.inst)
    reg = code.src if isinstance(code, bc.Load) else code.dst \
        if isinstance(code, bc.Store | bc.Atomic) else None
    ptr = site.reg(reg) if reg is not None else None
    if ptr is None or ptr.type != "pkt":
        return None
    root_off = ptr.off - root_delta
    return ptr.umax + root_off + hi > MAX_PACKET_OFF or root_off + lo < 0


def propose(site: Site) -> list[Candidate]:
    inst, kind = site.inst, site.module.kind
    if not isinstance(inst, ACCESSES) or not isinstance(inst.base, ir.Value) or \
            kind is None or kind.prog_type not in DATA_END or inst.block is None or \
            context(inst.block.function) is None:
        return []
    _, delta = root_of(inst.base)
    out, seen = [], set()
    for scope in SCOPES:
        _, lo, hi = plan(inst, scope)
        if (lo, hi) in seen or hi - min(lo, 0) > MAX_PACKET_OFF:
            continue
        seen.add((lo, hi))
        need = needs_rederive(site, delta, lo, hi)
        for rederive in ([False, True] if need is None else [need]):
            how = "re-derive the pointer, then " if rederive else ""
            out.append(Candidate(
                f"{how}check root + {hi} <= data_end before insn {inst.origin} ({scope})",
                lambda s, sc=scope, r=rederive: recheck(s, sc, r)))
    return out


register(Strategy(
    name="packet_recheck",
    classes=frozenset({ErrorClass.INVALID_PACKET_ACCESS}),
    description="re-issue the data_end comparison right before a packet access",
    propose=propose,
))
