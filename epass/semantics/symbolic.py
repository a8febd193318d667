"""The Z3 encoding: the same `step()` run on Z3 bit-vectors, over every path.

Memory is one Z3 array from 64-bit addresses to bytes, over the same
fixed region layout as the interpreter (memory.py). Bytes nobody wrote are
the initial array's: unknown, unless the caller constrains them (packet
bytes, the conformance suite's memory, map contents). An access outside
every region adds to the run's fault condition instead of stopping it.

Paths fork at branches whose condition is not decided by simplification
and are explored depth first; each finished path contributes its r0 under
its path condition, so the result is `r0 = ite(path1, v1, ite(path2, ...))`.
A path longer than the step bound makes the result incomplete (`bounded`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import z3

from epass.isa import (
    HELPER_IDS,
    Alu,
    AluOp,
    CallKind,
    CallReg,
    Insn,
    LoadImm64,
    PseudoKind,
    helper_name,
    slot_count,
)
from epass.isa import Call as CallInsn
from epass.isa.helpers import helper_arg_count
from epass.semantics import step as st
from epass.semantics.addresses import HASH_AREA_SHIFT, REGION_SHIFT, Addresses
from epass.semantics.ctx import ContextLayout, layout_for
from epass.semantics.domain import SYMBOLIC
from epass.semantics.interp import CODE_BASE, MapSpec
from epass.semantics.maps import ARRAY_TYPES, HASH_TYPES, MapSet, MapState
from epass.semantics.memory import (
    CTX_BASE,
    MAP_STRIDE,
    MEM_BASE,
    PACKET_BASE,
    PACKET_HEADROOM,
    RECORD_STRIDE,
    RINGBUF_BASE,
    STACK_BASE,
    STACK_SIZE,
    STACK_STRIDE,
    Memory,
)
from epass.semantics.symbolic_helpers import (
    BPF_LOOP,
    FOR_EACH,
    LINUX_MODELS,
    ForEachFrame,
    LoopFrame,
    compared_args,
    for_each_call,
    for_each_return,
    loop_call,
    loop_return,
)
from epass.uapi import ProgType

MAX_CALL_FRAMES = 8
# deeper chains than the kernel allows are modelled too (their frames' spans are added on
# first use): a program rejected for its call depth can be compared with its repair
MODELLED_FRAMES = 16
# helpers that read no memory the program can see and write none: an uninterpreted
# function of their arguments is exact for them
PURE_HELPERS = frozenset(HELPER_IDS[n] for n in (
    "bpf_ktime_get_ns", "bpf_get_prandom_u32", "bpf_get_smp_processor_id",
    "bpf_get_current_pid_tgid", "bpf_get_current_uid_gid", "bpf_get_current_task",
    "bpf_get_numa_node_id", "bpf_get_current_cgroup_id", "bpf_jiffies64",
    "bpf_ktime_get_boot_ns", "bpf_ktime_get_coarse_ns", "bpf_ktime_get_tai_ns"))
TAIL_CALL = HELPER_IDS["bpf_tail_call"]
SKF_LL_OFF = -0x200000  # LD_ABS offsets from the mac header
SKF_NET_OFF = -0x100000  # LD_ABS offsets from the network header
_DIVISIONS = (AluOp.DIV, AluOp.SDIV, AluOp.MOD, AluOp.SMOD)


@dataclass(frozen=True)
class Span:
    """An address range a path may access: [base + lo, base + hi).

    With a `stride` (a power of two dividing `base`), the range repeats every `stride`
    bytes, `count` times (an array map's values), or 2**32 times when `count` is 0 (a
    hash map's value slots). A span that is not `writable` may be read only (a store to it
    is a fault: a for_each_map_elem callback's key)."""

    name: str
    base: int
    lo: Any  # z3 64-bit expression or int
    hi: Any
    stride: int = 0
    count: int = 0
    writable: bool = True


@dataclass(frozen=True)
class HashSlot:
    """Where a hash map keeps the value of one key.

    Each map has its own area; a key's slot is an uninterpreted function of the key, so
    equal keys share a slot and (up to constraints the prover adds) different keys do
    not. The byte after the value's room says whether the key is present; no program
    access can reach it (the span allows only the value's bytes)."""

    key: Any  # the key, a bit-vector of 8 * key_size bits
    value: Any  # address of the value
    flag: Any  # address of the presence byte



@dataclass(frozen=True)
class HashArea:
    """A hash map's slots: slot s's value at base + s * stride, its presence byte last."""

    map_name: str
    key_size: int
    value_size: int
    base: int
    stride: int

    def slot_function(self) -> Any:
        return z3.Function(f"{self.map_name}.slot", z3.BitVecSort(8 * self.key_size),
                           z3.BitVecSort(32))

    @property
    def shift(self) -> int:
        return self.stride.bit_length() - 1

    def slot(self, key: Any) -> HashSlot:
        value, flag = self.slot_at(self.slot_function()(key))
        return HashSlot(key, value, flag)

    def slot_at(self, index: Any) -> tuple[Any, Any]:
        """(value, presence byte) addresses of slot `index` (a 32-bit term). Built as a
        concatenation, so that bounds checks of `value + offset` simplify away."""
        high = z3.BitVecVal(self.base >> (32 + self.shift), 32 - self.shift)
        value = z3.Concat(high, index, z3.BitVecVal(0, self.shift))
        return value, z3.Concat(high, index, z3.BitVecVal(self.stride - 1, self.shift))


def hash_area(position: int, name: str, key_size: int, value_size: int) -> HashArea:
    """The area of the map at `position` among a run's maps: far above every region."""
    stride = 16
    while stride < value_size + 1:
        stride *= 2
    if stride > 1 << 20:
        raise st.Unsupported(f"map {name}: values of {value_size} bytes are too large for "
                             "the symbolic model")
    return HashArea(name, key_size, value_size, (position + 1) << 52, stride)


@dataclass(frozen=True)
class Call:
    """One helper call on a path: its id, r1-r5, and the bytes it sent out (a ring buffer
    record's contents)."""

    helper: int
    args: tuple[Any, ...]
    output: tuple[Any, ...] = ()


@dataclass
class PathState:
    """One path's state; z3 terms are immutable, so copying is cheap."""

    regs: tuple[Any, ...]
    mem: Any  # z3 Array(BitVec 64, BitVec 8)
    cond: Any  # z3 Bool: the path condition
    pc: int
    # (return slot, saved r6-r10[, the LoopFrame of a bpf_loop callback, or the
    # ForEachFrame of a for_each_map_elem callback])
    frames: tuple[tuple[Any, ...], ...] = ()
    steps: int = 0
    fault: Any = field(default_factory=lambda: z3.BoolVal(False))
    calls: int = 0
    trace: tuple[Call, ...] = ()  # helper calls, in order
    div_zero: Any = field(default_factory=lambda: z3.BoolVal(False))  # a DIV/MOD by zero
    records: tuple[Span, ...] = ()  # ring buffer records reserved and not yet released
    # (data, length) once an xdp_adjust_* moved the packet on this path (64-bit terms);
    # None: as at the start, [PACKET_BASE + PACKET_HEADROOM, + the run's packet length)
    packet: tuple[Any, Any] | None = None


@dataclass
class SymbolicResult:
    """r0 as one term over all finished paths; `complete` is False if a path hit the bound."""

    r0: Any
    mem: Any
    fault: Any  # z3 Bool: some access on some path was out of bounds
    paths: int
    complete: bool
    memory0: Any  # the initial memory array, to constrain inputs
    packet_len: Any = None  # z3 64-bit length of the packet (a constant when given)
    data_end: Any = None  # z3 address of data_end at exit
    # per finished path: (condition, exit slot, helper calls made); the slot is None for
    # an exit a helper model forced (bpf_conformance's unwind)
    path_ends: list[tuple[Any, int | None, tuple[Call, ...]]] = field(default_factory=list)
    div_zero: Any = None  # z3 Bool: some path divides by zero (eBPF defines it; a hazard)
    observed: list[PathState] = field(default_factory=list)  # see SymbolicEnv.observe
    hashes: dict[str, HashArea] = field(default_factory=dict)  # by map name
    keys: list[tuple[str, Any]] = field(default_factory=list)  # (map name, key) looked up
    # every address written (by any path), with its region tag (None: not known)
    written: list[tuple[Any, int | None]] = field(default_factory=list)
    choices: list[Any] = field(default_factory=list)  # free choices replays take as false
    start: Any = None  # the memory every path starts from (initial_memory(memory0))
    # conditions of the paths a bound cut off (their prefix so far): when none can hold,
    # the finished paths cover every input although `complete` is False
    unfinished: list[Any] = field(default_factory=list)
    # z3 address of data at exit: PACKET_BASE + PACKET_HEADROOM unless a path moved it
    # (xdp_adjust_head); data_end is then an ite over the finished paths too
    data: Any = None
    # reads of never-written registers: (slot, register, the free value the read gave)
    unwritten: list[tuple[int, int, Any]] = field(default_factory=list)
    addresses: Addresses | None = None  # the caches the run used (SymbolicEnv.addresses)
    # steps of all paths together, and of the longest one: a complete run is the same run
    # under any bounds at least these (prove reuses runs of an original)
    steps: int = 0
    longest: int = 0


HelperModel = Callable[["SymbolicMachine", int], Any]
MAX_PACKET = 4096  # a symbolic packet length lies in [ETH_HLEN, MAX_PACKET]
ETH_HLEN = 14


@dataclass
class SymbolicEnv:
    """What a symbolic run starts from; inputs are unconstrained unless given.

    `packet_len` None makes the length a variable `packet_len`; packet bytes, the
    context's plain fields and map values are the initial memory's (`memory0`).
    """

    prog_type: ProgType | int | None = None
    mem_size: int | None = None  # bpf_conformance: r1 = mem, r2 = its size
    packet_len: int | None = None
    maps: list[MapSpec] = field(default_factory=list)
    helpers: dict[int, HelperModel] | None = None  # replaces the Linux models
    indirect_calls: bool = False
    # proofs: a helper without a model that may touch memory (or a tail call, which hands
    # the state to another program) is unsupported instead of an uninterpreted function
    strict_helpers: bool = False
    max_steps: int = 100_000  # per path
    max_total_steps: int = 1_000_000  # over all paths: past it the result is incomplete
    observe: int | None = None  # record the state of every path that reaches this slot
    # loop pairing (epass.smt.loops): start from `start` instead of the program's entry,
    # and end a path at any slot of `cuts` (slot -> cut point id) it reaches
    start: Segment | None = None
    cuts: dict[int, int] | None = None
    # caches of address and memory terms (addresses.py) for runs that share them: the
    # prover's two runs and its comparisons take the same memories apart only once
    addresses: Addresses | None = None


@dataclass
class Segment:
    """A run that starts mid-program, at a cut point, from a state of fresh variables."""

    pc: int
    regs: list[Any]
    mem: Any  # the memory array (non-hash addresses)
    hashes: Any  # the hash areas' array
    calls: Any  # how many helper calls came before (a 64-bit term)


class SymbolicMachine:
    """Implements `step.Machine` for one path at a time."""

    d = SYMBOLIC

    def __init__(self, spans: list[Span], helpers: dict[int, HelperModel],
                 indirect_calls: bool, layout: ContextLayout | None = None,
                 packet_len: Any = None, maps: MapSet | None = None) -> None:
        self.spans = spans
        self.helpers = helpers
        self.indirect_calls = indirect_calls
        self.layout = layout
        self.packet_len = packet_len
        self.maps = maps
        self.state: PathState | None = None
        # early exits (a helper model's, or LD_ABS out of the packet): the path's condition,
        # r0, its memory, its helper calls and its packet (PathState.packet) at that point
        self.exits: list[tuple[Any, Any, Any, tuple, Any]] = []
        self.observe: int | None = None
        self.strict_helpers = False
        self.observed: list[PathState] = []  # states of paths at `observe`, before it runs
        self.hashes: dict[int, HashArea] = {}  # by map handle
        self.keys: list[tuple[str, Any]] = []  # (map name, key) of every hash map access
        self.todo: list[PathState] = []  # paths still to run (forks go here)
        self.output: tuple[Any, ...] = ()  # set by a helper model: the bytes it sends out
        self._fork: tuple[PathState, Any, Any] | None = None
        self.addresses = Addresses()
        self.written: dict[int, Any] = {}  # every address any path wrote, by term id
        self.choices: dict[int, Any] = {}  # see choose()
        self.call_base: Any = z3.BitVecVal(0, 64)  # calls made before the run's start
        self.cuts: dict[int, int] = {}  # slot -> cut point id (SymbolicEnv.cuts)
        self.unwritten: list[tuple[int, int, Any]] = []  # see reg(): (slot, register, value)

    def data(self) -> Any:
        """This path's data (xdp_adjust_head moves it)."""
        if self.state is not None and self.state.packet is not None:
            return self.state.packet[0]
        return z3.BitVecVal(PACKET_BASE + PACKET_HEADROOM, 64)

    def packet_length(self) -> Any:
        """This path's data_end - data (xdp_adjust_head/tail change it); the run's
        `packet_len` until then."""
        if self.state is not None and self.state.packet is not None:
            return self.state.packet[1]
        return self.packet_len

    def data_end(self) -> Any:
        return self.data() + self.packet_length()

    # ------------------------------------------------------------ Machine

    def reg(self, n: int, index: int) -> Any:
        assert self.state is not None
        value = self.state.regs[n]
        if value is None:
            # the verifier refuses such a read (!read_ok), but the hardware register holds
            # something: any value, chosen afresh at each such read, and kept in the
            # register, so a program whose result does not depend on it can be proven
            value = z3.FreshConst(z3.BitVecSort(64), f"unwritten.r{n}@{index}")
            self.unwritten.append((index, n, value))
            regs = list(self.state.regs)
            regs[n] = value
            self.state.regs = tuple(regs)
        return value

    def set_reg(self, n: int, value: Any) -> None:
        assert self.state is not None
        regs = list(self.state.regs)
        regs[n] = z3.simplify(value)
        self.state.regs = tuple(regs)

    def in_bounds(self, addr: Any, size: int, write: bool = False) -> Any:
        """Whether `size` bytes at `addr` lie in one region this path may access (`write`:
        may write)."""
        assert self.state is not None
        ok = []
        # the keys of the for_each_map_elem calls in progress on this path
        keys = [f[-1].key for f in self.state.frames if isinstance(f[-1], ForEachFrame)]
        # the address's region, when known: spans in other regions cannot hold it, and a
        # constant address is placed without Z3 (the same condition, simplified)
        tag = self.addresses.region(addr)
        value = addr.as_long() if isinstance(size, int) and z3.is_bv_value(addr) else None
        for s in (*self.spans, *self.state.records, *keys):
            if write and not s.writable:
                continue
            where = None if s.name == "packet" else _span_tag(s)
            if where is not None and tag is not None and where != tag:
                continue
            if where is not None and value is not None:
                if _holds(s, value, size):
                    return z3.BoolVal(True)
                continue
            if s.stride:  # slots: the right place, then room in a slot
                shift = s.stride.bit_length() - 1
                low = z3.ZeroExt(64 - shift, z3.Extract(shift - 1, 0, addr))
                if s.count:
                    place = z3.And(z3.ULE(s.base, addr), z3.ULT(addr, s.base + s.count * s.stride))
                else:
                    place = z3.Extract(63, 32 + shift, addr) == s.base >> (32 + shift)
                ok.append(z3.And(place, z3.ULE(low + size, s.hi)))
                continue
            lo = z3.BitVecVal(s.base, 64) + s.lo
            hi = z3.BitVecVal(s.base, 64) + s.hi
            if s.name == "packet" and self.state.packet is not None:  # moved on this path
                lo, hi = self.data(), self.data_end()
            ok.append(z3.And(z3.ULE(lo, addr), z3.ULE(addr + size, hi), z3.ULT(addr, hi)))
        return z3.Or(*ok) if ok else z3.BoolVal(False)

    def _check(self, addr: Any, size: int, write: bool = False) -> None:
        assert self.state is not None
        bad = z3.simplify(z3.Not(self.in_bounds(addr, size, write)))
        if not z3.is_false(bad):
            self.state.fault = z3.simplify(z3.Or(self.state.fault, z3.And(self.state.cond, bad)))

    def load(self, addr: Any, size: int, index: int) -> Any:
        assert self.state is not None
        addr = z3.simplify(addr)
        if self.layout is not None and z3.is_bv_value(addr):
            off = addr.as_long() - CTX_BASE
            field_ = self.layout.pointer_at(off, size) if 0 <= off < self.layout.size else None
            if field_ is not None:  # ctx->data and friends: the kernel loads packet pointers
                return self.data_end() if field_.what == "data_end" else self.data()
        self._check(addr, size)
        mem, at = self.state.mem, self.addresses
        value = at.read(mem, addr)
        for i in range(1, size):
            value = z3.Concat(at.read(mem, at.offset(addr, i)), value)  # little endian
        return z3.simplify(value)

    def byte(self, addr: Any) -> Any:
        """The byte at `addr` in this path's memory (addresses.py: past the stores that
        cannot alias it)."""
        assert self.state is not None
        return self.addresses.read(self.state.mem, z3.simplify(addr))

    def region_tag(self, addr: Any) -> int | None:
        return self.addresses.tag(addr)

    def store(self, addr: Any, size: int, value: Any, index: int) -> None:
        assert self.state is not None
        addr = z3.simplify(addr)
        self._check(addr, size, write=True)
        for i in range(size):
            self._put(self.addresses.offset(addr, i), z3.Extract(8 * i + 7, 8 * i, value))

    def put(self, addr: Any, byte: Any) -> None:
        """Write one byte, unchecked (helper models check what they must themselves);
        every address written is remembered for the prover's comparisons."""
        self._put(z3.simplify(addr), byte)

    def _put(self, addr: Any, byte: Any) -> None:
        """put() at a simplified address."""
        assert self.state is not None
        self.written.setdefault(addr.get_id(), addr)
        self.state.mem = self.addresses.store(self.state.mem, addr, byte)

    def pseudo_address(self, insn: LoadImm64, index: int) -> Any:
        if insn.kind == PseudoKind.IMM:
            return z3.BitVecVal(insn.imm, 64)
        if insn.kind == PseudoKind.FUNC:
            return z3.BitVecVal(CODE_BASE + 8 * (index + 1 + insn.imm), 64)
        if self.maps is not None and insn.kind in (PseudoKind.MAP_IDX, PseudoKind.MAP_FD,
                                                    PseudoKind.MAP_IDX_VALUE,
                                                    PseudoKind.MAP_VALUE):
            if not 0 <= insn.imm < len(self.maps.maps):
                raise st.Unsupported(f"insn {index}: lddw refers to map {insn.imm}, "
                                     "which this run does not have")
            m = self.maps.maps[insn.imm]
            if insn.kind in (PseudoKind.MAP_IDX, PseudoKind.MAP_FD):
                return z3.BitVecVal(m.handle, 64)
            region = m.entries.get((0).to_bytes(4, "little"))
            if region is None:
                raise st.Unsupported(f"insn {index}: lddw of a value of map {m.name}")
            return z3.BitVecVal(region.base + insn.aux, 64)
        raise st.Unsupported(f"insn {index}: lddw of {insn.kind.name} has no symbolic model yet")

    def packet_load(self, offset: Any, size: int, index: int) -> Any:
        """LD_ABS/LD_IND as the interpreter runs them: a signed 32-bit offset (SKF_LL_OFF
        and SKF_NET_OFF address the mac and network headers, the latter 14 bytes in), a
        big-endian value, and the program ends with r0 = 0 outside the packet."""
        if self.packet_len is None:
            self.exit_when(z3.BoolVal(True), z3.BitVecVal(0, 64))
            return z3.BitVecVal(0, 8 * size)
        off = z3.SignExt(32, z3.Extract(31, 0, offset))
        ll, net = z3.BitVecVal(SKF_LL_OFF, 64), z3.BitVecVal(SKF_NET_OFF, 64)
        adjusted = z3.If(off < net, off - ll, z3.If(off < 0, off + (ETH_HLEN - SKF_NET_OFF),
                                                   off))
        outside = z3.Or(off < ll, z3.UGT(adjusted + size, self.packet_length()))
        self.exit_when(outside, z3.BitVecVal(0, 64))
        assert self.state is not None
        addr = self.data() + adjusted
        value = self.byte(addr)
        for i in range(1, size):
            value = z3.Concat(value, self.byte(addr + i))  # network order
        return z3.simplify(value)

    def call_helper(self, helper_id: int, index: int) -> None:
        assert self.state is not None
        self.output = ()
        self._fork = None
        model = self.helpers.get(helper_id)
        if self.strict_helpers and (helper_id == TAIL_CALL or (
                model is None and helper_id not in PURE_HELPERS)):
            name = helper_name(helper_id) or f"helper#{helper_id}"
            raise st.Unsupported(f"insn {index}: helper {name} may read or write memory (or "
                                 "hand over to another program) and has no model for proofs")
        if model is None:
            result = self._uninterpreted(helper_id)
        else:
            result = model(self, index)
        args = tuple(r if r is not None else z3.BitVecVal(0, 64) for r in self.state.regs[1:6])
        if model is not None:
            args = compared_args(helper_id, args, z3.BitVecVal(0, 64))
        if self._fork is not None:  # the other outcome: its state from before the model ran
            other, cond, r0 = self._fork
            other.cond = z3.simplify(z3.And(other.cond, cond))
            self.state.cond = z3.simplify(z3.And(self.state.cond, z3.Not(cond)))
            self._finish_call(other, helper_id, args, (), r0)
            other.pc = index + 1  # helper calls are one slot
            self.todo.append(other)
        self._finish_call(self.state, helper_id, args, self.output, result)

    @staticmethod
    def _finish_call(state: PathState, helper_id: int, args: tuple[Any, ...],
                     output: tuple[Any, ...], result: Any) -> None:
        state.calls += 1
        state.trace = (*state.trace, Call(helper_id, args, output))
        regs = list(state.regs)
        regs[0] = z3.simplify(result)
        for r in range(1, 6):
            regs[r] = None
        state.regs = tuple(regs)

    def fork(self, cond: Any, r0: Any) -> None:
        """For a helper model, before it changes anything: when `cond` holds the call
        returns `r0` and does nothing else (a path of its own); the model goes on for the
        other case."""
        assert self.state is not None
        cond = z3.simplify(cond)
        if z3.is_false(cond):
            return
        self._fork = (replace(self.state), cond, r0)

    def call_number(self) -> Any:
        """How many helper calls came before this one (from the segment's start)."""
        assert self.state is not None
        return z3.simplify(self.call_base + self.state.calls)

    def choose(self, choice: Any) -> Any:
        """Note a free Boolean choice (a map being full) that replays take as false."""
        self.choices.setdefault(choice.get_id(), choice)
        return choice

    def hash_slot(self, mp: MapState, index: int) -> HashSlot:
        """The slot of the key r2 points to, in hash map `mp`."""
        area = self.hashes[mp.handle]
        key = self.load(self.reg(2, index), mp.key_size, index)
        self.keys.append((mp.name, key))
        return area.slot(key)

    def new_record(self, name: str, size: int) -> int:
        """Reserve a ring buffer record of `size` bytes: the first free address, as the
        interpreter picks it."""
        assert self.state is not None
        taken = {r.base for r in self.state.records}
        n = 0
        while RINGBUF_BASE + n * RECORD_STRIDE in taken:
            n += 1
        base = RINGBUF_BASE + n * RECORD_STRIDE
        self.state.records = (*self.state.records, Span(f"{name}.record{n}", base, 0, size))
        return base

    def take_record(self, n: int, index: int) -> Span | None:
        """Release the record r`n` points to. Anything but a record's start is a fault on
        this path (as in the interpreter), and None."""
        assert self.state is not None
        value = z3.simplify(self.reg(n, index))
        for record in self.state.records:
            if z3.is_bv_value(value) and value.as_long() == record.base:
                self.state.records = tuple(r for r in self.state.records if r is not record)
                return record
        if not z3.is_bv_value(value):
            raise st.Unsupported(f"insn {index}: ringbuf submit/discard of a symbolic pointer")
        self.state.fault = z3.simplify(z3.Or(self.state.fault, self.state.cond))
        return None

    def map_of(self, n: int, index: int) -> MapState:
        """The map whose handle r`n` holds (it must be a constant: an lddw of the map)."""
        value = z3.simplify(self.reg(n, index))
        m = self.maps.by_handle(value.as_long()) if self.maps and z3.is_bv_value(value) else None
        if m is None:
            raise st.Unsupported(f"insn {index}: r{n} is not a known map")
        return m

    def _uninterpreted(self, helper_id: int) -> Any:
        """An unknown helper: a function of its arguments and of how many calls came before."""
        assert self.state is not None
        return uninterpreted_helper(helper_id)(self.call_number(),
                                               *helper_args(helper_id, self.state.regs[1:6]))

    def exit_when(self, cond: Any, r0: Any) -> None:
        """End the program with `r0` on this path when `cond` holds (for helper models)."""
        assert self.state is not None
        self.exits.append((z3.And(self.state.cond, cond), r0, self.state.mem,
                           self.state.trace, self.state.packet))
        self.state.cond = z3.simplify(z3.And(self.state.cond, z3.Not(cond)))


def _span_tag(s: Span) -> int | None:
    """The region tag (addresses.tag_of) of every address span `s` may hold, when its
    bounds are constants within one region."""
    if s.stride:
        if not isinstance(s.hi, int):
            return None
        if not s.count:  # a hash area's slots: its own tag
            return s.base >> REGION_SHIFT
        first, last = s.base, s.base + s.count * s.stride - 1
    elif isinstance(s.lo, int) and isinstance(s.hi, int) and s.lo < s.hi:
        first, last = s.base + s.lo, s.base + s.hi - 1
    else:
        return None
    tag = first >> REGION_SHIFT
    return tag if last >> REGION_SHIFT == tag and last < 1 << 64 else None


def _holds(s: Span, addr: int, size: int) -> bool:
    """in_bounds' condition for span `s` (constant bounds: _span_tag) and a constant
    address, computed as Z3 would, modulo 2**64."""
    wrap = (1 << 64) - 1
    if s.stride:
        shift = s.stride.bit_length() - 1
        low = addr & (s.stride - 1)
        if s.count:
            place = s.base <= addr < (s.base + s.count * s.stride) & wrap
        else:
            place = addr >> (32 + shift) == s.base >> (32 + shift)
        return place and (low + size) & wrap <= s.hi & wrap
    lo, hi = (s.base + s.lo) & wrap, (s.base + s.hi) & wrap
    return lo <= addr and (addr + size) & wrap <= hi and addr < hi


HASH0 = z3.Array("hash0", z3.BitVecSort(64), z3.BitVecSort(8))


def initial_memory(mem0: Any, hashes: Any) -> Any:
    """What every path starts from: `mem0`, except in the hash areas, whose bytes come from
    an array of their own (`hashes`). Hash slot addresses depend on keys read from `mem0`;
    were they indices of `mem0` too, the array would be read at indices computed from its
    own contents, which Z3 handles badly."""
    a = z3.BitVec("address", 64)
    return z3.Lambda([a], z3.If(z3.Extract(63, HASH_AREA_SHIFT, a) == 0, z3.Select(mem0, a),
                                z3.Select(hashes, a)))


def initial_byte(result: SymbolicResult, addr: Any) -> Any:
    """The initial byte at `addr` of a run (for callers constraining inputs)."""
    return z3.Select(result.start, addr)


def helper_args(helper_id: int, regs: Sequence[Any]) -> list[Any]:
    """r1-r5 as a helper without a model sees them: the registers past its arguments (and
    unset ones) are 0, so that what a transformation leaves there does not count."""
    count = helper_arg_count(helper_id)
    return [r if k < count and r is not None else z3.BitVecVal(0, 64)
            for k, r in enumerate(regs)]


def uninterpreted_helper(helper_id: int) -> Any:
    """The function standing for a helper without a model: (call number, r1-r5) -> r0."""
    name = helper_name(helper_id) or f"helper{helper_id}"
    return z3.Function(name, *([z3.BitVecSort(64)] * 6), z3.BitVecSort(64))


def run_symbolic(insns: list[Insn], env: SymbolicEnv | None = None, *,
                 mem_size: int | None = None, max_steps: int = 100_000,
                 helpers: dict[int, HelperModel] | None = None,
                 indirect_calls: bool = False) -> SymbolicResult:
    """Explore every path of a program; `env` (or the keyword shortcuts) says what it gets.

    The initial memory is the unconstrained array `memory0` of the result.
    """
    if env is None:
        env = SymbolicEnv(mem_size=mem_size, max_steps=max_steps, helpers=helpers,
                          indirect_calls=indirect_calls)
    code: dict[int, Insn] = {}
    slot = 0
    for insn in insns:
        code[slot] = insn
        slot += slot_count(insn)
    mem0 = z3.Array("mem0", z3.BitVecSort(64), z3.BitVecSort(8))
    start = initial_memory(mem0, HASH0)
    if env.start is not None:
        mem0 = env.start.mem
        start = initial_memory(mem0, env.start.hashes)
    spans = [Span(f"stack{k}", STACK_BASE + k * STACK_STRIDE, 0, STACK_SIZE)
             for k in range(MAX_CALL_FRAMES)]
    regs: list[Any] = [None] * 11
    layout = None
    packet_len: Any = None
    maps = MapSet(Memory())  # the interpreter's allocation: same value addresses
    hashes: dict[int, HashArea] = {}
    for position, spec in enumerate(env.maps):
        m = maps.add(spec.name, spec.type, spec.key_size, spec.value_size, spec.max_entries,
                     spec.contents)
        if spec.type in HASH_TYPES:
            # a hash map's values live in its own area (HashArea); the regions of its
            # initial contents are only allocated, to keep the interpreter's addresses
            area = hash_area(position, spec.name, spec.key_size, spec.value_size)
            hashes[m.handle] = area
            spans.append(Span(f"{spec.name}[*]", area.base, 0, spec.value_size, area.stride))
            continue
        if spec.type in ARRAY_TYPES and m.entries:  # one span for all the values
            first = m.entries[(0).to_bytes(4, "little")]
            spans.append(Span(f"{spec.name}[*]", first.base, 0, spec.value_size, MAP_STRIDE,
                              len(m.entries)))
            continue
        for region in m.entries.values():
            spans.append(Span(region.name, region.base, 0, len(region.data)))
    if env.mem_size is not None:
        spans.append(Span("mem", MEM_BASE, 0, env.mem_size))
        regs[1] = z3.BitVecVal(MEM_BASE if env.mem_size else 0, 64)
        regs[2] = z3.BitVecVal(env.mem_size, 64)
    else:
        layout = layout_for(env.prog_type)
        spans.append(Span("ctx", CTX_BASE, 0, layout.size))
        regs[1] = z3.BitVecVal(CTX_BASE, 64)
        if layout.has_packet:
            if env.packet_len is None:
                packet_len = z3.BitVec("packet_len", 64)
            else:
                packet_len = z3.BitVecVal(env.packet_len, 64)
            spans.append(Span("packet", PACKET_BASE, z3.BitVecVal(PACKET_HEADROOM, 64),
                              PACKET_HEADROOM + packet_len))
    regs[10] = z3.BitVecVal(STACK_BASE + STACK_SIZE, 64)
    table = env.helpers if env.helpers is not None else LINUX_MODELS
    machine = SymbolicMachine(spans, table, env.indirect_calls, layout, packet_len, maps)
    machine.observe = env.observe
    machine.strict_helpers = env.strict_helpers
    machine.hashes = hashes
    machine.cuts = env.cuts or {}
    if env.addresses is not None:
        machine.addresses = env.addresses
    todo = machine.todo
    if env.start is not None:
        machine.call_base = env.start.calls
        todo.append(PathState(tuple(env.start.regs), start, _packet_bounds(packet_len),
                              env.start.pc))
    else:
        todo.append(PathState(tuple(regs), start, _packet_bounds(packet_len), 0))
    finished: list[tuple[Any, Any, Any]] = []  # (cond, r0, mem)
    windows: list[Any] = []  # per finished path: its PathState.packet
    ends: list[tuple[Any, int | None, tuple[Call, ...]]] = []
    div_zero: Any = z3.BoolVal(False)
    fault = z3.BoolVal(False)
    complete = True
    unfinished: list[Any] = []
    total = longest = 0
    while todo:
        if total > env.max_total_steps:
            complete = False
            unfinished += [s.cond for s in todo]
            break
        state = todo.pop()
        machine.state = state
        outcome = _run_path(machine, code, todo, env.max_steps)
        total += state.steps
        longest = max(longest, state.steps)
        fault = z3.Or(fault, state.fault)
        if outcome is None:
            complete = False
            unfinished.append(state.cond)
            continue
        div_zero = z3.Or(div_zero, state.div_zero)
        if outcome:
            r0 = machine.reg(0, state.pc)
            if env.cuts is not None:  # loop pairing: where the path ended, and all registers
                at_cut = machine.cuts.get(state.pc) if outcome == "cut" else None
                r0 = _observation(at_cut, state.regs if at_cut is not None else (r0,))
                if at_cut is not None and state.packet is not None:
                    # the segments after a cut start from the packet as it was given
                    raise st.Unsupported(f"insn {state.pc}: loop pairing does not carry a "
                                         "packet moved by bpf_xdp_adjust_head/tail")
            finished.append((state.cond, r0, state.mem))
            windows.append(state.packet)
            ends.append((state.cond, state.pc, state.trace))
    for cond, r0, mem, trace, window in machine.exits:
        finished.append((cond, r0 if env.cuts is None else _observation(None, (r0,)), mem))
        windows.append(window)
        ends.append((cond, None, trace))
    data, data_end = _packet_at_exit(packet_len, [c for c, _, _ in finished], windows)
    areas = {a.map_name: a for a in hashes.values()}
    written = [(a, machine.addresses.region(a)) for a in machine.written.values()]
    if not finished:
        return SymbolicResult(z3.BitVecVal(0, 64), start, z3.simplify(fault), 0, False, mem0,
                              packet_len, data_end, ends, z3.simplify(div_zero),
                              machine.observed, areas, machine.keys, written,
                          list(machine.choices.values()), start,
                              unwritten=machine.unwritten, data=data,
                              addresses=machine.addresses, steps=total, longest=longest)
    r0 = finished[-1][1]
    mem = finished[-1][2]
    for cond, value, m in reversed(finished[:-1]):
        r0 = z3.If(cond, value, r0)
        mem = z3.If(cond, m, mem)
    return SymbolicResult(z3.simplify(r0), mem, z3.simplify(fault), len(finished), complete,
                          mem0, packet_len, data_end, ends, z3.simplify(div_zero),
                          machine.observed, areas, machine.keys, written,
                          list(machine.choices.values()), start, unfinished,
                          unwritten=machine.unwritten, data=data,
                          addresses=machine.addresses, steps=total, longest=longest)


def _packet_at_exit(packet_len: Any, conds: list[Any], windows: list[Any]) -> tuple[Any, Any]:
    """(data, data_end) at exit: the run's packet when no finished path moved it (the
    common case keeps its terms), else an ite over the paths' (data, length)."""
    if packet_len is None:
        return None, None
    data = z3.BitVecVal(PACKET_BASE + PACKET_HEADROOM, 64)
    if all(w is None for w in windows):
        return data, data + packet_len
    last_data, length = windows[-1] or (data, packet_len)
    for cond, w in zip(reversed(conds[:-1]), reversed(windows[:-1]), strict=True):
        d, n = w or (data, packet_len)
        last_data, length = z3.If(cond, d, last_data), z3.If(cond, n, length)
    return z3.simplify(last_data), z3.simplify(last_data + length)


def _packet_bounds(packet_len: Any) -> Any:
    if packet_len is None or z3.is_bv_value(packet_len):
        return z3.BoolVal(True)
    return z3.And(z3.ULE(ETH_HLEN, packet_len), z3.ULE(packet_len, MAX_PACKET))


def _observation(cut: int | None, regs: tuple[Any, ...]) -> Any:
    """What loop pairing compares at a path's end: the cut point reached (all ones for an
    exit) and r0-r10 (an exit: r0 only); unset registers count as 0."""
    words = [z3.BitVecVal(-1 if cut is None else cut, 64)]
    words += [r if r is not None else z3.BitVecVal(0, 64) for r in regs]
    words += [z3.BitVecVal(0, 64)] * (11 - len(regs))
    return z3.simplify(z3.Concat(*words))


def _run_path(m: SymbolicMachine, code: dict[int, Insn], todo: list[PathState],
              max_steps: int) -> bool | str | None:
    """Run `m.state` to its end; forks go onto `todo`. None when the step bound is hit,
    "cut" when the path reaches a cut point (after its first instruction)."""
    s = m.state
    assert s is not None
    while True:
        if z3.is_false(s.cond):
            return False
        if s.pc in m.cuts and s.steps > 0:
            return "cut"
        insn = code.get(s.pc)
        if insn is None:
            raise st.Unsupported(f"insn {s.pc}: control reaches a slot that holds no instruction")
        s.steps += 1
        if s.steps > max_steps:
            return None
        if isinstance(insn, CallReg) and m.indirect_calls:
            target = z3.simplify(m.reg(insn.reg, s.pc))
            if not z3.is_bv_value(target):
                raise st.Unsupported(f"insn {s.pc}: callx through a symbolic register")
            m.call_helper(target.as_long(), s.pc)
            s.pc += 1
            continue
        if s.pc == m.observe:
            m.observed.append(replace(s))
        if isinstance(insn, CallInsn) and insn.kind == CallKind.HELPER and insn.imm == BPF_LOOP \
                and BPF_LOOP in m.helpers:
            loop_call(m, s.pc, code)  # enters the callback, or returns at once
            continue
        if isinstance(insn, CallInsn) and insn.kind == CallKind.HELPER and insn.imm == FOR_EACH \
                and FOR_EACH in m.helpers:
            for_each_call(m, s.pc, code)  # over an array: enters the callback for element 0
            continue
        if isinstance(insn, Alu) and insn.op in _DIVISIONS and insn.src is not None:
            divisor = m.reg(insn.src, s.pc)
            if insn.bits == 32:
                divisor = z3.Extract(31, 0, divisor)
            zero = z3.simplify(divisor == 0)
            if not z3.is_false(zero):
                s.div_zero = z3.simplify(z3.Or(s.div_zero, z3.And(s.cond, zero)))
        out = st.step(m, insn, s.pc)
        match out:
            case st.Next():
                s.pc += slot_count(insn)
            case st.Goto_(target=target):
                s.pc = target
            case st.Branch(cond=cond, target=target, fallthrough=fallthrough):
                cond = z3.simplify(cond)
                if z3.is_true(cond):
                    s.pc = target
                elif z3.is_false(cond):
                    s.pc = fallthrough
                else:
                    todo.append(replace(s, cond=z3.simplify(z3.And(s.cond, z3.Not(cond))),
                                        pc=fallthrough))
                    s.cond = z3.simplify(z3.And(s.cond, cond))
                    s.pc = target
            case st.MayGotoOut(fallthrough=fallthrough):
                s.pc = fallthrough  # the loop budget is far beyond any bound used here
            case st.CallLocal(target=target, ret=ret):
                depth = len(s.frames) + 1
                if depth >= MODELLED_FRAMES:
                    raise st.Unsupported(f"insn {s.pc}: more than {MODELLED_FRAMES} call frames")
                if depth >= MAX_CALL_FRAMES and not any(sp.name == f"stack{depth}"
                                                        for sp in m.spans):
                    m.spans.append(Span(f"stack{depth}", STACK_BASE + depth * STACK_STRIDE, 0,
                                        STACK_SIZE))
                s.frames = (*s.frames, (ret, s.regs[6:11]))
                regs = list(s.regs)
                top = STACK_BASE + len(s.frames) * STACK_STRIDE + STACK_SIZE
                regs[10] = z3.BitVecVal(top, 64)
                s.regs = tuple(regs)
                s.pc = target
            case st.Return():
                if not s.frames:
                    return True
                if isinstance(s.frames[-1][-1], LoopFrame):  # a bpf_loop callback returns
                    loop_return(m)
                    continue
                if isinstance(s.frames[-1][-1], ForEachFrame):  # a for_each callback returns
                    for_each_return(m)
                    continue
                (ret, saved), s.frames = s.frames[-1], s.frames[:-1]
                regs = list(s.regs)
                regs[6:11] = saved
                for r in range(1, 6):
                    regs[r] = None
                s.regs = tuple(regs)
                s.pc = ret


def conformance_helpers() -> dict[int, HelperModel]:
    """bpf_conformance's helper 5, `unwind`: end the program with 0 when r1 is 0."""

    def unwind(m: SymbolicMachine, index: int) -> Any:
        r1 = m.reg(1, index)
        m.exit_when(r1 == 0, z3.BitVecVal(0, 64))
        return r1

    return {5: unwind}


MAX_KEY_PAIRS = 2_000


def distinct_keys(*results: SymbolicResult) -> list[Any]:
    """Constraints that different keys the runs looked up get different slots (the kernel's
    hash maps keep them apart; the slot function alone would let them share one)."""
    out: list[Any] = []
    for name in sorted({n for r in results for n in r.hashes}):
        area = next(r.hashes[name] for r in results if name in r.hashes)
        seen: dict[int, Any] = {}
        for r in results:
            for map_name, key in r.keys:
                if map_name == name:
                    seen.setdefault(key.get_id(), key)
        keys = list(seen.values())
        slot = area.slot_function()
        for a in range(len(keys)):
            for b in range(a + 1, len(keys)):
                if len(out) >= MAX_KEY_PAIRS:
                    return out
                out.append(z3.Implies(keys[a] != keys[b], slot(keys[a]) != slot(keys[b])))
    return out
