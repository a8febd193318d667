"""Concrete models of the helpers the interpreter knows, keyed by helper id.

Each model reads its arguments from r1-r5 through the interpreter, does
what the kernel's helper does to memory and maps, and returns r0. Errors
are negative errno values, as the kernel returns them. Deliberate
approximations are listed in docs/semantics.md (time and randomness are
deterministic; per-CPU maps have one CPU; tail calls always fail because a
run has no program array contents).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from epass.isa import HELPER_IDS
from epass.semantics.maps import E2BIG, EINVAL, ENOENT
from epass.semantics.memory import RECORD_STRIDE, RINGBUF_BASE, MemoryFault, Region, RegionKind

if TYPE_CHECKING:
    from epass.semantics.interp import Interpreter

Model = Callable[["Interpreter", int], int]
LINUX_HELPERS: dict[int, Model] = {}

EFAULT = 14
ENOSPC = 28
MAX_LOOPS = 1 << 23  # bpf_loop's nr_loops limit


def helper(name: str) -> Callable[[Model], Model]:
    def register(fn: Model) -> Model:
        LINUX_HELPERS[HELPER_IDS[name]] = fn
        return fn

    return register


def _key(it: Interpreter, n: int, size: int, index: int) -> bytes:
    return it.read_bytes(it.arg(n, index), size, index)


@helper("bpf_map_lookup_elem")
def map_lookup_elem(it: Interpreter, index: int) -> int:
    m = it.map_arg(1, index)
    region = it.maps.lookup(m, _key(it, 2, m.key_size, index))
    return region.base if region is not None else 0


@helper("bpf_map_update_elem")
def map_update_elem(it: Interpreter, index: int) -> int:
    m = it.map_arg(1, index)
    key = _key(it, 2, m.key_size, index)
    value = it.read_bytes(it.arg(3, index), m.value_size, index)
    return it.maps.update(m, key, value, it.arg(4, index))


@helper("bpf_map_delete_elem")
def map_delete_elem(it: Interpreter, index: int) -> int:
    m = it.map_arg(1, index)
    return it.maps.delete(m, _key(it, 2, m.key_size, index))


@helper("bpf_ktime_get_ns")
def ktime_get_ns(it: Interpreter, index: int) -> int:
    it.env.ktime_ns += 1000  # deterministic and strictly increasing
    return it.env.ktime_ns


@helper("bpf_get_prandom_u32")
def get_prandom_u32(it: Interpreter, index: int) -> int:
    # xorshift32: deterministic, so a run can be replayed
    x = it.prandom_state or 1
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    it.prandom_state = x
    return x


@helper("bpf_get_smp_processor_id")
def get_smp_processor_id(it: Interpreter, index: int) -> int:
    return it.env.cpu


@helper("bpf_get_current_comm")
def get_current_comm(it: Interpreter, index: int) -> int:
    # strscpy_pad: at most size - 1 bytes of the name, then NULs up to size
    dst, size = it.arg(1, index), it.arg(2, index)
    if size:
        name = it.env.comm[: size - 1]
        it.write_bytes(dst, name + bytes(size - len(name)), index)
    return 0


@helper("bpf_trace_printk")
def trace_printk(it: Interpreter, index: int) -> int:
    size = it.arg(2, index)
    fmt = it.read_bytes(it.arg(1, index), size, index).split(b"\0", 1)[0]
    it.output.append(fmt)  # the format, unexpanded: what reaches trace_pipe is not modelled
    return len(fmt)


def _probe_read(it: Interpreter, index: int) -> int:
    dst, size, src = it.arg(1, index), it.arg(2, index), it.arg(3, index)
    loc = it.memory.locate(src, size) if size else None
    if size and loc is None:
        it.write_bytes(dst, bytes(size), index)  # the kernel zeroes dst on a fault
        return -EFAULT
    it.write_bytes(dst, it.read_bytes(src, size, index), index)
    return 0


for _name in ("bpf_probe_read_kernel", "bpf_probe_read_user", "bpf_probe_read"):
    LINUX_HELPERS[HELPER_IDS[_name]] = _probe_read


@helper("bpf_ringbuf_reserve")
def ringbuf_reserve(it: Interpreter, index: int) -> int:
    m = it.map_arg(1, index)
    size, flags = it.arg(2, index), it.arg(3, index)
    if flags or size > m.max_entries:
        return 0
    taken = {r.base for r in it.memory.regions if r.kind == RegionKind.RINGBUF}
    n = 0
    while RINGBUF_BASE + n * RECORD_STRIDE in taken:  # the first free place
        n += 1
    base = RINGBUF_BASE + n * RECORD_STRIDE
    data = it.env.records.get(base, b"")[:size]
    region = it.memory.add(Region(RegionKind.RINGBUF, f"{m.name}.record{n}", base,
                                  bytearray(data + bytes(size - len(data)))))
    return region.base


def _record(it: Interpreter, index: int) -> Region:
    addr = it.arg(1, index)
    region = it.memory.region_at(addr)
    if region is None or region.kind != RegionKind.RINGBUF or region.base != addr:
        raise MemoryFault(index, "ringbuf submit/discard of a pointer that is not a record")
    return region


@helper("bpf_ringbuf_submit")
def ringbuf_submit(it: Interpreter, index: int) -> int:
    region = _record(it, index)
    it.output.append(bytes(region.data))
    it.memory.remove(region)
    return 0


@helper("bpf_ringbuf_discard")
def ringbuf_discard(it: Interpreter, index: int) -> int:
    it.memory.remove(_record(it, index))
    return 0


@helper("bpf_ringbuf_output")
def ringbuf_output(it: Interpreter, index: int) -> int:
    m = it.map_arg(1, index)
    size = it.arg(3, index)
    if size > m.max_entries:
        return -ENOSPC
    it.output.append(it.read_bytes(it.arg(2, index), size, index))
    return 0


@helper("bpf_tail_call")
def tail_call(it: Interpreter, index: int) -> int:
    return -ENOENT  # no program array has programs in a run: the call falls through


# BPF_PROG_TEST_RUN's XDP frame (net/bpf/test_run.c): one page from data_hard_start, the
# packet after XDP_PACKET_HEADROOM. bpf_xdp_adjust_head keeps a struct xdp_frame (40 bytes)
# free at the start; bpf_xdp_adjust_tail may not reach the skb_shared_info (320 bytes) at
# the end: data_end <= data_hard_start + 4096 - 320.
XDP_FRAME_SIZE = 40
XDP_DATA_HARD_END = 4096 - 320


def _adjust(it: Interpreter, index: int, head: bool) -> int:
    packet = it.packet
    if packet is None:
        return -EINVAL
    # both helpers take an `int offset`: the low 32 bits of r2, signed
    raw = it.reg(2, index).value & 0xFFFFFFFF
    delta = raw - (1 << 32) if raw >> 31 else raw
    lo, hi = packet.window
    if head:
        new_lo = lo + delta
        if new_lo < XDP_FRAME_SIZE or hi - new_lo < 14:  # keep room for an Ethernet header
            return -EINVAL
        packet.lo = new_lo
    else:
        new_hi = hi + delta
        if new_hi - lo < 14 or new_hi > XDP_DATA_HARD_END:
            return -EINVAL
        if new_hi > len(packet.data):
            packet.data.extend(bytes(new_hi - len(packet.data)))
        if new_hi > hi:
            packet.data[hi:new_hi] = bytes(new_hi - hi)  # the kernel clears the grown tail
        packet.hi = new_hi
    return 0


@helper("bpf_xdp_adjust_head")
def xdp_adjust_head(it: Interpreter, index: int) -> int:
    return _adjust(it, index, head=True)


@helper("bpf_xdp_adjust_tail")
def xdp_adjust_tail(it: Interpreter, index: int) -> int:
    return _adjust(it, index, head=False)


@helper("bpf_skb_load_bytes")
def skb_load_bytes(it: Interpreter, index: int) -> int:
    # the helper takes a u32 offset and a u32 len: an offset of 2**32 + 2 reads at 2
    offset, dst, size = it.arg(2, index), it.arg(3, index), it.arg(4, index)
    offset, size = offset & 0xFFFFFFFF, size & 0xFFFFFFFF
    packet = it.packet
    if packet is None:
        return -EINVAL
    lo, hi = packet.window
    if offset + size > hi - lo:
        it.write_bytes(dst, bytes(size), index)  # the kernel clears the buffer on failure
        return -EFAULT
    it.write_bytes(dst, bytes(packet.data[lo + offset : lo + offset + size]), index)
    return 0


@helper("bpf_loop")
def bpf_loop(it: Interpreter, index: int) -> int:
    nr, fn, ctx, flags = (it.arg(i, index) for i in (1, 2, 3, 4))
    # the call as listed: the callback as 0, as in the Z3 model (symbolic_helpers.loop_call):
    # it is compared by what it does, its address moves with the code
    name, args = it.helper_calls[-1]
    it.helper_calls[-1] = (name, (args[0], 0, *args[2:]))
    if flags:
        return -EINVAL
    if nr > MAX_LOOPS:
        # -E2BIG as the verifier's inlined bpf_loop (flags the constant 0) gives it: nr
        # compared on 64 bits, `w0 = -E2BIG` zero-extended. (The helper proper, called when
        # flags is not a known constant, takes a u32 nr and sign-extends -E2BIG.)
        return -E2BIG & 0xFFFFFFFF
    for i in range(nr):
        if it.call_function(fn, (i, ctx), index) & 0xFFFFFFFFFFFFFFFF:
            return i + 1
    return nr


# bpf_conformance's harness: helper 5 is "unwind", which ends the program when
# its argument is zero (and returns it otherwise).
def _unwind(it: Interpreter, index: int) -> int:
    from epass.semantics.interp import ProgramExit

    value = it.arg(1, index)
    if value == 0:
        raise ProgramExit(0)
    return value


CONFORMANCE_HELPERS: dict[int, Model] = {5: _unwind}


@helper("bpf_for_each_map_elem")
def for_each_map_elem(it: Interpreter, index: int) -> int:
    """Call back for each element until the callback returns non-zero; returns how many.

    Hash maps are walked in insertion order (the kernel's bucket order is not modelled).
    """
    from epass.semantics.memory import KERNEL_BASE

    # the call as listed: the callback as 0, as in the Z3 model (symbolic_helpers.
    # for_each_call) and for bpf_loop
    name, args = it.helper_calls[-1]
    it.helper_calls[-1] = (name, (args[0], 0, *args[2:]))
    m = it.map_arg(1, index)
    fn, ctx, flags = it.arg(2, index), it.arg(3, index), it.arg(4, index)
    if flags:
        return -EINVAL
    done = 0
    # a callback may call for_each_map_elem again: each nesting level gets its own key
    # address, as each call has its own kernel stack frame
    depth = sum(r.name.endswith(".key") for r in it.memory.regions)
    for key, value in list(m.entries.items()):
        # the key lives on the kernel's stack during the call: give it a read-only region
        key_region = it.memory.add(Region(RegionKind.KERNEL, f"{m.name}.key",
                                          KERNEL_BASE - 0x1_0000 * (depth + 1),
                                          bytearray(key), writable=False))
        try:
            stop = it.call_function(fn, (m.handle, key_region.base, value.base, ctx), index)
        finally:
            it.memory.remove(key_region)
        done += 1
        if stop & 0xFFFFFFFFFFFFFFFF:
            break
    return done


def _probe_read_str(it: Interpreter, index: int) -> int:
    """Copy a NUL-terminated string of at most size bytes; returns its length with the NUL."""
    dst, size, src = it.arg(1, index), it.arg(2, index), it.arg(3, index)
    if size == 0:
        return 0
    out = bytearray()
    while len(out) < size - 1:
        if it.memory.locate(src + len(out), 1) is None:
            it.write_bytes(dst, bytes(size), index)  # the kernel clears dst on a fault
            return -EFAULT
        byte = it.read_bytes(src + len(out), 1, index)[0]
        if byte == 0:
            break
        out.append(byte)
    it.write_bytes(dst, bytes(out) + b"\0", index)
    return len(out) + 1


for _name in ("bpf_probe_read_kernel_str", "bpf_probe_read_user_str", "bpf_probe_read_str"):
    LINUX_HELPERS[HELPER_IDS[_name]] = _probe_read_str
