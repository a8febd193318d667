"""Memory as regions with bounds, in one flat 64-bit address space.

Each region -- a stack frame, the context, the packet, a map value, a
ringbuf record, the conformance suite's memory -- sits at its own fixed
base address, far from the others. A pointer is an ordinary 64-bit value;
`Memory.locate(addr, size)` answers which region and offset it has, which is
what passes and proofs ask. Pointer arithmetic and comparisons (`data +
14 > data_end`) then behave exactly as on the machine.

An access outside every region, or outside a region's valid window (the
packet's data..data_end), is a `MemoryFault` naming the instruction. A read
of stack bytes never written is an `UninitRead` event: privileged programs
may do it, so it is recorded, not fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class RegionKind(Enum):
    STACK = "stack"
    CTX = "ctx"
    PACKET = "packet"
    MAP_VALUE = "map_value"
    RINGBUF = "ringbuf"
    MEM = "mem"  # bpf_conformance's input memory
    KERNEL = "kernel"  # bytes behind probe_read_kernel/user sources


# Fixed bases, 256 MiB apart: no region grows into another.
CTX_BASE = 0x1000_0000
PACKET_BASE = 0x2000_0000
STACK_BASE = 0x3000_0000  # frame k at STACK_BASE + k * STACK_STRIDE
STACK_STRIDE = 0x1_0000
MAP_BASE = 0x4000_0000  # value n at MAP_BASE + n * MAP_STRIDE
MAP_STRIDE = 0x1_0000
MEM_BASE = 0x5000_0000
RINGBUF_BASE = 0x6000_0000  # record n at RINGBUF_BASE + n * RECORD_STRIDE
RECORD_STRIDE = 0x1_0000
KERNEL_BASE = 0x7000_0000

STACK_SIZE = 512
PACKET_HEADROOM = 256  # XDP_PACKET_HEADROOM: room for bpf_xdp_adjust_head


@dataclass
class Region:
    """Bytes at [base, base + len(data)); accesses must fall in [base + lo, base + hi)."""

    kind: RegionKind
    name: str
    base: int
    data: bytearray
    writable: bool = True
    init: bytearray | None = None  # per byte: 1 once written (stack frames only)
    lo: int = 0
    hi: int | None = None

    @property
    def window(self) -> tuple[int, int]:
        return self.lo, len(self.data) if self.hi is None else self.hi


@dataclass(frozen=True)
class Location:
    region: Region
    offset: int


class MemoryFault(Exception):
    """An access the program may not make; names the instruction (slot index)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"insn {index}: {message}")
        self.index = index
        self.message = message


@dataclass(frozen=True)
class UninitRead:
    """A read of stack bytes that were never written."""

    index: int
    region: str
    offset: int
    size: int


@dataclass
class Memory:
    regions: list[Region] = field(default_factory=list)
    events: list[UninitRead] = field(default_factory=list)

    def add(self, region: Region) -> Region:
        self.regions.append(region)
        return region

    def remove(self, region: Region) -> None:
        self.regions.remove(region)

    def region_at(self, addr: int) -> Region | None:
        """The region whose bytes contain `addr` (ignoring the valid window)."""
        for r in self.regions:
            if r.base <= addr < r.base + len(r.data):
                return r
        return None

    def locate(self, addr: int, size: int = 1) -> Location | None:
        """Region and offset of an access of `size` bytes at `addr`, if it is in bounds."""
        r = self.region_at(addr)
        if r is None:
            return None
        off = addr - r.base
        lo, hi = r.window
        if off < lo or off + size > hi:
            return None
        return Location(r, off)

    def describe(self, addr: int) -> str:
        r = self.region_at(addr)
        if r is None:
            return f"0x{addr:x} (no region)"
        lo, hi = r.window
        return f"{r.name}{addr - r.base:+d} (valid {lo}..{hi})"

    def _where(self, addr: int, size: int, index: int, what: str) -> Location:
        loc = self.locate(addr, size)
        if loc is None:
            raise MemoryFault(index, f"out-of-bounds {what} of {size} bytes at "
                                     f"{self.describe(addr)}")
        return loc

    def read(self, addr: int, size: int, index: int) -> int:
        loc = self._where(addr, size, index, "read")
        r, off = loc.region, loc.offset
        if r.init is not None and not all(r.init[off : off + size]):
            self.events.append(UninitRead(index, r.name, off, size))
        return int.from_bytes(r.data[off : off + size], "little")

    def write(self, addr: int, size: int, value: int, index: int) -> None:
        loc = self._where(addr, size, index, "write")
        r, off = loc.region, loc.offset
        if not r.writable:
            raise MemoryFault(index, f"write of {size} bytes to read-only {r.name}{off:+d}")
        r.data[off : off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        if r.init is not None:
            r.init[off : off + size] = b"\x01" * size
