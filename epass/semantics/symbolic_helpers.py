"""Linux helpers in Z3: what each does to r0, memory, maps and the output.

Each model mirrors the interpreter's (helpers.py) on the inputs the
interpreter can run, and allows every behaviour of the kernel's helper
beyond that: where the kernel's result depends on something no input
describes (a full hash map, a full ring buffer, kernel memory behind a
probe_read pointer, the task's name) the model takes it from an
uninterpreted function of the call's number, which both programs of a
proof share. So a proof over these models covers every real run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import z3

from epass.isa import HELPER_IDS
from epass.semantics import step as st
from epass.semantics.addresses import REGION_SHIFT
from epass.semantics.helpers import XDP_DATA_HARD_END, XDP_FRAME_SIZE
from epass.semantics.interp import CODE_BASE, ETH_HLEN
from epass.semantics.maps import (
    ARRAY_TYPES,
    BPF_EXIST,
    BPF_F_LOCK,
    BPF_NOEXIST,
    E2BIG,
    EEXIST,
    EINVAL,
    ENOENT,
    HASH_TYPES,
    MapState,
)
from epass.semantics.memory import (
    KERNEL_BASE,
    MAP_STRIDE,
    PACKET_BASE,
    STACK_BASE,
    STACK_SIZE,
    STACK_STRIDE,
)
from epass.uapi import MapType

if TYPE_CHECKING:
    from epass.semantics.symbolic import HelperModel, SymbolicMachine

EFAULT = 14
EAGAIN = 11
ENOSPC = 28
LRU_TYPES = {MapType.LRU_HASH, MapType.LRU_PERCPU_HASH}


def _bv(value: int) -> Any:
    return z3.BitVecVal(value & 0xFFFFFFFFFFFFFFFF, 64)


def _constant(m: SymbolicMachine, n: int, index: int, what: str) -> int:
    """r`n` as a constant (sizes the verifier requires to be known)."""
    value = z3.simplify(m.reg(n, index))
    if not z3.is_bv_value(value):
        raise st.Unsupported(f"insn {index}: {what} is not a constant")
    return value.as_long()


# free functions that stand for what no input describes (replay.py answers with them)
def kernel_memory() -> Any:
    """(call number, address) -> the byte kernel memory holds there during that call."""
    return z3.Function("kernel_memory", z3.BitVecSort(64), z3.BitVecSort(64), z3.BitVecSort(8))


def kernel_readable() -> Any:
    """call number -> whether a probe_read outside the program's memory succeeds."""
    return z3.Function("kernel_readable", z3.BitVecSort(64), z3.BoolSort())


def current_comm() -> Any:
    """index -> byte of the task's name."""
    return z3.Function("current_comm", z3.BitVecSort(64), z3.BitVecSort(8))


def full(map_name: str) -> Any:
    """call number -> whether the map (hash or ring buffer) is full at that call."""
    return z3.Function(f"{map_name}.full", z3.BitVecSort(64), z3.BoolSort())


def _call_number(m: SymbolicMachine) -> Any:
    return m.call_number()


# ---------------------------------------------------------------- maps

def _map_kind(mp: MapState, index: int) -> str:
    if mp.type in ARRAY_TYPES:
        return "array"
    if mp.type in LRU_TYPES:
        raise st.Unsupported(f"insn {index}: LRU hash maps evict entries the program never "
                             "named; no symbolic model")
    if mp.type in HASH_TYPES:
        return "hash"
    raise st.Unsupported(f"insn {index}: {MapType(mp.type).name.lower()} maps have no "
                         "symbolic model yet")


def _array_key(m: SymbolicMachine, index: int) -> Any:
    return m.d.zext(m.load(m.reg(2, index), 4, index), 64)


def _array_value(mp: MapState, key: Any) -> Any:
    """Address of an array map's value for `key` (values are laid out MAP_STRIDE apart)."""
    base = mp.entries[(0).to_bytes(4, "little")].base
    return _bv(base) + key * MAP_STRIDE


def _copy(m: SymbolicMachine, dst: Any, src: Any, size: int, when: Any, index: int) -> None:
    """Copy `size` bytes where `when` holds (the helper's own copy: no fault check on dst,
    which is a map value the model addresses itself)."""
    data = [m.load(src + i, 1, index) for i in range(size)]
    for i, byte in enumerate(data):
        m.put(dst + i, z3.If(when, byte, m.byte(dst + i)))


