"""Reading symbolic memory without asking Z3: which stores can an address see?

A path's memory is a chain of `Store`s over the initial array, and the
final memory of a program is an `If` over its paths' chains. Z3's
simplifier looks past a store only when both addresses are constants, so
one store to a symbolic address (a hash map value, a stack slot at a
variable offset) hides every older store from every later read, and the
formulas the prover hands to the solver grow with the whole history.

`Addresses.read` walks the chain itself and skips a store when its address
surely differs from the one read: they lie in different regions (the bits
that name a region differ), or they are the same symbolic base plus
different constant offsets.
"""

from __future__ import annotations

from typing import Any

import z3

HASH_AREA_SHIFT = 52  # hash areas (symbolic.HashArea) are numbered in bits 63..52
REGION_SHIFT = 28  # regions (memory.py) are 256 MiB apart
MAX_MAYBE = 16  # stores a read turns into If(address == ...) before leaving it to Z3


def tag_of(base: int) -> int:
    """The tag (Addresses.tag) of addresses in the region or hash area at `base`."""
    return base >> REGION_SHIFT


class Addresses:
    """Facts about address terms, cached by term id (terms are immutable)."""

    def __init__(self) -> None:
        self._tags: dict[int, int | None] = {}
        self._splits: dict[int, tuple[Any, int, int]] = {}
        # (memory id, address id) -> (memory, address, byte): the terms are kept so that
        # their ids are not reused while the entry lives
        self._reads: dict[tuple[int, int], tuple[Any, Any, Any]] = {}

    def tag(self, addr: Any) -> int | None:
        """Which region or hash area `addr` lies in, when its bits say so."""
        key = addr.get_id()
        if key not in self._tags:
            tag = None
            area = z3.simplify(z3.Extract(63, HASH_AREA_SHIFT, addr))
            if z3.is_bv_value(area) and area.as_long():
                tag = area.as_long() << (HASH_AREA_SHIFT - REGION_SHIFT)
            elif z3.is_bv_value(area):
                region = z3.simplify(z3.Extract(HASH_AREA_SHIFT - 1, REGION_SHIFT, addr))
                tag = region.as_long() if z3.is_bv_value(region) else None
            self._tags[key] = tag
        return self._tags[key]

    def split(self, addr: Any) -> tuple[Any, int, int]:
        """`addr` as (symbolic base or None, constant offset, k): the base is a multiple of
        2**k (a hash slot's value address is; `Concat(..., 0)` of k zero bits)."""
        key = addr.get_id()
        if key not in self._splits:
            if z3.is_bv_value(addr):
                out: tuple[Any, int, int] = (None, addr.as_long(), 64)
            elif z3.is_app_of(addr, z3.Z3_OP_BADD) and addr.num_args() == 2 and \
                    z3.is_bv_value(addr.arg(0)):
                base, offset, align = self.split(addr.arg(1))
                out = (base, offset + addr.arg(0).as_long(), align)
            elif z3.is_app_of(addr, z3.Z3_OP_CONCAT) and \
                    z3.is_bv_value(addr.arg(addr.num_args() - 1)):
                last = addr.arg(addr.num_args() - 1)
                width = last.size()
                head = z3.Concat(*[addr.arg(i) for i in range(addr.num_args() - 1)],
                                 z3.BitVecVal(0, width))
                out = (head, last.as_long(), width)
            else:
                out = (addr, 0, 0)
            self._splits[key] = out
        return self._splits[key]

    def compare(self, a: Any, b: Any) -> bool | None:
        """True: the same address; False: surely different; None: cannot tell."""
        if a.eq(b):
            return True
        ta, tb = self.tag(a), self.tag(b)
        if ta is not None and tb is not None and ta != tb:
            return False
        (base_a, off_a, align_a), (base_b, off_b, align_b) = self.split(a), self.split(b)
        if base_a is None and base_b is None or \
                base_a is not None and base_b is not None and base_a.eq(base_b):
            return (off_a - off_b) % (1 << 64) == 0
        low = (1 << min(align_a, align_b)) - 1
        if (off_a - off_b) & low:  # different bits below both bases' alignment
            return False
        return None

    def read(self, mem: Any, addr: Any) -> Any:
        """The byte at `addr`: `Select(mem, addr)` with every store it cannot see removed,
        and through `If`s of memories (a program's merged paths)."""
        key = (mem.get_id(), addr.get_id())
        if key not in self._reads:
            self._reads[key] = (mem, addr, self._read(mem, addr))
        return self._reads[key][2]

    def _read(self, mem: Any, addr: Any) -> Any:
        arms = []  # an If chain over paths: (condition, that path's memory), in order
        while z3.is_app_of(mem, z3.Z3_OP_ITE):
            arms.append((mem.arg(0), mem.arg(1)))
            mem = mem.arg(2)
        maybe = []  # stores that may write `addr`: (their address, the byte), newest first
        value = None
        while z3.is_app_of(mem, z3.Z3_OP_STORE):  # loops, not recursion: chains are long
            same = self.compare(mem.arg(1), addr)
            if same is None and len(maybe) < MAX_MAYBE:
                maybe.append((mem.arg(1), mem.arg(2)))
            elif same is None:
                break
            elif same:
                value = mem.arg(2)
                break
            mem = mem.arg(0)
        if value is None:
            value = z3.Select(mem, addr)
        for where, byte in reversed(maybe):
            value = z3.If(where == addr, byte, value)
        for cond, arm in reversed(arms):
            value = z3.If(cond, self.read(arm, addr), value)
        return value
