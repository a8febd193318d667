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

from typing import TYPE_CHECKING, Any

import z3

from epass.isa import HELPER_IDS
from epass.semantics import step as st
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
from epass.semantics.memory import MAP_STRIDE
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


def _map_lookup_elem(m: SymbolicMachine, index: int) -> Any:
    mp = m.map_of(1, index)
    if _map_kind(mp, index) == "array":
        key = _array_key(m, index)
        return z3.If(z3.ULT(key, mp.max_entries), _array_value(mp, key), _bv(0))
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
    The length must be a constant (it is, in every program the verifier accepts with a
    stack buffer)."""
    if m.packet_len is None:
        raise st.Unsupported(f"insn {index}: bpf_skb_load_bytes without a packet")
    n = _constant(m, 4, index, "bpf_skb_load_bytes' length") & 0xFFFFFFFF
    offset = m.reg(2, index) & 0xFFFFFFFF
    dst = m.reg(3, index)
    ok = z3.ULE(offset + n, m.packet_len)
    assert m.state is not None
    source = [m.byte(m.data() + offset + i) for i in range(n)]
    for i in range(n):
        byte = z3.If(ok, source[i], z3.BitVecVal(0, 8))
        m.store(dst + i, 1, byte, index)
    return z3.If(ok, _bv(0), _bv(-EFAULT))


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
}
for _name in ("bpf_probe_read_kernel", "bpf_probe_read_user", "bpf_probe_read"):
    LINUX_MODELS[HELPER_IDS[_name]] = _probe_read
for _name in ("bpf_probe_read_kernel_str", "bpf_probe_read_user_str", "bpf_probe_read_str"):
    LINUX_MODELS[HELPER_IDS[_name]] = _probe_read_str
# helpers that move the packet or call back into the program: an uninterpreted result
# would be wrong
for _name in ("bpf_xdp_adjust_head", "bpf_xdp_adjust_tail", "bpf_loop",
              "bpf_for_each_map_elem"):
    LINUX_MODELS[HELPER_IDS[_name]] = _no_model(_name)
