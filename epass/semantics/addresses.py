"""Reading symbolic memory without asking Z3: which stores can an address see?

A path's memory is a chain of `Store`s over the initial array, and the
final memory of a program is an `If` over its paths' chains. Z3's
simplifier looks past a store only when both addresses are constants, so
one store to a symbolic address (a hash map value, a stack slot at a
variable offset) hides every older store from every later read, and the
formulas the prover hands to the solver grow with the whole history.

`Addresses.read` walks the chain itself and skips a store when its address
surely differs from the one read: they lie in different regions (the bits
that name a region differ, or the bounds of the address's value keep it in
one region: `map value + 65536 * index`), or they are the same symbolic base
plus different constant offsets (or offsets that differ below the bases'
alignment). Each memory term is taken apart once (`_Node`), each address
once (`_Facts`): the walk itself makes no Z3 call.
"""

from __future__ import annotations

from typing import Any

import z3

HASH_AREA_SHIFT = 52  # hash areas (symbolic.HashArea) are numbered in bits 63..52
REGION_SHIFT = 28  # regions (memory.py) are 256 MiB apart
MAX_MAYBE = 16  # stores a read turns into If(address == ...) before leaving it to Z3
CHECKPOINT = 16  # a read keeps its result at every 16th store it walks past (see _read)


def tag_of(base: int) -> int:
    """The tag (Addresses.tag) of addresses in the region or hash area at `base`."""
    return base >> REGION_SHIFT


class _Facts:
    """What `compare` needs of one address term, read off it once: its region (`region`)
    and its split, the base as a term id (Z3 shares equal terms: equal ids, equal terms)."""

    __slots__ = ("align", "base", "id", "offset", "tag", "term")

    def __init__(self, term: Any, key: int, tag: int | None, base: int | None, offset: int,
                 align: int) -> None:
        self.term, self.id, self.tag = term, key, tag
        self.base, self.offset, self.align = base, offset, align


def _compare(a: _Facts, b: _Facts) -> bool | None:
    """Addresses.compare on facts, without a Z3 call."""
    if a.id == b.id:
        return True
    if a.tag is not None and b.tag is not None and a.tag != b.tag:
        return False
    if a.base == b.base:  # both constants, or the same symbolic base
        return (a.offset - b.offset) % (1 << 64) == 0
    low = (1 << min(a.align, b.align)) - 1
    if (a.offset - b.offset) & low:  # different bits below both bases' alignment
        return False
    return None


_STORE, _ITE, _OTHER = 0, 1, 2


class _Node:
    """A memory term taken apart once (every `arg()` of Z3's Python API is costly, and reads
    walk chains of hundreds of stores): a store (`rest`, `addr`, `byte`), an If over two
    memories (`cond`, `then`, `rest`: the else arm), or anything else."""

    __slots__ = ("addr", "below", "byte", "cond", "id", "kind", "rest", "term", "then")

    def __init__(self, term: Any, key: int) -> None:
        self.term, self.id, self.kind = term, key, _OTHER
        self.cond = self.then = self.rest = self.byte = None
        self.addr: _Facts | None = None
        self.below: _Node | None = None  # the node of `rest`, once asked for