def _array_slot(mp: MapState, key: Any) -> Any:
    """_array_value for a key below max_entries, as a concatenation: the region's bits, the
    value's index within the region, zeros. Equal to base + key * MAP_STRIDE for such keys,
    it shows its region and that it is not NULL to simplification and addresses.py without
    Z3. None when the map's values do not all lie in one region."""
    base = mp.entries[(0).to_bytes(4, "little")].base
    shift = MAP_STRIDE.bit_length() - 1
    bits = REGION_SHIFT - shift  # of a value's index within its region
    first = (base >> shift) & ((1 << bits) - 1)
    if base % MAP_STRIDE or first + mp.max_entries > 1 << bits:
        return None
    index = z3.Extract(bits - 1, 0, key) + z3.BitVecVal(first, bits)
    return z3.Concat(z3.BitVecVal(base >> REGION_SHIFT, 64 - REGION_SHIFT), index,
                     z3.BitVecVal(0, shift))


def _map_lookup_elem(m: SymbolicMachine, index: int) -> Any:
    mp = m.map_of(1, index)
    if _map_kind(mp, index) == "array":
        key = _array_key(m, index)
        inside = z3.ULT(key, mp.max_entries)
        value = _array_slot(mp, key)
        if value is None:
            return z3.If(inside, _array_value(mp, key), _bv(0))
        # NULL on a path of its own (as for hash maps): on the other, the value's address
        # is a term whose region and non-NULLness simplification sees (the program's NULL
        # check is then decided on each path, and its accesses placed without Z3)
        m.fork(z3.Not(inside), _bv(0))
        return value
    slot = m.hash_slot(mp, index)
    assert m.state is not None
    m.fork(z3.Not(m.byte(slot.flag) != 0), _bv(0))  # NULL on a path of its own
    return slot.value


def _map_update_elem(m: SymbolicMachine, index: int) -> Any:
    mp = m.map_of(1, index)
    flags = m.reg(4, index)
    src = m.reg(3, index)
    if _map_kind(mp, index) == "array":
        key = _array_key(m, index)
        # array_map_update_elem's order (as maps.MapSet.update): unknown flags, the index,
        # BPF_NOEXIST, then BPF_F_LOCK (-EINVAL: no spin lock in our values)
        lock, noexist = _bv(BPF_F_LOCK), _bv(BPF_NOEXIST)
        result = z3.If(z3.UGT(flags & ~lock, BPF_EXIST), _bv(-EINVAL),
                       z3.If(z3.UGE(key, mp.max_entries), _bv(-E2BIG),
                             z3.If((flags & noexist) != 0, _bv(-EEXIST),
                                   z3.If((flags & lock) != 0, _bv(-EINVAL), _bv(0)))))
        _copy(m, _array_value(mp, key), src, mp.value_size, result == 0, index)
        return result
    slot = m.hash_slot(mp, index)
    assert m.state is not None
    present = m.byte(slot.flag) != 0
    # the map being full is not in any input: a free choice per call, shared by both
    # programs
    is_full = m.choose(full(mp.name)(_call_number(m)))
    result = z3.If(z3.UGT(flags, BPF_EXIST), _bv(-EINVAL),
                   z3.If(z3.And(flags == BPF_NOEXIST, present), _bv(-EEXIST),
                         z3.If(z3.And(flags == BPF_EXIST, z3.Not(present)), _bv(-ENOENT),
                               z3.If(z3.And(z3.Not(present), is_full), _bv(-E2BIG), _bv(0)))))
    ok = result == 0
    _copy(m, slot.value, src, mp.value_size, ok, index)
    m.put(slot.flag, z3.If(z3.Or(ok, present), z3.BitVecVal(1, 8), z3.BitVecVal(0, 8)))
    return result


