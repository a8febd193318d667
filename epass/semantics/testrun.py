"""What BPF_PROG_TEST_RUN does around a program (net/bpf/test_run.c), so that a run on
the interpreter starts and ends like one in the kernel.

- XDP and tc (L2) programs see the whole frame.
- Socket filters and the other non-L2 skb types see it from the network header:
  eth_type_trans() pulled the 14-byte Ethernet header, so `skb->len` is 14 less
  and LD_ABS offset 0 is the first IP byte. In data_out the kernel pushes the
  header back as 14 zero bytes.
- The context is what the kernel fills in without ctx_in (ctx.prog_test_run_ctx).
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.semantics.ctx import SKB_TYPES, prog_test_run_ctx
from epass.uapi import ProgType

ETH_HLEN = 14
L2_SKB_TYPES = {ProgType.SCHED_CLS, ProgType.SCHED_ACT}


@dataclass(frozen=True)
class ProgramInput:
    packet: bytes  # the bytes the program sees between data and data_end
    ctx: bytes | None  # None: the interpreter's default for the program type
    pulled: int  # header bytes removed in front, zeroed in data_out


def program_input(prog_type: ProgType | int | None, data_in: bytes,
                  ctx_in: bytes | None = None) -> ProgramInput:
    if prog_type in SKB_TYPES and prog_type not in L2_SKB_TYPES and len(data_in) >= ETH_HLEN:
        ctx = ctx_in
        if ctx is None:
            # the fields eth_type_trans() sets, as for tc, but with the header pulled
            ctx = bytearray(prog_test_run_ctx(ProgType.SCHED_CLS, data_in) or b"")
            ctx[0:4] = (len(data_in) - ETH_HLEN).to_bytes(4, "little")
            ctx = bytes(ctx)
        return ProgramInput(data_in[ETH_HLEN:], ctx, ETH_HLEN)
    return ProgramInput(data_in, ctx_in, 0)


def data_out(view: ProgramInput, packet_out: bytes) -> bytes:
    """What BPF_PROG_TEST_RUN returns as data_out for the program's final packet."""
    return bytes(view.pulled) + packet_out
