"""packet_recheck: compare with data_end again right before a packet access the verifier
could not tie to a comparison ("invalid access to packet, off=.. size=.., R2(..r=0)").

The check `if base + off + size > data_end goto abort` gives the verifier the range it
lacks; data_end is loaded afresh from the context, so the check does not depend on
which register the program kept it in. Z3 must show the check never fires: then the
program is unchanged on every input. The context is the entry function's first
argument, so accesses in subprograms are not handled.
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.isa.opcodes import AluOp, JmpOp
from epass.kernel.verifier_log import ErrorClass
from epass.repair.site import Site
from epass.repair.strategies import Candidate, Strategy, register
from epass.uapi import ProgType

# where data_end sits in the context, by program type (struct xdp_md, struct __sk_buff)
DATA_END = {ProgType.XDP: 4} | {t: 80 for t in (
    ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB, ProgType.LWT_IN,
    ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.SK_SKB, ProgType.SOCKET_FILTER)}
ACCESSES = (ir.Load, ir.Store, ir.Atomic)


def context(func: ir.Function) -> ir.Value | None:
    """The entry function's context argument (r1 at entry)."""
    if not func.is_main:
        return None
    return next((i.result for i in func.entry.insts if isinstance(i, ir.Arg) and i.index == 1),
                None)


def propose(site: Site) -> list[Candidate]:
    inst, kind = site.inst, site.module.kind
    end_off = DATA_END.get(kind.prog_type) if kind is not None else None
    if not isinstance(inst, ACCESSES) or not isinstance(inst.base, ir.Value) or \
            end_off is None or context(inst.block.function) is None:
        return []

    def recheck(s: Site) -> None:
        access = s.inst
        assert isinstance(access, ACCESSES) and isinstance(access.base, ir.Value)
        b = Builder.before(access)
        end = b.load(4, context(access.block.function), end_off)
        reach = b.alu(AluOp.ADD, access.base, access.off + access.size)
        b.guard(JmpOp.GT, reach, end, code=0)

    return [Candidate(f"check base + {inst.off + inst.size} <= data_end before the access",
                      recheck)]


register(Strategy(
    name="packet_recheck",
    classes=frozenset({ErrorClass.INVALID_PACKET_ACCESS}),
    description="re-issue the data_end comparison right before a packet access",
    propose=propose,
))