def _map_delete_elem(m: SymbolicMachine, index: int) -> Any:
    mp = m.map_of(1, index)
    if _map_kind(mp, index) == "array":
        _array_key(m, index)
        return _bv(-EINVAL)  # array elements cannot be deleted
    slot = m.hash_slot(mp, index)
    assert m.state is not None
    present = m.byte(slot.flag) != 0
    # the value's bytes stay readable, as under RCU (and as in the interpreter)
    m.put(slot.flag, z3.BitVecVal(0, 8))
    return z3.If(present, _bv(0), _bv(-ENOENT))


def _tail_call(m: SymbolicMachine, index: int) -> Any:
    return _bv(-ENOENT)  # as in the interpreter: no program array contents


# ---------------------------------------------------------------- packets

def _skb_load_bytes(m: SymbolicMachine, index: int) -> Any:
    """Copy `len` packet bytes from `offset` to `to`; -EFAULT (buffer cleared) past the end.

    As the interpreter's model: u32 offset and length, the packet window [data, data_end).
    A length that is not a constant (the verifier bounds it) is copied as one array term
    (below)."""
    if m.packet_len is None:
        raise st.Unsupported(f"insn {index}: bpf_skb_load_bytes without a packet")
    offset = m.reg(2, index) & 0xFFFFFFFF
    dst = z3.simplify(m.reg(3, index))
    length = z3.simplify(m.reg(4, index) & 0xFFFFFFFF)
    assert m.state is not None
    if not z3.is_bv_value(length):
        return _skb_load_bytes_variable(m, offset, dst, length)
    n = length.as_long()
    ok = z3.ULE(offset + n, m.packet_length())
    source = [m.byte(m.data() + offset + i) for i in range(n)]
    for i in range(n):
        byte = z3.If(ok, source[i], z3.BitVecVal(0, 8))
        m.store(dst + i, 1, byte, index)
    return z3.If(ok, _bv(0), _bv(-EFAULT))


def _skb_load_bytes_variable(m: SymbolicMachine, offset: Any, dst: Any, n: Any) -> Any:
    """The copy as one array term, `mem' = lambda a: if dst <= a < dst + n then (packet byte
    or 0) else mem[a]`: n is bounded only by the path condition, and byte-wise stores up to
    a bound make the prover's comparisons quadratic. The prover compares memory where
    either program wrote; for this write it gets one free address, which stands for all
    of them (a difference anywhere in the copy is a model for it)."""
    assert m.state is not None and m.packet_len is not None
    bad = z3.And(n != 0, z3.Not(m.in_bounds(dst, n, write=True)))
    m.state.fault = z3.simplify(z3.Or(m.state.fault, z3.And(m.state.cond, bad)))
    ok = z3.ULE(offset + n, m.packet_length())
    mem = m.state.mem
    a = z3.BitVec("copied_byte", 64)  # bound by the lambda
    inside = z3.And(z3.ULE(dst, a), z3.ULT(a - dst, n))
    byte = z3.If(ok, z3.Select(mem, m.data() + offset + (a - dst)), z3.BitVecVal(0, 8))
    m.state.mem = z3.Lambda([a], z3.If(inside, byte, z3.Select(mem, a)))
    anywhere = z3.BitVec("variable_copy_address", 64)  # free: the prover's any address
    m.written.setdefault(anywhere.get_id(), anywhere)
    return z3.If(ok, _bv(0), _bv(-EFAULT))


MAX_CLEARED_STORES = 64  # a grown tail of more bytes (or an unknown number) is one term


