"""The concrete interpreter: runs a program on Python integers.

    result = run(insns, Environment(prog_type=ProgType.XDP, packet=b"..."))

Registers hold `Word`s (None until written: reading one is a fault, as the
verifier's `!read_ok`, unless the environment says what such a read gives,
`Environment.unwritten`). bpf-to-bpf calls get their own 512-byte frame;
r6-r9 and r10 are restored on return and r1-r5 are clobbered, as after a
helper call. Helpers come from `epass.semantics.helpers`; an unknown one
is an error unless a stub is given by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from epass.isa import CallReg, Insn, LoadImm64, PseudoKind, helper_name, slot_count
from epass.semantics import step as st
from epass.semantics.ctx import ContextLayout, layout_for, prog_test_run_ctx
from epass.semantics.domain import CONCRETE, Word
from epass.semantics.helpers import LINUX_HELPERS
from epass.semantics.maps import MapSet, MapState
from epass.semantics.memory import (
    CTX_BASE,
    KERNEL_BASE,
    MEM_BASE,
    PACKET_BASE,
    PACKET_HEADROOM,
    STACK_BASE,
    STACK_SIZE,
    STACK_STRIDE,
    Memory,
    MemoryFault,
    Region,
    RegionKind,
    UninitRead,
)
from epass.uapi import ProgType

MAX_CALL_FRAMES = 8
CODE_BASE = 0x0800_0000  # a function pointer is CODE_BASE + 8 * slot
MAY_GOTO_BUDGET = 8 * 1024 * 1024  # BPF_MAX_LOOPS
SKF_NET_OFF, SKF_LL_OFF = -0x100000, -0x200000  # LD_ABS/LD_IND: relative to a header
ETH_HLEN = 14
Stub = Callable[["Interpreter", int], int]


class StepLimit(Exception):
    """The run executed more instructions than allowed."""


class ProgramExit(Exception):
    """The program ends early with r0 = `value` (a failed LD_ABS, a successful tail call)."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value


@dataclass
class MapSpec:
    """A map the run starts with: its shape and initial contents."""

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    contents: dict[bytes, bytes] = field(default_factory=dict)


@dataclass
class Environment:
    """Everything a run starts from."""

    prog_type: ProgType | int | None = None
    packet: bytes = b""
    ctx: bytes | None = None  # initial context bytes (pointer fields are filled in)
    mem: bytes | None = None  # bpf_conformance: r1 = mem, r2 = len(mem)
    maps: list[MapSpec] = field(default_factory=list)
    stubs: dict[str, Stub] = field(default_factory=dict)  # helper name -> model
    helper_table: dict[int, Stub] | None = None  # replaces the Linux helpers (conformance)
    indirect_calls: bool = False  # callx calls the helper whose id is in the register
    max_insns: int = 1_000_000
    prandom_seed: int = 0x5EED
    ktime_ns: int = 1_000_000_000
    cpu: int = 0
    comm: bytes = b"epass"  # the task's name, for bpf_get_current_comm
    # what a ring buffer record reserved at an address holds before the program writes it
    # (the kernel does not clear records; default zeros); a proof's counterexample sets it
    records: dict[int, bytes] = field(default_factory=dict)
    kernel_memory: bytes = b""  # what probe_read_kernel/user can read, at KERNEL_BASE
    # what never-written stack bytes hold, per call depth (default zeros); a proof's
    # counterexample sets them to replay a read of uninitialized stack
    stacks: list[bytes] = field(default_factory=list)
    # what a read of a never-written register gives (the verifier refuses such a read,
    # !read_ok, but hardware registers hold something): by (slot, register), else
    # `unwritten_default`; a read neither gives is a fault. A proof's counterexample sets
    # the values its model chose.
    unwritten: dict[tuple[int, int], int] = field(default_factory=dict)
    unwritten_default: int | None = None


@dataclass
class RunResult:
    r0: int | None  # None when the run faulted
    packet: bytes
    ctx: bytes
    maps: dict[str, dict[bytes, bytes]]
    fault: MemoryFault | None
    uninit_reads: list[UninitRead]
    executed: int
    helper_calls: list[tuple[str, tuple[int, ...]]]
    output: list[bytes]  # trace_printk text and ringbuf records, in order


