"""The context a program receives in r1, per program type.

The context is a region of bytes. Some fields are not plain bytes: the
kernel rewrites `ctx->data` and `ctx->data_end` loads into loads of real
packet pointers, so here a 4-byte read of such a field yields the 64-bit
pointer. Plain fields read and (where the kernel lets the program) write
the bytes of the region.

- XDP: `struct xdp_md` {data, data_end, data_meta, ingress_ifindex,
  rx_queue_index, egress_ifindex}; pointers at offsets 0, 4, 8.
- tc / socket filters: a subset of `struct __sk_buff`: pointers `data`
  (76), `data_end` (80), `data_meta` (140); plain fields such as len (0),
  mark (8), protocol (16), priority (32), cb[0..4] (48..67).
- other types: raw bytes of the size given (tracing programs' pt_regs etc.).
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.uapi import ProgType

XDP_MD_SIZE = 24
SKB_SIZE = 192  # sizeof(struct __sk_buff) on Linux 6.x


@dataclass(frozen=True)
class PointerField:
    """A context field whose load gives a pointer: into the packet at data / data_end / meta."""

    offset: int
    what: str  # "data", "data_end", "data_meta"


@dataclass(frozen=True)
class ContextLayout:
    name: str
    size: int
    pointers: tuple[PointerField, ...] = ()
    writable: tuple[tuple[int, int], ...] = ()  # (offset, size) ranges the program may write
    has_packet: bool = False
    # u32 fields the kernel keeps in fewer bytes: (offset, bytes kept); a store keeps only
    # those, so reading the field back gives the truncated value
    narrow: tuple[tuple[int, int], ...] = ()

    def pointer_at(self, offset: int, size: int) -> PointerField | None:
        for p in self.pointers:
            if p.offset == offset and size == 4:
                return p
        return None

    def may_write(self, offset: int, size: int) -> bool:
        return any(lo <= offset and offset + size <= lo + n for lo, n in self.writable)

    def kept(self, offset: int, size: int) -> int:
        """How many bytes of a `size`-byte store at `offset` the kernel keeps."""
        return next((n for o, n in self.narrow if o == offset and n < size), size)


XDP = ContextLayout(
    "xdp_md", XDP_MD_SIZE,
    pointers=(PointerField(0, "data"), PointerField(4, "data_end"), PointerField(8, "data_meta")),
    has_packet=True,
)

SKB = ContextLayout(
    "__sk_buff", SKB_SIZE,
    pointers=(PointerField(76, "data"), PointerField(80, "data_end"),
              PointerField(140, "data_meta")),
    # mark, priority, cb[5], tc_index, tc_classid, tstamp as the kernel allows for tc
    writable=((8, 4), (32, 4), (44, 4), (48, 20), (72, 4), (152, 8)),
    has_packet=True,
    narrow=((44, 2), (72, 2)),  # tc_index and tc_classid are __u16 in the kernel
)

RAW_CTX_SIZE = 256


def raw_layout(size: int = RAW_CTX_SIZE) -> ContextLayout:
    return ContextLayout("raw", size)


SKB_TYPES = {ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.SOCKET_FILTER,
             ProgType.CGROUP_SKB, ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT,
             ProgType.SK_SKB}


def layout_for(prog_type: ProgType | int | None) -> ContextLayout:
    if prog_type == ProgType.XDP:
        return XDP
    if prog_type in SKB_TYPES:
        return SKB
    return raw_layout()


LOOPBACK_IFINDEX = 1  # BPF_PROG_TEST_RUN runs on the caller's netns loopback device
ETH_P_802_3_MIN = 0x0600


def _eth_pkt_type(dest: bytes) -> int:
    """skb->pkt_type as eth_type_trans() sets it on loopback, whose address and broadcast
    address are both all-zero: HOST, MULTICAST (even ff:ff:..) or OTHERHOST."""
    if dest == bytes(6):
        return 0  # PACKET_HOST
    return 2 if dest[0] & 1 else 3  # PACKET_MULTICAST, PACKET_OTHERHOST


def _eth_protocol(packet: bytes) -> bytes:
    """skb->protocol (network order) as eth_type_trans() derives it from the frame."""
    proto = packet[12:14]
    if int.from_bytes(proto, "big") >= ETH_P_802_3_MIN:
        return proto
    if packet[14:16] == b"\xff\xff":
        return (0x0001).to_bytes(2, "big")  # ETH_P_802_3: raw 802.3
    return (0x0004).to_bytes(2, "big")  # ETH_P_802_2


def prog_test_run_ctx(prog_type: ProgType | int | None, packet: bytes) -> bytes | None:
    """The context BPF_PROG_TEST_RUN gives a program run without ctx_in (net/bpf/test_run.c).

    XDP: the frame arrives on loopback's rx queue 0, so ingress_ifindex is 1. tc: the skb
    went through eth_type_trans() on loopback: len, pkt_type, protocol and ifindex are set,
    the other readable fields are 0. None for other program types (all zero).
    """
    if prog_type == ProgType.XDP:
        ctx = bytearray(XDP_MD_SIZE)
        ctx[12:16] = LOOPBACK_IFINDEX.to_bytes(4, "little")  # ingress_ifindex
        return bytes(ctx)
    if prog_type in (ProgType.SCHED_CLS, ProgType.SCHED_ACT) and len(packet) >= 14:
        ctx = bytearray(SKB_SIZE)
        ctx[0:4] = len(packet).to_bytes(4, "little")  # len: the whole frame (tc is L2)
        ctx[4:8] = _eth_pkt_type(packet[:6]).to_bytes(4, "little")
        ctx[16:18] = _eth_protocol(packet)  # a __be16 in a u32 field
        ctx[40:44] = LOOPBACK_IFINDEX.to_bytes(4, "little")  # ifindex (ingress_ifindex is 0)
        return bytes(ctx)
    return None