def _xdp_adjust(m: SymbolicMachine, index: int, head: bool) -> Any:
    """bpf_xdp_adjust_head/tail(ctx, offset), as the interpreter's model (helpers._adjust):
    the offset is the low 32 bits of r2, signed; data may not come within XDP_FRAME_SIZE
    bytes of data_hard_start (PACKET_BASE), data_end may not pass XDP_DATA_HARD_END (the
    skb_shared_info), and ETH_HLEN bytes must remain. Otherwise the call returns -EINVAL
    and changes nothing (a path of its own). On success this path's packet moves
    (PathState.packet) and a grown tail is cleared.

    The headroom a grown head uncovers holds the initial memory's bytes: any value, as in
    a driver's frame (the interpreter's, like BPF_PROG_TEST_RUN's, are zeros)."""
    if m.packet_len is None:
        return _bv(-EINVAL)
    assert m.state is not None
    delta = z3.SignExt(32, z3.Extract(31, 0, m.reg(2, index)))
    data, length = m.data(), m.packet_length()
    lo = data - PACKET_BASE  # the interpreter's window: offsets from data_hard_start
    # signed comparisons: offsets and lengths are small, delta is an int
    if head:
        new_data, new_length = data + delta, length - delta
        fails = z3.Or(lo + delta < XDP_FRAME_SIZE, new_length < ETH_HLEN)
    else:
        new_data, new_length = data, length + delta
        fails = z3.Or(new_length < ETH_HLEN, lo + new_length > XDP_DATA_HARD_END)
    fails = z3.simplify(fails)
    if z3.is_true(fails):
        return _bv(-EINVAL)
    m.fork(fails, _bv(-EINVAL))
    if not head:
        _clear_grown_tail(m, z3.simplify(data + length), z3.simplify(delta))
    m.state.packet = (z3.simplify(new_data), z3.simplify(new_length))
    return _bv(0)


def _clear_grown_tail(m: SymbolicMachine, end: Any, delta: Any) -> None:
    """Zero [end, end + delta) when delta > 0, as the kernel does for a grown tail: byte by
    byte for a small constant delta, else one array term with the prover's free address
    (as _skb_load_bytes_variable)."""
    assert m.state is not None
    if z3.is_bv_value(delta) and delta.as_signed_long() <= MAX_CLEARED_STORES:
        for i in range(max(delta.as_signed_long(), 0)):
            m.put(end + i, z3.BitVecVal(0, 8))
        return
    mem = m.state.mem
    a = z3.BitVec("cleared_byte", 64)  # bound by the lambda
    inside = z3.And(delta > 0, z3.ULT(a - end, delta))
    m.state.mem = z3.Lambda([a], z3.If(inside, z3.BitVecVal(0, 8), z3.Select(mem, a)))
    anywhere = z3.BitVec("variable_copy_address", 64)  # free: the prover's any address
    m.written.setdefault(anywhere.get_id(), anywhere)


def _xdp_adjust_head(m: SymbolicMachine, index: int) -> Any:
    return _xdp_adjust(m, index, head=True)


def _xdp_adjust_tail(m: SymbolicMachine, index: int) -> Any:
    return _xdp_adjust(m, index, head=False)


# ---------------------------------------------------------------- ring buffers

def _ringbuf_reserve(m: SymbolicMachine, index: int) -> Any:
    mp = m.map_of(1, index)
    size = _constant(m, 2, index, "bpf_ringbuf_reserve's size")
    flags = m.reg(3, index)
    # the buffer being full is not in any input: a free choice per call
    is_full = m.choose(full(mp.name)(_call_number(m)))
    fails = z3.Or(flags != 0, is_full) if size <= mp.max_entries else z3.BoolVal(True)
    m.fork(fails, _bv(0))
    return _bv(m.new_record(mp.name, size))


def _ringbuf_release(m: SymbolicMachine, index: int, submit: bool) -> Any:
    record = m.take_record(1, index)
    if submit and record is not None:
        assert m.state is not None
        m.output = tuple(m.byte(_bv(record.base) + i)
                         for i in range(record.hi))
    return _bv(0)


def _ringbuf_submit(m: SymbolicMachine, index: int) -> Any:
    return _ringbuf_release(m, index, submit=True)


def _ringbuf_discard(m: SymbolicMachine, index: int) -> Any:
    return _ringbuf_release(m, index, submit=False)


def _ringbuf_output(m: SymbolicMachine, index: int) -> Any:
    mp = m.map_of(1, index)
    size = _constant(m, 3, index, "bpf_ringbuf_output's size")
    if size > mp.max_entries:
        return _bv(-ENOSPC)
    is_full = m.choose(full(mp.name)(_call_number(m)))
    m.fork(is_full, _bv(-EAGAIN))
    src = m.reg(2, index)
    m.output = tuple(m.load(src + i, 1, index) for i in range(size))
    return _bv(0)


# ---------------------------------------------------------------- kernel memory