@dataclass
class Frame:
    ret: int
    saved: tuple[Any, ...]  # r6-r9 and r10 of the caller
    stack: Region


class Interpreter:
    """Implements `step.Machine` on concrete values."""

    d = CONCRETE

    def __init__(self, insns: list[Insn], env: Environment) -> None:
        self.env = env
        self.code: dict[int, Insn] = {}
        slot = 0
        for insn in insns:
            self.code[slot] = insn
            slot += slot_count(insn)
        self.memory = Memory()
        self.maps = MapSet(self.memory)
        for spec in env.maps:
            self.maps.add(spec.name, spec.type, spec.key_size, spec.value_size,
                          spec.max_entries, spec.contents)
        self.regs: list[Word | None] = [None] * 11
        self.frames: list[Frame] = []
        self.executed = 0
        self.may_goto_budget = MAY_GOTO_BUDGET
        self.helper_calls: list[tuple[str, tuple[int, ...]]] = []
        self.output: list[bytes] = []
        self.prandom_state = env.prandom_seed
        self.layout: ContextLayout = layout_for(env.prog_type)
        self.packet: Region | None = None
        self.ctx: Region | None = None
        self._setup()

    # ------------------------------------------------------------ set-up

    def _setup(self) -> None:
        env = self.env
        if env.mem is not None:
            mem = self.memory.add(Region(RegionKind.MEM, "mem", MEM_BASE, bytearray(env.mem)))
            self.regs[1] = Word(mem.base if env.mem else 0, 64)
            self.regs[2] = Word(len(env.mem), 64)
        else:
            if self.layout.has_packet:
                data = bytearray(PACKET_HEADROOM) + bytearray(env.packet)
                self.packet = self.memory.add(Region(
                    RegionKind.PACKET, "packet", PACKET_BASE, data,
                    lo=PACKET_HEADROOM, hi=len(data)))
            ctx = bytearray(self.layout.size)
            # without ctx bytes, what BPF_PROG_TEST_RUN gives (XDP ingress_ifindex = 1, ...)
            given = env.ctx if env.ctx is not None else prog_test_run_ctx(env.prog_type,
                                                                          env.packet)
            if given is not None:
                ctx[: len(given)] = given[: self.layout.size]
            self.ctx = self.memory.add(Region(RegionKind.CTX, "ctx", CTX_BASE, ctx,
                                              writable=bool(self.layout.writable)))
            self.regs[1] = Word(CTX_BASE, 64)
        if env.kernel_memory:
            self.memory.add(Region(RegionKind.KERNEL, "kernel", KERNEL_BASE,
                                   bytearray(env.kernel_memory), writable=False))
        self._push_stack(0)

    def _push_stack(self, depth: int) -> Region:
        base = STACK_BASE + depth * STACK_STRIDE
        data = bytearray(STACK_SIZE)
        if depth < len(self.env.stacks):
            given = self.env.stacks[depth][:STACK_SIZE]
            data[: len(given)] = given
        region = self.memory.add(Region(RegionKind.STACK, f"stack{depth}", base,
                                        data, init=bytearray(STACK_SIZE)))
        self.regs[10] = Word(base + STACK_SIZE, 64)
        return region

    # ------------------------------------------------------------ Machine

    def reg(self, n: int, index: int) -> Word:
        value = self.regs[n]
        if value is None:
            chosen = self.env.unwritten.get((index, n), self.env.unwritten_default)
            if chosen is None:
                raise MemoryFault(index, f"read of uninitialized register r{n}")
            value = self.regs[n] = Word(chosen & 0xFFFFFFFFFFFFFFFF, 64)
        return value

    def set_reg(self, n: int, value: Word) -> None:
        self.regs[n] = value

    def load(self, addr: Word, size: int, index: int) -> Word:
        a = addr.value
        if self.ctx is not None and self.ctx.base <= a < self.ctx.base + len(self.ctx.data):
            field_ = self.layout.pointer_at(a - self.ctx.base, size)
            if field_ is not None:
                return Word(self._packet_pointer(field_.what), 64)
        return Word(self.memory.read(a, size, index), 8 * size)

    def store(self, addr: Word, size: int, value: Word, index: int) -> None:
        a = addr.value
        if self.ctx is not None and self.ctx.base <= a < self.ctx.base + len(self.ctx.data):
            off = a - self.ctx.base
            if not self.layout.may_write(off, size):
                raise MemoryFault(index, f"write of {size} bytes to ctx{off:+d}, "
                                         f"which {self.layout.name} does not allow")
            # `skb->tc_index = value` keeps 16 bits: a u32 read gives them zero-extended
            kept = self.layout.kept(off, size)
            value = Word(value.value & ((1 << (8 * kept)) - 1), value.bits)
        self.memory.write(a, size, value.value, index)

    def _packet_pointer(self, what: str) -> int:
        if self.packet is None:
            return 0
        lo, hi = self.packet.window
        if what == "data":
            return self.packet.base + lo
        if what == "data_end":
            return self.packet.base + hi
        return self.packet.base + lo  # data_meta: no metadata in front of data

    def pseudo_address(self, insn: LoadImm64, index: int) -> Word:
        kind = insn.kind
        if kind == PseudoKind.IMM:
            return Word(insn.imm, 64)
        if kind == PseudoKind.FUNC:
            return Word(CODE_BASE + 8 * (index + 1 + insn.imm), 64)
        if kind in (PseudoKind.MAP_IDX, PseudoKind.MAP_IDX_VALUE,
                    PseudoKind.MAP_FD, PseudoKind.MAP_VALUE):
            if not 0 <= insn.imm < len(self.maps.maps):
                raise MemoryFault(index, f"lddw refers to map {insn.imm}, which this run "
                                         "does not have")
            m = self.maps.maps[insn.imm]
            if kind in (PseudoKind.MAP_IDX, PseudoKind.MAP_FD):
                return Word(m.handle, 64)
            region = self.maps.lookup(m, (0).to_bytes(4, "little"))
            if region is None:
                raise MemoryFault(index, f"lddw of a value of map {m.name}, which has none")
            return Word(region.base + insn.aux, 64)
        raise st.Unsupported(f"insn {index}: lddw of a BTF id has no model")

    def packet_load(self, offset: Word, size: int, index: int) -> Word:
        if self.packet is None:
            raise ProgramExit(0)
        lo, hi = self.packet.window
        # bpf_skb_load_helper_*(skb, int offset): the low 32 bits, signed. Negative offsets
        # from SKF_NET_OFF / SKF_LL_OFF address the network / mac header (as tc sees the
        # frame: the mac header at data, the network header after 14 bytes of Ethernet).
        off = offset.value & 0xFFFFFFFF
        off -= (off >> 31) << 32
        if off < SKF_LL_OFF:
            raise ProgramExit(0)
        if off < SKF_NET_OFF:
            off -= SKF_LL_OFF
        elif off < 0:
            off += ETH_HLEN - SKF_NET_OFF
        if lo + off + size > hi:
            raise ProgramExit(0)  # the kernel ends the program with r0 = 0
        raw = self.packet.data[lo + off : lo + off + size]
        return Word(int.from_bytes(raw, "big"), 8 * size)  # LD_ABS/IND convert from network order

    def call_helper(self, helper_id: int, index: int) -> None:
        table = self.env.helper_table if self.env.helper_table is not None else LINUX_HELPERS
        name = helper_name(helper_id) or f"helper#{helper_id}"
        args = tuple(r.value if r is not None else 0 for r in self.regs[1:6])
        self.helper_calls.append((name, args))
        model = self.env.stubs.get(name) or table.get(helper_id)
        if model is None:
            raise st.Unsupported(f"insn {index}: helper {name} has no model; stub it by name")
        result = model(self, index)
        self.regs[0] = Word(result & 0xFFFFFFFFFFFFFFFF, 64)
        for r in range(1, 6):
            self.regs[r] = None  # clobbered by the call

    # ------------------------------------------------------------ helpers' view

    def arg(self, n: int, index: int) -> int:
        return self.reg(n, index).value

    def read_bytes(self, addr: int, size: int, index: int) -> bytes:
        return bytes(self.memory.read(addr + i, 1, index) for i in range(size)) if size else b""

    def write_bytes(self, addr: int, data: bytes, index: int) -> None:
        for i, b in enumerate(data):
            self.memory.write(addr + i, 1, b, index)

    def map_arg(self, n: int, index: int) -> MapState:
        m = self.maps.by_handle(self.arg(n, index))
        if m is None:
            raise MemoryFault(index, f"r{n} is not a map")
        return m

    def call_function(self, addr: int, args: tuple[int, ...], index: int) -> int:
        """Call a BPF function by code pointer (callbacks of bpf_loop and friends)."""
        slot = (addr - CODE_BASE) // 8
        if (addr - CODE_BASE) % 8 or slot not in self.code:
            raise MemoryFault(index, f"callback 0x{addr:x} is not a function of this program")
        saved_regs = list(self.regs)
        for i, a in enumerate(args, start=1):
            self.regs[i] = Word(a, 64)
        for i in range(len(args) + 1, 6):
            self.regs[i] = None
        self._enter(ret=-1)
        self._execute(slot, base_depth=len(self.frames))
        result = self.reg(0, index).value
        self.regs = saved_regs
        return result

    # ------------------------------------------------------------ running

    def _enter(self, ret: int) -> None:
        if len(self.frames) + 1 >= MAX_CALL_FRAMES:
            raise MemoryFault(ret, f"more than {MAX_CALL_FRAMES} call frames")
        saved = tuple(self.regs[6:11])
        stack = self._push_stack(len(self.frames) + 1)
        self.frames.append(Frame(ret, saved, stack))

    def _leave(self) -> int:
        frame = self.frames.pop()
        self.memory.remove(frame.stack)
        self.regs[6:11] = list(frame.saved)
        for r in range(1, 6):
            self.regs[r] = None
        return frame.ret

    def _execute(self, pc: int, base_depth: int) -> None:
        """Run from `pc` until the frame at `base_depth` returns."""
        while True:
            insn = self.code.get(pc)
            if insn is None:
                raise MemoryFault(pc, "control reaches a slot that holds no instruction")
            self.executed += 1
            if self.executed > self.env.max_insns:
                raise StepLimit(f"more than {self.env.max_insns} instructions executed")
            if isinstance(insn, CallReg) and self.env.indirect_calls:
                self.call_helper(self.reg(insn.reg, pc).value, pc)
                pc += 1
                continue
            out = st.step(self, insn, pc)
            match out:
                case st.Next():
                    pc += slot_count(insn)
                case st.Goto_(target=target):
                    pc = target
                case st.Branch(cond=cond, target=target, fallthrough=fallthrough):
                    pc = target if cond else fallthrough
                case st.MayGotoOut(target=target, fallthrough=fallthrough):
                    self.may_goto_budget -= 1
                    pc = target if self.may_goto_budget <= 0 else fallthrough
                case st.CallLocal(target=target, ret=ret):
                    self._enter(ret)
                    pc = target
                case st.Return():
                    if len(self.frames) == base_depth:
                        if self.frames:
                            self._leave()
                        return
                    pc = self._leave()

    def run(self) -> RunResult:
        fault: MemoryFault | None = None
        r0: int | None = None
        try:
            self._execute(0, base_depth=0)
            r0 = self.reg(0, -1).value
        except ProgramExit as e:
            r0 = e.value
        except MemoryFault as e:
            fault = e
        packet = b""
        if self.packet is not None:
            lo, hi = self.packet.window
            packet = bytes(self.packet.data[lo:hi])
        return RunResult(
            r0=r0,
            packet=packet,
            ctx=bytes(self.ctx.data) if self.ctx is not None else b"",
            maps={m.name: m.snapshot() for m in self.maps.maps},
            fault=fault,
            uninit_reads=list(self.memory.events),
            executed=self.executed,
            helper_calls=self.helper_calls,
            output=self.output,
        )


def run(insns: list[Insn], env: Environment) -> RunResult:
    """Run a program (slot-indexed instructions, maps referenced by index) to its end."""
    return Interpreter(insns, env).run()