class Addresses:
    """Facts about address terms, cached by term id (terms are immutable)."""

    def __init__(self) -> None:
        self._tags: dict[int, int | None] = {}
        self._splits: dict[int, tuple[Any, int, int]] = {}
        # (memory id, address id) -> the byte; the memory and the address are kept (in
        # _nodes, _facts) so that their ids are not reused while the entry lives
        self._reads: dict[tuple[int, int], Any] = {}
        self._nodes: dict[int, _Node] = {}  # memory id -> the memory taken apart
        self._facts: dict[int, _Facts] = {}  # address id -> its facts (which keep it)
        self._bounds: dict[int, tuple[Any, tuple[int, int]]] = {}  # term id -> (term, bounds)
        self._offsets: dict[tuple[int, int], tuple[Any, Any]] = {}  # see offset()

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
            elif z3.is_app_of(addr, z3.Z3_OP_BMUL) and addr.num_args() == 2 and \
                    z3.is_bv_value(addr.arg(0)) and addr.arg(0).as_long():
                factor = addr.arg(0).as_long()  # a multiple of factor's lowest set bit
                out = (addr, 0, (factor & -factor).bit_length() - 1)
            else:
                out = (addr, 0, 0)
            self._splits[key] = out
        return self._splits[key]

    def region(self, addr: Any) -> int | None:
        """Like `tag`, and also when the bits do not say but every value the address may
        take lies in one region or hash area (`map value + 65536 * index`: `bounds`)."""
        tag = self.tag(addr)
        if tag is None:
            lo, hi = self.bounds(addr)
            if lo >> HASH_AREA_SHIFT == hi >> HASH_AREA_SHIFT and lo >> HASH_AREA_SHIFT:
                tag = lo >> HASH_AREA_SHIFT << (HASH_AREA_SHIFT - REGION_SHIFT)
            elif lo >> REGION_SHIFT == hi >> REGION_SHIFT:
                tag = lo >> REGION_SHIFT
        return tag

    def bounds(self, e: Any) -> tuple[int, int]:
        """Unsigned bounds of a bit-vector term's value, from its shape: constants, sums
        and products that cannot wrap, zero extension, concatenation, extraction, masks,
        shifts by constants, if-then-else; the whole range for anything else."""
        key = e.get_id()
        out = self._bounds.get(key)
        if out is None:
            out = self._bounds[key] = (e, self._bounds_of(e))
        return out[1]

    def _bounds_of(self, e: Any) -> tuple[int, int]:
        width = e.size()
        top = (1 << width) - 1
        if z3.is_bv_value(e):
            return e.as_long(), e.as_long()
        if not z3.is_app(e):
            return 0, top
        kind = e.decl().kind()
        args = [e.arg(i) for i in range(e.num_args())]
        if kind in (z3.Z3_OP_BADD, z3.Z3_OP_BMUL):
            add = kind == z3.Z3_OP_BADD
            lo, hi = (0, 0) if add else (1, 1)
            for a in args:
                alo, ahi = self.bounds(a)
                lo, hi = (lo + alo, hi + ahi) if add else (lo * alo, hi * ahi)
            return (lo, hi) if hi <= top else (0, top)
        if kind == z3.Z3_OP_CONCAT:
            lo = hi = 0
            for a in args:
                alo, ahi = self.bounds(a)
                lo, hi = (lo << a.size()) + alo, (hi << a.size()) + ahi
            return lo, hi
        if kind == z3.Z3_OP_ZERO_EXT:
            return self.bounds(args[0])
        if kind == z3.Z3_OP_EXTRACT:
            high, low = e.params()
            alo, ahi = self.bounds(args[0])
            return (alo >> low, ahi >> low) if ahi >> (high + 1) == 0 else (0, top)
        if kind == z3.Z3_OP_ITE:
            (alo, ahi), (blo, bhi) = self.bounds(args[1]), self.bounds(args[2])
            return min(alo, blo), max(ahi, bhi)
        if kind == z3.Z3_OP_BAND:
            return 0, min(self.bounds(a)[1] for a in args)
        if kind in (z3.Z3_OP_BLSHR, z3.Z3_OP_BSHL) and z3.is_bv_value(args[1]):
            (alo, ahi), shift = self.bounds(args[0]), args[1].as_long()
            if kind == z3.Z3_OP_BLSHR:
                return (alo >> shift, ahi >> shift) if shift < width else (0, 0)
            return (alo << shift, ahi << shift) if ahi << shift <= top else (0, top)
        return 0, top

    def facts(self, addr: Any) -> _Facts:
        key = addr.get_id()
        out = self._facts.get(key)
        if out is None:
            base, offset, align = self.split(addr)
            out = _Facts(addr, key, self.region(addr), None if base is None else base.get_id(),
                         offset, align)
            self._facts[key] = out
        return out

    def compare(self, a: Any, b: Any) -> bool | None:
        """True: the same address; False: surely different (another region, or the same
        base at another offset); None: cannot tell."""
        return _compare(self.facts(a), self.facts(b))

    def read(self, mem: Any, addr: Any) -> Any:
        """The byte at `addr`: `Select(mem, addr)` with every store it cannot see removed,
        and through `If`s of memories (a program's merged paths)."""
        return self._read_at(self._node(mem), self.facts(addr))

    def offset(self, addr: Any, k: int) -> Any:
        """`simplify(addr + k)` (byte k of an access at `addr`; `addr` simplified)."""
        if not k:
            return addr
        key = (addr.get_id(), k)
        hit = self._offsets.get(key)
        if hit is None:
            term = z3.BitVecVal((addr.as_long() + k) % (1 << 64), 64) if z3.is_bv_value(addr) \
                else z3.simplify(addr + k)
            hit = self._offsets[key] = (addr, term)
        return hit[1]

    def store(self, mem: Any, addr: Any, byte: Any) -> Any:
        """`Store(mem, addr, byte)`, taken apart already (no `arg()` calls later)."""
        if not z3.is_expr(byte):
            return z3.Store(mem, addr, byte)
        # Z3's C API directly: z3.Store's checks of the sorts cost more than the store
        ctx = mem.ctx
        out = z3.ArrayRef(z3.Z3_mk_store(ctx.ref(), mem.as_ast(), addr.as_ast(), byte.as_ast()),
                          ctx)
        key = out.get_id()
        if key not in self._nodes:
            node = self._nodes[key] = _Node(out, key)
            node.kind = _STORE
            node.rest, node.addr, node.byte = mem, self.facts(addr), byte
            node.below = self._nodes.get(mem.get_id())
        return out

    def _node(self, mem: Any) -> _Node:
        key = mem.get_id()
        node = self._nodes.get(key)
        if node is None:
            node = self._nodes[key] = _Node(mem, key)
            if z3.is_app_of(mem, z3.Z3_OP_STORE):
                node.kind = _STORE
                node.rest, node.addr, node.byte = mem.arg(0), self.facts(mem.arg(1)), mem.arg(2)
            elif z3.is_app_of(mem, z3.Z3_OP_ITE):
                node.kind = _ITE
                node.cond, node.then, node.rest = mem.arg(0), mem.arg(1), mem.arg(2)
        return node

    def _rest(self, node: _Node) -> _Node:
        """The memory below a store, or an If's else arm."""
        if node.below is None:
            node.below = self._node(node.rest)
        return node.below

    def _read_at(self, node: _Node, addr: _Facts) -> Any:
        key = (node.id, addr.id)
        value = self._reads.get(key)
        if value is None:
            value = self._reads[key] = self._read(node, addr)
        return value

    def _read(self, node: _Node, addr: _Facts) -> Any:
        arms = []  # an If chain over paths: (condition, that path's memory), in order
        while node.kind == _ITE:
            arms.append((node.cond, self._node(node.then)))
            node = self._rest(node)
        maybe = []  # stores that may write `addr`: (their address, the byte), newest first
        value = None
        # Paths share the older part of their chains: every CHECKPOINT stores, the read's
        # result there is kept (`marks`), and a later read of the same address on another
        # path stops where it meets one.
        marks: list[tuple[_Node, int]] = []  # (a store below the top, len(maybe) there)
        full = False  # more stores may write `addr` than MAX_MAYBE
        walked = 0
        while True:  # loops, not recursion: chains are long
            if walked:
                known = self._reads.get((node.id, addr.id))
                if known is not None:
                    value = known
                    break
                if walked % CHECKPOINT == 0:
                    marks.append((node, len(maybe)))
            if node.kind != _STORE:
                break
            walked += 1
            same = _compare(node.addr, addr)
            if same is None and len(maybe) < MAX_MAYBE:
                maybe.append((node.addr.term, node.byte))
            elif same is None:
                full = True
                break
            elif same:
                value = node.byte
                break
            node = self._rest(node)
        if value is None:
            value = z3.Select(node.term, addr.term)
        if not full:  # what a read from a mark with no possible store below it gives
            for at, seen in marks:
                if seen == len(maybe):
                    self._reads[(at.id, addr.id)] = value
        # If(c, x, x) is x: a store of the byte below it, or a path that left the byte as
        # the next one did (most paths leave most addresses alone), adds nothing
        for where, byte in reversed(maybe):
            if not byte.eq(value):
                value = _ite(_eq(where, addr.term), byte, value)
        for cond, arm in reversed(arms):
            byte = self._read_at(arm, addr)
            if not byte.eq(value):
                value = _ite(cond, byte, value)
        return value


# Z3's C API directly, as in `store`: z3.If's and `==`'s checks and coercions of the
# sorts cost more than the terms (reads through programs of hundreds of paths build tens
# of thousands); the arguments here are of matching sorts already.
def _ite(cond: Any, then: Any, other: Any) -> Any:
    ctx = cond.ctx
    return z3.BitVecRef(z3.Z3_mk_ite(ctx.ref(), cond.as_ast(), then.as_ast(), other.as_ast()),
                        ctx)


def _eq(a: Any, b: Any) -> Any:
    ctx = a.ctx
    return z3.BoolRef(z3.Z3_mk_eq(ctx.ref(), a.as_ast(), b.as_ast()), ctx)