def _kernel_source(m: SymbolicMachine, src: Any, size: int, index: int) -> tuple[Any, list]:
    """(ok, bytes) of a read of `size` bytes at `src`: the program's own memory when `src`
    lies in a region, else kernel memory (a free function of the call and the address),
    which may also fault. A source whose region the address does not show (a pointer
    read from the context) is kernel memory: it does not alias the program's stack or
    maps, which Z3 would otherwise have to rule out at every byte."""
    assert m.state is not None
    calls = _call_number(m)
    src = z3.simplify(src)
    own = z3.simplify(m.in_bounds(src, size)) if m.region_tag(src) is not None \
        else z3.BoolVal(False)
    kernel = kernel_memory()
    readable = kernel_readable()(calls)
    data = [z3.If(own, m.byte(src + i), kernel(calls, src + i))
            for i in range(size)]
    return z3.Or(own, readable), data


def _probe_read(m: SymbolicMachine, index: int) -> Any:
    dst, src = m.reg(1, index), m.reg(3, index)
    size = _constant(m, 2, index, "bpf_probe_read's size")
    if size == 0:
        return _bv(0)
    ok, data = _kernel_source(m, src, size, index)
    for i, byte in enumerate(data):  # the kernel zeroes dst on a fault
        m.store(dst + i, 1, z3.If(ok, byte, z3.BitVecVal(0, 8)), index)
    return z3.If(ok, _bv(0), _bv(-EFAULT))


def _probe_read_str(m: SymbolicMachine, index: int) -> Any:
    """At most size - 1 bytes up to a NUL, then a NUL; returns the length with the NUL.
    Bytes after the NUL are left alone; on a fault dst is zeroed."""
    dst, src = m.reg(1, index), m.reg(3, index)
    size = _constant(m, 2, index, "bpf_probe_read_str's size")
    if size == 0:
        return _bv(0)
    ok, data = _kernel_source(m, src, size - 1, index)
    assert m.state is not None
    length = _bv(size)
    for i in reversed(range(size - 1)):
        length = z3.If(data[i] == 0, _bv(i + 1), length)
    ended = z3.BoolVal(False)  # a NUL came before byte i
    for i in range(size):
        old = m.byte(dst + i)
        byte = data[i] if i < size - 1 else z3.BitVecVal(0, 8)
        value = z3.If(ok, z3.If(ended, old, byte), z3.BitVecVal(0, 8))
        m.store(dst + i, 1, z3.simplify(value), index)
        if i < size - 1:
            ended = z3.Or(ended, data[i] == 0)
    return z3.If(ok, length, _bv(-EFAULT))


def _get_current_comm(m: SymbolicMachine, index: int) -> Any:
    """The task's name, NUL-terminated within size (strscpy_pad); its bytes are free."""
    dst = m.reg(1, index)
    size = _constant(m, 2, index, "bpf_get_current_comm's size")
    comm = current_comm()
    for i in range(size):
        byte = z3.BitVecVal(0, 8) if i == size - 1 else comm(_bv(i))
        m.store(dst + i, 1, byte, index)
    return _bv(0)


# ---------------------------------------------------------------- bpf_loop
# Not a helper model: bpf_loop calls back into the program, so the symbolic run
# (symbolic._run_path) enters the callback as a bpf-to-bpf call whose frame carries a
# LoopFrame, and calls it again when it returns 0, as the interpreter's bpf_loop does.

BPF_LOOP = HELPER_IDS["bpf_loop"]
MAX_LOOPS = 1 << 23  # bpf_loop's nr_loops limit
MAX_FRAMES = 8  # as symbolic.MAX_CALL_FRAMES


@dataclass(frozen=True)
class LoopFrame:
    """A bpf_loop in progress: the callback's index now, the count, its slot, its ctx."""

    i: int
    nr: Any  # z3 64-bit term
    target: int
    ctx: Any


def loop_call(m: SymbolicMachine, index: int, code: Mapping[int, Any]) -> None:
    """bpf_loop(nr, callback, ctx, flags) at `index`: the call goes into the trace (with
    the callback as 0: it is compared by what it does, its address moves with the code);
    then the callback is entered with i = 0, and the call returns at once on paths of
    their own where nr is 0 or above the limit. A symbolic nr makes the loop fork after
    each call; the step bound ends paths that run too long, as with any loop."""
    from epass.semantics.symbolic import Call

    s = m.state
    assert s is not None
    nr, fn, ctx, flags = (z3.simplify(m.reg(r, index)) for r in (1, 2, 3, 4))
    for what, value in (("callback", fn), ("flags", flags)):
        if not z3.is_bv_value(value):
            raise st.Unsupported(f"insn {index}: bpf_loop's {what} is not a constant")
    s.calls += 1
    s.trace = (*s.trace, Call(BPF_LOOP, (nr, _bv(0), ctx, flags, _bv(0))))
    saved = s.regs[6:11]
    if flags.as_long():
        _leave(s, index + 1, saved, _bv(-EINVAL), pop=False)
        return
    # as the interpreter's (the inlined bpf_loop): nr compared on 64 bits
    for cond, r0 in ((z3.UGT(nr, MAX_LOOPS), _bv(-E2BIG & 0xFFFFFFFF)), (nr == 0, _bv(0))):
        if not _fork(m, z3.simplify(cond), lambda o, r0=r0: _leave(o, index + 1, saved, r0,
                                                                     pop=False)):
            return
    target = (fn.as_long() - CODE_BASE) // 8
    if (fn.as_long() - CODE_BASE) % 8 or target not in code:
        raise st.Unsupported(f"insn {index}: bpf_loop's callback is not a function")
    if len(s.frames) + 1 >= MAX_FRAMES:
        raise st.Unsupported(f"insn {index}: more than {MAX_FRAMES} call frames")
    s.frames = (*s.frames, (index + 1, saved, LoopFrame(0, nr, target, ctx)))
    _call_back(s)


def loop_return(m: SymbolicMachine) -> None:
    """The callback of the innermost bpf_loop returned: the loop ends with i + 1 where r0
    is not 0, with nr where i + 1 is nr, and calls the callback again elsewhere."""
    s = m.state
    assert s is not None
    ret, saved, loop = s.frames[-1]
    stop = z3.simplify(m.reg(0, s.pc) != 0)
    if not _fork(m, stop, lambda o: _leave(o, ret, saved, _bv(loop.i + 1))):
        return
    last = z3.simplify(z3.Not(z3.ULT(loop.i + 1, loop.nr)))
    if not _fork(m, last, lambda o: _leave(o, ret, saved, loop.nr)):
        return
    s.frames = (*s.frames[:-1], (ret, saved, replace(loop, i=loop.i + 1)))
    regs = list(s.regs)
    regs[6:10] = saved[:4]  # the interpreter calls each time with the caller's r6-r9
    s.regs = tuple(regs)
    _call_back(s)


def _fork(m: SymbolicMachine, cond: Any, finish: Any) -> bool:
    """Where `cond` holds, `finish` the path (a path of its own when it may not hold);
    False when it always holds (the current path is finished)."""
    s = m.state
    assert s is not None
    if z3.is_true(cond):
        finish(s)
        return False
    if not z3.is_false(cond):
        other = replace(s, cond=z3.simplify(z3.And(s.cond, cond)))
        finish(other)
        m.todo.append(other)
        s.cond = z3.simplify(z3.And(s.cond, z3.Not(cond)))
    return True


def _call_back(s: Any) -> None:
    loop = s.frames[-1][2]
    regs = list(s.regs)
    regs[1:6] = [_bv(loop.i), loop.ctx, None, None, None]
    regs[10] = _bv(STACK_BASE + len(s.frames) * STACK_STRIDE + STACK_SIZE)
    s.regs = tuple(regs)
    s.pc = loop.target


def _leave(s: Any, ret: int, saved: tuple, r0: Any, pop: bool = True) -> None:
    """Return from bpf_loop with `r0` (from its frame, `pop`)."""
    if pop:
        s.frames = s.frames[:-1]
    regs = list(s.regs)
    regs[0] = r0
    regs[1:6] = [None] * 5
    regs[6:11] = saved
    s.regs = tuple(regs)
    s.pc = ret


# ---------------------------------------------------------------- bpf_for_each_map_elem
# As bpf_loop: the symbolic run enters the callback as a call whose frame carries a
# ForEachFrame. Over array maps only: max_entries is a constant, so the walk over the
# elements is unrolled, forking where the callback may return non-zero. The key lives
# where the interpreter puts it (helpers.for_each_map_elem), read-only.

FOR_EACH = HELPER_IDS["bpf_for_each_map_elem"]
KEY_STRIDE = 0x1_0000  # nesting level d's key at KERNEL_BASE - KEY_STRIDE * (d + 1)


@dataclass(frozen=True)
class ForEachFrame:
    """A for_each_map_elem over an array in progress: the element the callback has now,
    the map, the callback's slot, its ctx, the key's span (symbolic.Span, read-only) and
    the caller's r0 (each call of the callback starts from the caller's registers, as in
    the interpreter)."""

    i: int
    map: MapState
    target: int
    ctx: Any
    key: Any
    r0: Any


def for_each_call(m: SymbolicMachine, index: int, code: Mapping[int, Any]) -> None:
    """bpf_for_each_map_elem(map, callback, ctx, flags) at `index`: the call goes into the
    trace (the callback as 0, as for bpf_loop); flags other than 0 return -EINVAL on a path
    of their own; else the callback is entered for element 0. Hash maps: no model (the
    kernel walks them in bucket order, which no input describes)."""
    from epass.semantics.symbolic import Call, Span

    s = m.state
    assert s is not None
    mp = m.map_of(1, index)
    if mp.type not in ARRAY_TYPES:
        kind = "hash" if mp.type in HASH_TYPES else MapType(mp.type).name.lower()
        raise st.Unsupported(f"insn {index}: bpf_for_each_map_elem over {kind} map {mp.name}:"
                             " the kernel's iteration order over it is not modelled")
    fn, ctx, flags = (z3.simplify(m.reg(r, index)) for r in (2, 3, 4))
    if not z3.is_bv_value(fn):
        raise st.Unsupported(f"insn {index}: bpf_for_each_map_elem's callback is not a "
                             "constant")
    # as the interpreter lists it: r1-r5 (unset ones 0), the callback as 0
    r5 = s.regs[5] if s.regs[5] is not None else _bv(0)
    s.calls += 1
    s.trace = (*s.trace, Call(FOR_EACH, (_bv(mp.handle), _bv(0), ctx, flags, r5)))
    saved = s.regs[6:11]
    if not _fork(m, z3.simplify(flags != 0),
                 lambda o: _leave(o, index + 1, saved, _bv(-EINVAL), pop=False)):
        return
    if mp.max_entries == 0:
        _leave(s, index + 1, saved, _bv(0), pop=False)
        return
    target = (fn.as_long() - CODE_BASE) // 8
    if (fn.as_long() - CODE_BASE) % 8 or target not in code:
        raise st.Unsupported(f"insn {index}: bpf_for_each_map_elem's callback is not a "
                             "function")
    if len(s.frames) + 1 >= MAX_FRAMES:
        raise st.Unsupported(f"insn {index}: more than {MAX_FRAMES} call frames")
    # each nesting level has its own key, as each call has its own kernel stack frame
    depth = sum(isinstance(f[-1], ForEachFrame) for f in s.frames)
    key = Span(f"{mp.name}.key", KERNEL_BASE - KEY_STRIDE * (depth + 1), 0, mp.key_size,
               writable=False)
    each = ForEachFrame(0, mp, target, ctx, key, s.regs[0])
    s.frames = (*s.frames, (index + 1, saved, each))
    _call_each(s)


def for_each_return(m: SymbolicMachine) -> None:
    """The callback of the innermost for_each_map_elem returned: the walk ends with i + 1
    where r0 is not 0, with max_entries after the last element, and goes on to element
    i + 1 elsewhere."""
    s = m.state
    assert s is not None
    ret, saved, each = s.frames[-1]
    stop = z3.simplify(m.reg(0, s.pc) != 0)
    if not _fork(m, stop, lambda o: _leave(o, ret, saved, _bv(each.i + 1))):
        return
    if each.i + 1 >= each.map.max_entries:
        _leave(s, ret, saved, _bv(each.map.max_entries))
        return
    s.frames = (*s.frames[:-1], (ret, saved, replace(each, i=each.i + 1)))
    regs = list(s.regs)
    regs[6:10] = saved[:4]
    s.regs = tuple(regs)
    _call_each(s)


def _call_each(s: Any) -> None:
    """Enter the callback for element i: (map, &key, &value, ctx), the key's bytes written
    (by the kernel, not the program: they are no address a proof compares)."""
    each = s.frames[-1][2]
    mp, i = each.map, each.i
    raw = i.to_bytes(mp.key_size, "little")
    mem = s.mem
    for k, byte in enumerate(raw):
        mem = z3.Store(mem, _bv(each.key.base + k), z3.BitVecVal(byte, 8))
    s.mem = mem
    value = mp.entries[raw].base
    regs = list(s.regs)
    regs[0] = each.r0
    regs[1:6] = [_bv(mp.handle), _bv(each.key.base), _bv(value), each.ctx, None]
    regs[10] = _bv(STACK_BASE + len(s.frames) * STACK_STRIDE + STACK_SIZE)
    s.regs = tuple(regs)
    s.pc = each.target


def _no_model(name: str) -> HelperModel:
    def refuse(m: SymbolicMachine, index: int) -> Any:
        raise st.Unsupported(f"insn {index}: helper {name} has no symbolic model yet")

    return refuse


LINUX_MODELS: dict[int, HelperModel] = {
    HELPER_IDS["bpf_map_lookup_elem"]: _map_lookup_elem,
    HELPER_IDS["bpf_map_update_elem"]: _map_update_elem,
    HELPER_IDS["bpf_map_delete_elem"]: _map_delete_elem,
    HELPER_IDS["bpf_tail_call"]: _tail_call,
    HELPER_IDS["bpf_skb_load_bytes"]: _skb_load_bytes,
    HELPER_IDS["bpf_ringbuf_reserve"]: _ringbuf_reserve,
    HELPER_IDS["bpf_ringbuf_submit"]: _ringbuf_submit,
    HELPER_IDS["bpf_ringbuf_discard"]: _ringbuf_discard,
    HELPER_IDS["bpf_ringbuf_output"]: _ringbuf_output,
    HELPER_IDS["bpf_get_current_comm"]: _get_current_comm,
    HELPER_IDS["bpf_xdp_adjust_head"]: _xdp_adjust_head,
    HELPER_IDS["bpf_xdp_adjust_tail"]: _xdp_adjust_tail,
}
for _name in ("bpf_probe_read_kernel", "bpf_probe_read_user", "bpf_probe_read"):
    LINUX_MODELS[HELPER_IDS[_name]] = _probe_read
for _name in ("bpf_probe_read_kernel_str", "bpf_probe_read_user_str", "bpf_probe_read_str"):
    LINUX_MODELS[HELPER_IDS[_name]] = _probe_read_str

# Pointer arguments (positions among r1-r5) that a model above only writes through, or
# whose bytes it sends out (Call.output): what lands there is in memory, where the
# program's later uses compare it, so a proof compares the call without the address. A
# transformation may move a buffer within the stack (stack_depth reuses a dead frame).
WRITE_ONLY_ARGS: dict[int, tuple[int, ...]] = {
    HELPER_IDS["bpf_skb_load_bytes"]: (2,),  # to
    HELPER_IDS["bpf_get_current_comm"]: (0,),  # buf
    HELPER_IDS["bpf_ringbuf_output"]: (1,),  # data: its bytes are the call's output
}
for _name in ("bpf_probe_read_kernel", "bpf_probe_read_user", "bpf_probe_read",
              "bpf_probe_read_kernel_str", "bpf_probe_read_user_str", "bpf_probe_read_str"):
    WRITE_ONLY_ARGS[HELPER_IDS[_name]] = (0,)  # dst


def compared_args(helper_id: int, args: tuple[Any, ...], zero: Any) -> tuple[Any, ...]:
    """A modelled helper call's arguments as proofs compare them: write-only buffers as
    `zero`."""
    skip = WRITE_ONLY_ARGS.get(helper_id, ())
    return tuple(zero if k in skip else a for k, a in enumerate(args))
# helpers that call back into the program: an uninterpreted result would be wrong (only
# through callx; symbolic._run_path runs those calls itself)
for _name in ("bpf_loop", "bpf_for_each_map_elem"):
    LINUX_MODELS[HELPER_IDS[_name]] = _no_model(_name)
