"""Hypothesis strategies for random eBPF programs that the verifier is likely to accept.

    from gen import cases
    @given(cases(ProgType.XDP))
    def test(case: Case): ...

A `Case` is a program (epass.isa instructions, maps referenced by index), a
packet and the maps' initial contents. The generator keeps the verifier's
rules by construction rather than by luck:

- it tracks which registers hold initialized scalars and which stack bytes
  were written, and reads only those (privileged programs may read
  uninitialized stack, but its bytes are garbage in the kernel and zero in
  the interpreter, so such reads cannot be compared);
- pointers live only in registers set aside for them: r6 holds the context
  in the main program, a packet block keeps data/data_end in r2/r3/r4, a map
  block keeps the value pointer in r5; they leave the scalar pool;
- every memory access is in bounds and aligned to its size: stack
  [-160, -32) (tracked byte by byte), map values, the packet after an
  explicit `if r4 > r3` bounds check, 16 bytes of a caller's stack passed to
  a subprogram or callback (tracked too; the callee reads only what it
  wrote itself), the key and value a for_each_map_elem callback gets;
- branches go forward; the do-while loop runs a constant 1..4 times with a
  counter its body may not write; after a join only what both paths
  initialized counts as initialized;
- helper and bpf-to-bpf calls clobber r1-r5 and give r0; called
  subprograms and callbacks (bpf_loop, bpf_for_each_map_elem over the
  arrays; hash maps are walked in an order the kernel randomizes) follow the
  main program's exit (r1..rN are their arguments, r6-r9 are the caller's
  again after the return);
- ktime_get_ns and get_prandom_u32 are called but their results never read.

What the program computes must reach what is compared (r0's low 32 bits,
the packet, the maps), or a wrong bit goes unnoticed. So each function adds
most values it computes to an accumulator on its stack and, at its exit,
to a word of the global map; the exit mixes every live register and some
stack words into r0 and folds r0's high half into the low one; and blocks
store registers into the global map now and then.

The blocks: ALU/ALU32 (every operation, movsx, byte swaps, division by
registers that may be zero), JMP/JMP32 if and if/else, bounded loops (with
may_goto sometimes), stack spills and fills, atomics (add/or/and/xor with
and without fetch, xchg, cmpxchg, load-acquire/store-release), packet
reads and writes behind a bounds check (also at a variable offset), context
fields, map lookup/update/delete on an array and a hash map, direct values
of a global map, bpf-to-bpf calls, bpf_loop and bpf_for_each_map_elem with
callbacks, bpf_xdp_adjust_head/tail (XDP), bpf_skb_load_bytes and
LD_ABS/LD_IND (tc).

Jumps and calls are written against labels and resolved to slot offsets
once, in `assemble()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from epass.isa import (
    HELPER_IDS,
    Alu,
    AluOp,
    Atomic,
    AtomicOp,
    Call,
    CallKind,
    Endian,
    EndianKind,
    Exit,
    Goto,
    Insn,
    JmpOp,
    Jump,
    Load,
    LoadImm64,
    LoadPacket,
    MayGoto,
    PacketMode,
    PseudoKind,
    Store,
    format_program,
    slot_count,
)
from epass.semantics.interp import MapSpec
from epass.uapi import MapType, ProgType

# --- the fixed maps every case gets (the lddw imm is the index here) ------------------

ARRAY, HASH, GLOBAL = 0, 1, 2
MAP_SHAPES = (
    # name, type, key_size, value_size, max_entries
    ("arr", MapType.ARRAY, 4, 16, 4),
    ("hash", MapType.HASH, 4, 8, 4),
    ("glob", MapType.ARRAY, 4, 32, 1),  # a .bss-like map, reached through MAP_IDX_VALUE
)
HASH_KEYS = range(6)  # more keys than the hash map holds: inserts can fail with E2BIG
OBSERVED = 24  # glob + 24 sums observed values (Builder.observe, Builder.flush)

# --- stack layout (offsets from r10) -------------------------------------------------

STACK_LO, STACK_HI = -160, -32  # tracked area for spills, fills, atomics
VALUE_BUF = -32  # 16 bytes: the value update_elem copies from
ACCUMULATOR = -16  # each frame sums the values it computes here (see Builder.note)
KEY_SLOT = -4  # the 4-byte map key

# --- context fields per program type -------------------------------------------------


@dataclass(frozen=True)
class CtxInfo:
    data: int  # offset of the 32-bit data / data_end fields
    data_end: int
    reads: tuple[tuple[int, int], ...]  # (offset, size) of plain fields the program may read
    writes: tuple[int, ...] = ()  # offsets of u32 fields the program may write


XDP_CTX = CtxInfo(0, 4, reads=((12, 4), (16, 4)))  # ingress_ifindex, rx_queue_index
# __sk_buff: len, pkt_type, mark, queue_mapping, protocol, priority, ifindex, tc_index,
# cb[0..4], hash, tc_classid; narrow reads of their low bytes are allowed too
_SKB_FIELDS = (0, 4, 8, 12, 16, 32, 40, 44, 48, 52, 56, 60, 64, 68, 72)
SKB_CTX = CtxInfo(
    76, 80,
    reads=tuple((o, s) for o in _SKB_FIELDS for s in (4, 2, 1)),
    # mark, priority, tc_index, cb[], tc_classid (u32 stores only); queue_mapping is not
    # modelled (the kernel drops values >= 0xffff, judged on the whole 64-bit register)
    writes=(8, 32, 44, 48, 52, 56, 60, 64, 72),
)
CTX_INFO = {ProgType.XDP: XDP_CTX, ProgType.SCHED_CLS: SKB_CTX}

# --- interesting constants ----------------------------------------------------------

EDGE_IMMS = (0, 1, -1, 2, -2, 7, 8, 31, 32, 63, 64, 0xFF, 0x7FFF, -0x8000, 0x7FFFFFFF,
             -0x7FFFFFFF, -0x80000000, 0x12345678, -0x21524111)
# (1 << 32) | 2 and friends: helpers that take an int or u32 see only the small low half
EDGE_IMM64S = (0, 1, (1 << 64) - 1, 1 << 63, (1 << 63) - 1, 1 << 32, 0xFFFFFFFF,
               0x8000_0000, 0x0123_4567_89AB_CDEF, (1 << 32) | 2, 0xFFFF_FFFF_0000_0004)

BINOPS = (AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.DIV, AluOp.SDIV, AluOp.MOD, AluOp.SMOD,
          AluOp.OR, AluOp.AND, AluOp.XOR, AluOp.LSH, AluOp.RSH, AluOp.ARSH)
DIVISIONS = (AluOp.DIV, AluOp.SDIV, AluOp.MOD, AluOp.SMOD)
SHIFTS = (AluOp.LSH, AluOp.RSH, AluOp.ARSH)
RMW_OPS = (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR, AtomicOp.FETCH_ADD,
           AtomicOp.FETCH_OR, AtomicOp.FETCH_AND, AtomicOp.FETCH_XOR, AtomicOp.XCHG,
           AtomicOp.CMPXCHG)
FETCHING = frozenset(RMW_OPS[4:])  # ops that write their src register (cmpxchg: r0)

CALLER_SAVED = frozenset({0, 1, 2, 3, 4, 5})
CALLEE_SAVED = frozenset({6, 7, 8, 9})
CTX_REG = 6  # the main program keeps the context here for its whole run
MAX_SUB_LEVEL = 2  # main calls level-1 subprograms, which may call level-2 ones

MAX_LOOPS = 1 << 23  # BPF_MAX_LOOPS: bpf_loop refuses more iterations with -E2BIG
LOOKUP = HELPER_IDS["bpf_map_lookup_elem"]
UPDATE = HELPER_IDS["bpf_map_update_elem"]
DELETE = HELPER_IDS["bpf_map_delete_elem"]
NONDETERMINISTIC = (HELPER_IDS["bpf_ktime_get_ns"], HELPER_IDS["bpf_get_prandom_u32"])
ADJUST_HEAD = HELPER_IDS["bpf_xdp_adjust_head"]
ADJUST_TAIL = HELPER_IDS["bpf_xdp_adjust_tail"]
BPF_LOOP = HELPER_IDS["bpf_loop"]
FOR_EACH = HELPER_IDS["bpf_for_each_map_elem"]
SKB_LOAD_BYTES = HELPER_IDS["bpf_skb_load_bytes"]
# offsets around the limits of BPF_PROG_TEST_RUN's frame (see helpers._adjust)
HEAD_DELTAS = (-256, -217, -216, -215, -40, -14, -1, 0, 1, 6, 7, 14, 0xFFFFFFF0, (1 << 32) | 4)
TAIL_DELTAS = (-7, -6, -1, 0, 1, 16, 3500, 3501, 4096, 0xFFFFFFFC, (3 << 32) | 8)


# --- labels, resolved by assemble() --------------------------------------------------


@dataclass(frozen=True)
class Label:
    id: int


@dataclass(frozen=True)
class JumpTo:
    """A conditional jump to a label (`off` filled in by assemble)."""

    op: JmpOp
    dst: int
    label: Label
    src: int | None = None
    imm: int = 0
    bits: int = 64


@dataclass(frozen=True)
class GotoTo:
    label: Label
    long: bool = False  # gotol: the offset in imm (cpu v4)
    may: bool = False  # may_goto: jumps once the kernel's loop budget is spent




@dataclass(frozen=True)
class CallTo:
    label: Label


@dataclass(frozen=True)
class FuncAddr:
    """`dst = &function` (lddw with src=BPF_PSEUDO_FUNC): a callback for bpf_loop."""

    dst: int
    label: Label


Item = Insn | Label | JumpTo | GotoTo | CallTo | FuncAddr


def assemble(items: list[Item]) -> list[Insn]:
    """Resolve labels to pc-relative slot offsets."""
    where: dict[Label, int] = {}
    slot = 0
    for it in items:
        if isinstance(it, Label):
            where[it] = slot
        elif isinstance(it, JumpTo | GotoTo | CallTo):
            slot += 1
        elif isinstance(it, FuncAddr):
            slot += 2
        else:
            slot += slot_count(it)
    out: list[Insn] = []
    slot = 0
    for it in items:
        if isinstance(it, Label):
            continue
        match it:
            case JumpTo():
                out.append(Jump(it.op, it.dst, where[it.label] - slot - 1, it.src, it.imm,
                                it.bits))
            case GotoTo(may=True):
                out.append(MayGoto(where[it.label] - slot - 1))
            case GotoTo():
                out.append(Goto(where[it.label] - slot - 1, it.long))
            case CallTo():
                out.append(Call(CallKind.LOCAL, where[it.label] - slot - 1))
            case FuncAddr():
                out.append(LoadImm64(it.dst, where[it.label] - slot - 1, PseudoKind.FUNC))
            case _:
                out.append(it)
        slot += slot_count(out[-1])
    return out


# --- what the generator knows at a program point --------------------------------------


@dataclass(frozen=True)
class Area:
    """Memory reachable as `*(size *)(base + off)` for lo <= off, off + size <= hi."""

    name: str  # tracked areas: the key of their initialized bytes in Scope.init
    base: int
    lo: int
    hi: int
    tracked: bool = False  # stack: read only bytes written before
    atomics: bool = True
    aligned: bool = True  # the packet may be accessed unaligned
    writable: bool = True  # a for_each callback's key is read-only


def stack_area() -> Area:
    return Area("stack", 10, STACK_LO, STACK_HI, tracked=True)


PASSED_STACK = 16  # bytes of its stack a caller passes to a subprogram or callback


@dataclass
class Scope:
    pool: tuple[int, ...]  # registers that may hold scalars in this function
    regs: set[int]  # initialized scalars
    init: set[tuple[str, int]]  # initialized bytes of tracked areas: (area name, offset)
    areas: list[Area]
    frozen: frozenset[int] = frozenset()  # may not be written (loop counters, pointers)
    depth: int = 0  # nesting of branches and loops
    level: int = 0  # 0: main program, 1..: subprogram
    exit_label: Label | None = None  # the function's `r0 = imm; exit`, once used

    def fork(self, **changes: Any) -> Scope:
        new = Scope(self.pool, set(self.regs), set(self.init), list(self.areas), self.frozen,
                    self.depth, self.level, self.exit_label)
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    def join(self, other: Scope) -> None:
        """Control flow merges: keep what both paths initialized."""
        self.regs &= other.regs
        self.init &= other.init
        self.exit_label = self.exit_label or other.exit_label

    def take(self, other: Scope) -> None:
        """Only `other`'s path goes on from here."""
        self.regs, self.init, self.exit_label = other.regs, other.init, other.exit_label

    def writable(self) -> list[int]:
        return [r for r in self.pool if r not in self.frozen]

    def readable(self) -> list[int]:
        return sorted(self.regs)

    def clobber(self) -> None:
        """After a call: r1-r5 are gone (and r0 until the caller says otherwise)."""
        self.regs -= CALLER_SAVED


@dataclass
class Function:
    label: Label
    kind: str  # "call"; callbacks ("loop", "each_arr", "each_glob") return 0 or 1
    level: int
    nargs: int  # scalar arguments r1..rN (of a call)
    passed: bool  # gets a pointer to PASSED_STACK bytes of its caller's stack
    items: list[Item] = field(default_factory=list)

    @property
    def callback(self) -> bool:
        return self.kind != "call"


@dataclass
class Case:
    """One differential test input."""

    prog_type: ProgType
    insns: list[Insn]
    packet: bytes
    maps: list[MapSpec]

    def __repr__(self) -> str:  # hypothesis prints this; describe() has the details
        return (f"Case({self.prog_type.name}, {len(self.insns)} insns, "
                f"packet {self.packet.hex()})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' printer
        printer.text(repr(self))

    def describe(self) -> str:
        """The program in pseudo-C (parse_program reads it back), packet and maps."""
        lines = [f"program ({self.prog_type.name}, {len(self.insns)} insns):",
                 format_program(self.insns).rstrip(),
                 f"packet ({len(self.packet)} bytes): {self.packet.hex()}"]
        for i, m in enumerate(self.maps):
            contents = ", ".join(f"{k.hex()}: {v.hex()}" for k, v in sorted(m.contents.items()))
            lines.append(f"map {i} {m.name} ({MapType(m.type).name.lower()}, key "
                         f"{m.key_size}, value {m.value_size}, max {m.max_entries}): "
                         f"{{{contents}}}")
        return "\n".join(lines)


# --- the builder ----------------------------------------------------------------------


class Builder:
    """Draws one program; `draw` is hypothesis' draw function."""

    def __init__(self, draw: Any, prog_type: ProgType, max_blocks: int = 10) -> None:
        self.draw = draw
        self.prog_type = prog_type
        self.ctx = CTX_INFO[prog_type]
        self.max_blocks = max_blocks
        self.next_label = 0
        self.functions: list[Function] = []

    # -- small draws

    def label(self) -> Label:
        self.next_label += 1
        return Label(self.next_label)

    def pick(self, options: Any) -> Any:
        return self.draw(st.sampled_from(list(options)))

    def chance(self, p: float) -> bool:
        # shrinks towards 0, i.e. False: towards the simpler program
        return self.draw(st.integers(0, 99)) >= 100 - int(p * 100)

    def imm32(self) -> int:
        return self.draw(st.one_of(st.sampled_from(EDGE_IMMS),
                                   st.integers(-(1 << 31), (1 << 31) - 1)))

    def imm64(self) -> int:
        return self.draw(st.one_of(st.sampled_from(EDGE_IMM64S), st.integers(0, (1 << 64) - 1)))

    # -- scalars

    def set_reg(self, reg: int, value: int, out: list[Item]) -> None:
        """`reg = value` for any 64-bit value (or negative one) in the shortest form."""
        if -(1 << 31) <= value < (1 << 31):
            out.append(Alu(AluOp.MOV, reg, imm=value))
        elif 0 <= value < (1 << 32):  # `w2 = -16`: r2 = 0xfffffff0
            out.append(Alu(AluOp.MOV, reg, imm=value - (1 << 32), bits=32))
        else:
            out.append(LoadImm64(reg, value & ((1 << 64) - 1)))

    def ensure_scalar(self, s: Scope, out: list[Item]) -> int:
        """An initialized scalar register, setting one to a constant when there is none."""
        if s.regs:
            return self.pick(s.readable())
        r = self.pick(s.writable())
        out.append(Alu(AluOp.MOV, r, imm=self.imm32()))
        s.regs.add(r)
        return r

    def source(self, s: Scope, out: list[Item]) -> tuple[int | None, int]:
        """A register or an immediate operand."""
        if s.regs and self.chance(0.6):
            return self.pick(s.readable()), 0
        return None, self.imm32()

    def alu(self, s: Scope, out: list[Item]) -> None:
        kinds = ["mov_imm", "lddw"]
        if s.regs:
            # mostly operations that keep their inputs' information: a wrong bit survives
            # to the result instead of being overwritten by the next move
            kinds += ["mov_reg", "movsx", "neg", "endian"] + ["binop"] * 8
        kind = self.pick(kinds)
        bits = self.pick((64, 32))
        dsts = s.writable() if kind in ("mov_imm", "lddw", "mov_reg", "movsx") else \
            [r for r in s.writable() if r in s.regs]
        if not dsts:
            return
        dst = self.pick(dsts)
        if kind == "mov_imm":
            out.append(Alu(AluOp.MOV, dst, imm=self.imm32(), bits=bits))
        elif kind == "lddw":
            out.append(LoadImm64(dst, self.imm64()))
        elif kind == "mov_reg":
            out.append(Alu(AluOp.MOV, dst, self.pick(s.readable()), bits=bits))
        elif kind == "movsx":
            op = self.pick((AluOp.MOVSX8, AluOp.MOVSX16) + ((AluOp.MOVSX32,) * (bits == 64)))
            out.append(Alu(op, dst, self.pick(s.readable()), bits=bits))
        elif kind == "neg":
            out.append(Alu(AluOp.NEG, dst, bits=bits))
        elif kind == "endian":
            out.append(Endian(self.pick(list(EndianKind)), dst, self.pick((16, 32, 64))))
        else:
            op = self.pick(BINOPS)
            src, imm = self.source(s, out)
            if src is None and op in SHIFTS:
                imm = self.draw(st.integers(0, bits - 1))  # larger immediates are refused
            elif src is None and op in DIVISIONS and imm == 0:
                imm = self.pick((1, -1, 3))  # so is a constant zero divisor
            out.append(Alu(op, dst, src, imm, bits))
        s.regs.add(dst)
        self.note(dst, out)

    def returned(self, s: Scope, out: list[Item]) -> None:
        """After a call: r1-r5 are gone, r0 holds the (deterministic) result."""
        s.clobber()
        s.regs.add(0)
        self.note(0, out)

    def note(self, reg: int, out: list[Item]) -> None:
        """Often `lock *(u64 *)(r10 + ACCUMULATOR) += reg`: every value computed counts in
        the result, not only those still live at the exit."""
        if self.chance(0.6):
            out.append(Atomic(AtomicOp.ADD, 8, 10, reg, ACCUMULATOR))

    def condition(self, s: Scope, out: list[Item], label: Label) -> JumpTo:
        dst = self.ensure_scalar(s, out)
        src, imm = self.source(s, out)
        return JumpTo(self.pick(list(JmpOp)), dst, label, src, imm, self.pick((64, 32)))

    # -- memory

    def accesses(self, s: Scope, area: Area, size: int, need_init: bool) -> list[int]:
        step = size if area.aligned else 1
        first = area.lo + (-area.lo) % step if area.aligned else area.lo
        offs = list(range(first, area.hi - size + 1, step))
        if need_init and area.tracked:
            offs = [o for o in offs if all((area.name, o + i) in s.init for i in range(size))]
        return offs

    def mark(self, s: Scope, area: Area, off: int, size: int) -> None:
        if area.tracked:
            s.init.update((area.name, o) for o in range(off, off + size))

    def load(self, s: Scope, out: list[Item], area: Area) -> None:
        size = self.pick((1, 2, 4, 8))
        offs = self.accesses(s, area, size, need_init=True)
        if not offs:  # nothing initialized that large yet: write instead
            return self.store(s, out, area) if area.writable else None
        dst = self.pick(s.writable())
        signed = size < 8 and self.chance(0.25)
        out.append(Load(size, dst, area.base, self.pick(offs), signed))
        s.regs.add(dst)
        self.note(dst, out)

    def store(self, s: Scope, out: list[Item], area: Area) -> None:
        size = self.pick((1, 2, 4, 8))
        offs = self.accesses(s, area, size, need_init=False)
        if not offs:
            return
        off = self.pick(offs)
        src, imm = self.source(s, out)
        out.append(Store(size, area.base, off, src, imm))
        self.mark(s, area, off, size)

    def atomic(self, s: Scope, out: list[Item], area: Area) -> None:
        size = self.pick((4, 8))
        offs = self.accesses(s, area, size, need_init=True)
        if not offs:
            return self.store(s, out, area)
        off = self.pick(offs)
        if self.chance(0.15):  # load-acquire / store-release (cpu v4, Linux 6.15+)
            if self.chance(0.5):
                dst = self.pick(s.writable())
                # the wire's dst is the loaded register, src the base
                out.append(Atomic(AtomicOp.LOAD_ACQUIRE, size, dst, area.base, off))
                s.regs.add(dst)
                self.note(dst, out)
            else:
                src = self.ensure_scalar(s, out)
                out.append(Atomic(AtomicOp.STORE_RELEASE, size, area.base, src, off))
            return
        op = self.pick(RMW_OPS)
        if op == AtomicOp.CMPXCHG and (0 not in s.regs or 0 in s.frozen):
            if 0 in s.frozen:
                op = AtomicOp.XCHG
            else:
                out.append(Alu(AluOp.MOV, 0, imm=self.imm32()))
                s.regs.add(0)
        srcs = [r for r in s.readable() if op not in FETCHING or r not in s.frozen]
        if not srcs:
            src = self.pick(s.writable())
            out.append(Alu(AluOp.MOV, src, imm=self.imm32()))
            s.regs.add(src)
        else:
            src = self.pick(srcs)
        out.append(Atomic(op, size, area.base, src, off))
        if op in FETCHING:  # the old value came back
            self.note(0 if op == AtomicOp.CMPXCHG else src, out)

    # -- blocks made of simple operations

    def ops(self, s: Scope, out: list[Item], count: int) -> None:
        """A few ALU and memory operations on the scope's areas, maybe an if around some."""
        for _ in range(count):
            kind = self.pick(["alu", "alu", "alu", "load", "store", "atomic", "if"])
            if kind == "alu" or not s.areas:
                self.alu(s, out)
            elif kind == "if":
                if s.depth >= 2:
                    self.alu(s, out)
                    continue
                skip = self.label()
                out.append(self.condition(s, out, skip))
                inner = s.fork(depth=s.depth + 1)
                self.ops(inner, out, self.draw(st.integers(0, 3)))
                out.append(skip)
                s.join(inner)
            else:
                areas = s.areas if kind == "load" else [a for a in s.areas if a.writable]
                area = self.pick(areas)
                if kind == "load":
                    self.load(s, out, area)
                elif kind == "store":
                    self.store(s, out, area)
                elif area.atomics:
                    self.atomic(s, out, area)
                else:
                    self.store(s, out, area)

    def exit_to(self, s: Scope) -> Label:
        """The function's early exit (`r0 = imm; exit`), emitted once something jumps there."""
        if s.exit_label is None:
            s.exit_label = self.label()
        return s.exit_label

    def guard(self, s: Scope, out: list[Item], cond: JumpTo, body: Any) -> None:
        """`if (cond) skip-or-exit; body`: the body runs in a fork of the scope."""
        early = self.chance(0.4)
        target = self.exit_to(s) if early else self.label()
        out.append(JumpTo(cond.op, cond.dst, target, cond.src, cond.imm, cond.bits))
        inner = s.fork(depth=s.depth + 1)
        body(inner)
        if early:
            # only the body's path continues: what it initialized stays initialized
            s.take(inner)
        else:
            out.append(target)
            s.join(inner)

    # -- structured control flow

    def if_else(self, s: Scope, out: list[Item]) -> None:
        other, end = self.label(), self.label()
        out.append(self.condition(s, out, other))
        then = s.fork(depth=s.depth + 1)
        self.blocks(then, out, self.draw(st.integers(1, 3)))
        out.append(GotoTo(end, long=self.chance(0.2)))
        out.append(other)
        orelse = s.fork(depth=s.depth + 1, exit_label=then.exit_label)
        self.blocks(orelse, out, self.draw(st.integers(0, 3)))
        out.append(end)
        then.join(orelse)
        s.take(then)

    def loop(self, s: Scope, out: list[Item]) -> None:
        """do { body } while (--c != 0) with c = 1..4: bounded, so the verifier follows it."""
        # callee-saved: blocks in the body may call helpers, which clobber r0-r5
        counters = [r for r in s.writable() if r in CALLEE_SAVED]
        if not counters:
            return self.ops(s, out, 1)
        counter = self.pick(counters)
        bits = self.pick((64, 32))
        out.append(Alu(AluOp.MOV, counter, imm=self.draw(st.integers(1, 4)), bits=bits))
        top, leave = self.label(), self.label()
        out.append(top)
        # may_goto leaves once 8M iterations are spent: never here, but it must be decoded,
        # verified and stepped over
        may_goto = self.chance(0.2)
        if may_goto:
            out.append(GotoTo(leave, may=True))
        body = s.fork(depth=s.depth + 1, frozen=s.frozen | {counter})
        body.regs.add(counter)
        start = set(body.regs)
        self.blocks(body, out, self.draw(st.integers(1, 3)), calls=False)
        # the next iteration starts from the body's end: re-set what the body clobbered
        for r in sorted(start - body.regs):
            out.append(Alu(AluOp.MOV, r, imm=self.imm32()))
            body.regs.add(r)
        out.append(Alu(AluOp.SUB, counter, imm=1, bits=bits))
        out.append(JumpTo(JmpOp.NE, counter, top, imm=0, bits=bits))
        if may_goto:
            out.append(leave)  # the body might not have run: keep what held before it
            s.join(body)
        else:
            s.take(body)  # the body ran at least once: its initializations hold after it

    # -- packet, context, maps, calls

    def packet(self, s: Scope, out: list[Item]) -> None:
        out.append(Load(4, 2, CTX_REG, self.ctx.data))
        out.append(Load(4, 3, CTX_REG, self.ctx.data_end))
        s.regs -= {2, 3, 4}  # pointers from here on
        if s.regs and self.chance(0.3):  # a variable offset the verifier can bound
            out.append(Alu(AluOp.MOV, 4, self.pick(s.readable())))
            out.append(Alu(AluOp.AND, 4, imm=self.pick((7, 15, 63, 0xFF))))
            out.append(Alu(AluOp.ADD, 2, 4))
        size = self.draw(st.integers(1, 64))
        out.append(Alu(AluOp.MOV, 4, 2))
        out.append(Alu(AluOp.ADD, 4, imm=size))
        check = JumpTo(JmpOp.GT, 4, Label(0), 3) if self.chance(0.7) else \
            JumpTo(JmpOp.LT, 3, Label(0), 4)

        def body(inner: Scope) -> None:
            inner.frozen |= {2, 3, 4}
            inner.areas = inner.areas + [Area("packet", 2, 0, size, atomics=False,
                                              aligned=False)]
            self.ops(inner, out, self.draw(st.integers(1, 5)))
            inner.frozen = s.frozen
            inner.areas = s.areas

        self.guard(s, out, check, body)

    def ctx_access(self, s: Scope, out: list[Item]) -> None:
        if self.ctx.writes and self.chance(0.4):
            src = self.ensure_scalar(s, out)
            out.append(Store(4, CTX_REG, self.pick(self.ctx.writes), src))
            return
        off, size = self.pick(self.ctx.reads)
        dst = self.pick(s.writable())
        out.append(Load(size, dst, CTX_REG, off))
        s.regs.add(dst)
        self.note(dst, out)

    def key(self, s: Scope, out: list[Item], keys: int) -> None:
        """Store a map key at KEY_SLOT: a constant, or a register's low bits."""
        if s.regs and self.chance(0.4):
            out.append(Alu(AluOp.MOV, 1, self.pick(s.readable())))
            out.append(Alu(AluOp.AND, 1, imm=7))
            out.append(Store(4, 10, KEY_SLOT, 1))
        else:
            out.append(Store(4, 10, KEY_SLOT, imm=self.draw(st.integers(0, keys))))

    def map_lookup(self, s: Scope, out: list[Item]) -> None:
        m = self.pick((ARRAY, HASH))
        self.key(s, out, 5)
        out += [LoadImm64(1, m, PseudoKind.MAP_IDX), Alu(AluOp.MOV, 2, 10),
                Alu(AluOp.ADD, 2, imm=KEY_SLOT), Call(CallKind.HELPER, LOOKUP)]
        s.clobber()
        value_size = MAP_SHAPES[m][3]

        def body(inner: Scope) -> None:
            out.append(Alu(AluOp.MOV, 5, 0))  # r0 becomes free for scalars (cmpxchg)
            inner.frozen |= {5}
            inner.areas = inner.areas + [Area("value", 5, 0, value_size)]
            self.ops(inner, out, self.draw(st.integers(1, 5)))
            inner.frozen, inner.areas = s.frozen, s.areas
            inner.regs.discard(5)

        self.guard(s, out, JumpTo(JmpOp.EQ, 0, Label(0), imm=0), body)

    def map_update(self, s: Scope, out: list[Item]) -> None:
        m = self.pick((ARRAY, HASH))
        self.key(s, out, 5)
        for off in (VALUE_BUF, VALUE_BUF + 8):  # 16 bytes: enough for either map's value
            src, imm = self.source(s, out)
            out.append(Store(8, 10, off, src, imm))
        flags = self.pick((0, 0, 0, 1, 2, 3, 4, 5, 6))  # 4 = BPF_F_LOCK: no lock in these maps
        out += [LoadImm64(1, m, PseudoKind.MAP_IDX), Alu(AluOp.MOV, 2, 10),
                Alu(AluOp.ADD, 2, imm=KEY_SLOT), Alu(AluOp.MOV, 3, 10),
                Alu(AluOp.ADD, 3, imm=VALUE_BUF), Alu(AluOp.MOV, 4, imm=flags),
                Call(CallKind.HELPER, UPDATE)]
        self.returned(s, out)

    def map_delete(self, s: Scope, out: list[Item]) -> None:
        m = self.pick((HASH, HASH, ARRAY))
        self.key(s, out, 5)
        out += [LoadImm64(1, m, PseudoKind.MAP_IDX), Alu(AluOp.MOV, 2, 10),
                Alu(AluOp.ADD, 2, imm=KEY_SLOT), Call(CallKind.HELPER, DELETE)]
        self.returned(s, out)

    def global_value(self, s: Scope, out: list[Item]) -> None:
        """`rP = &glob + aux` (a direct value lddw), then accesses through rP."""
        base = self.pick(s.writable())
        aux = self.pick((0, 8, 16))
        out.append(LoadImm64(base, GLOBAL, PseudoKind.MAP_IDX_VALUE, aux))
        s.regs.discard(base)
        inner_frozen, inner_areas = s.frozen, s.areas
        s.frozen = s.frozen | {base}
        s.areas = s.areas + [Area("glob", base, -aux, MAP_SHAPES[GLOBAL][3] - aux)]
        self.ops(s, out, self.draw(st.integers(1, 4)))
        s.frozen, s.areas = inner_frozen, inner_areas

    def nondeterministic(self, s: Scope, out: list[Item]) -> None:
        out.append(Call(CallKind.HELPER, self.pick(NONDETERMINISTIC)))
        s.clobber()  # r0 is a scalar now, but never read: its value differs run to run

    def adjust(self, s: Scope, out: list[Item]) -> None:
        """bpf_xdp_adjust_head/tail(ctx, delta): the packet moves; later blocks reload it."""
        head = self.chance(0.5)
        out.append(Alu(AluOp.MOV, 1, CTX_REG))
        if s.regs and self.chance(0.2):  # anything: only its low 32 bits count
            out.append(Alu(AluOp.MOV, 2, self.pick(s.readable())))
        else:
            edges = HEAD_DELTAS if head else TAIL_DELTAS
            delta = self.draw(st.one_of(st.sampled_from(edges), st.integers(-64, 64)))
            self.set_reg(2, delta, out)
        out.append(Call(CallKind.HELPER, ADJUST_HEAD if head else ADJUST_TAIL))
        self.returned(s, out)

    def passed_stack(self, reg: int, out: list[Item]) -> None:
        """`reg = r10 + off`: PASSED_STACK bytes of this frame's tracked stack."""
        off = self.pick(range(STACK_LO, STACK_HI - PASSED_STACK + 1, 8))
        out += [Alu(AluOp.MOV, reg, 10), Alu(AluOp.ADD, reg, imm=off)]

    def callback_ctx(self, fn: Function, out: list[Item]) -> None:
        """r3 of bpf_loop / for_each_map_elem: the callback's ctx, a stack pointer or NULL."""
        if fn.passed:
            self.passed_stack(3, out)
        else:
            out.append(Alu(AluOp.MOV, 3, imm=0))

    def load_bytes(self, s: Scope, out: list[Item]) -> None:
        """bpf_skb_load_bytes(skb, offset, r10 + off, len): copies, or zeroes on failure."""
        size = self.draw(st.integers(1, 16))
        off = self.pick(range(STACK_LO, STACK_HI - size + 1))
        out.append(Alu(AluOp.MOV, 1, CTX_REG))
        if s.regs and self.chance(0.3):
            out.append(Alu(AluOp.MOV, 2, self.pick(s.readable())))
        else:  # the helper takes a u32 offset: 2**32 + 2 is 2
            high = self.pick((0, 0, 0, 1 << 32, 0xFFFF_FFFF << 32))
            self.set_reg(2, high | self.pick(range(0, 140, 3)), out)
        out += [Alu(AluOp.MOV, 3, 10), Alu(AluOp.ADD, 3, imm=off), Alu(AluOp.MOV, 4, imm=size),
                Call(CallKind.HELPER, SKB_LOAD_BYTES)]
        self.mark(s, stack_area(), off, size)
        self.returned(s, out)

    def ld_abs(self, s: Scope, out: list[Item]) -> None:
        """Legacy `r0 = ntohl(*(u32 *)skb[k])` (LD_ABS) or `skb[rX + k]` (LD_IND): the skb is
        r6; out of the packet, the program ends with r0 = 0. Clobbers r1-r5 like a call."""
        size = self.pick((1, 2, 4))
        # SKF_NET_OFF (-0x100000) and SKF_LL_OFF (-0x200000) address the network and mac
        # headers
        base = self.pick((0, 0, 0, -0x100000, -0x200000))
        imm = base + self.pick(range(-16, 140, 1))
        if s.regs and self.chance(0.4):
            out.append(LoadPacket(PacketMode.IND, size, imm, self.pick(s.readable())))
        else:
            out.append(LoadPacket(PacketMode.ABS, size, imm))
        self.returned(s, out)

    def bpf_loop(self, s: Scope, out: list[Item]) -> None:
        """bpf_loop(nr, callback, ctx, flags): the callback sees (index, ctx)."""
        fn = self.callee(s.level + 1, "loop")
        if s.regs and self.chance(0.4):
            out.append(Alu(AluOp.MOV, 1, self.pick(s.readable())))
            out.append(Alu(AluOp.AND, 1, imm=7))
        elif self.chance(0.1):  # refused with -E2BIG before any iteration
            out.append(LoadImm64(1, self.pick((MAX_LOOPS + 1, (1 << 32) | 3, 1 << 63))))
        else:
            out.append(Alu(AluOp.MOV, 1, imm=self.draw(st.integers(0, 6))))
        out.append(FuncAddr(2, fn.label))
        self.callback_ctx(fn, out)
        out.append(Alu(AluOp.MOV, 4, imm=self.pick((0, 0, 0, 0, 1))))  # flags: 1 is -EINVAL
        out.append(Call(CallKind.HELPER, BPF_LOOP))
        self.returned(s, out)

    def for_each(self, s: Scope, out: list[Item]) -> None:
        """bpf_for_each_map_elem(&map, callback, ctx, flags) over an array, in index order."""
        m = self.pick((ARRAY, GLOBAL))
        fn = self.callee(s.level + 1, "each_arr" if m == ARRAY else "each_glob")
        out += [LoadImm64(1, m, PseudoKind.MAP_IDX), FuncAddr(2, fn.label)]
        self.callback_ctx(fn, out)
        out.append(Alu(AluOp.MOV, 4, imm=self.pick((0, 0, 0, 0, 1))))
        out.append(Call(CallKind.HELPER, FOR_EACH))
        self.returned(s, out)

    def callee(self, level: int, kind: str) -> Function:
        """A function of `level` and `kind`: one drawn before, or a new one."""
        known = [f for f in self.functions if f.level == level and f.kind == kind]
        if known and self.chance(0.5):
            return self.pick(known)
        return self.function(level, kind)

    def call(self, s: Scope, out: list[Item]) -> None:
        fn = self.callee(s.level + 1, "call")
        first = 1
        if fn.passed:
            self.passed_stack(1, out)
            s.regs.discard(1)
            first = 2
        for r in range(first, fn.nargs + 1):
            if s.regs and self.chance(0.7):
                out.append(Alu(AluOp.MOV, r, self.pick(s.readable())))
            else:
                out.append(Alu(AluOp.MOV, r, imm=self.imm32()))
            s.regs.add(r)
        out.append(CallTo(fn.label))
        self.returned(s, out)

    # -- programs

    def blocks(self, s: Scope, out: list[Item], count: int, calls: bool = True) -> None:
        kinds = ["ops", "ops", "ops", "lookup", "update", "delete", "global", "helper",
                 "observe", "observe"]
        if s.level == 0:
            kinds += ["packet", "packet", "ctx"]
            if self.prog_type == ProgType.XDP:
                kinds += ["adjust"]
            else:
                kinds += ["load_bytes", "ld_abs"]
        if s.depth < 2:
            kinds += ["if_else", "loop"]
        if calls and s.level < MAX_SUB_LEVEL and s.depth == 0:
            kinds += ["call", "bpf_loop", "for_each"]
        for _ in range(count):
            match self.pick(kinds):
                case "ops":
                    self.ops(s, out, self.draw(st.integers(1, 6)))
                case "observe":
                    self.observe(s, out)
                case "lookup":
                    self.map_lookup(s, out)
                case "update":
                    self.map_update(s, out)
                case "delete":
                    self.map_delete(s, out)
                case "global":
                    self.global_value(s, out)
                case "helper":
                    self.nondeterministic(s, out)
                case "packet":
                    self.packet(s, out)
                case "ctx":
                    self.ctx_access(s, out)
                case "if_else":
                    self.if_else(s, out)
                case "loop":
                    self.loop(s, out)
                case "call":
                    self.call(s, out)
                case "bpf_loop":
                    self.bpf_loop(s, out)
                case "for_each":
                    self.for_each(s, out)
                case "adjust":
                    self.adjust(s, out)
                case "load_bytes":
                    self.load_bytes(s, out)
                case "ld_abs":
                    self.ld_abs(s, out)

    def observe(self, s: Scope, out: list[Item]) -> None:
        """`lock *(u64 *)(&glob + 24) += rX` for a few registers: intermediate values count
        in the result too, not only what is live at the exit."""
        if not s.regs:
            return
        regs = self.draw(st.lists(st.sampled_from(s.readable()), min_size=1, max_size=3,
                                  unique=True))
        base = self.pick([r for r in s.writable() if r not in regs])
        out.append(LoadImm64(base, GLOBAL, PseudoKind.MAP_IDX_VALUE, OBSERVED))
        out += [Atomic(AtomicOp.ADD, 8, base, r, 0) for r in regs]
        s.regs.discard(base)

    def dump(self, s: Scope, out: list[Item]) -> None:
        """Store up to three registers into the global map: all 64 bits become observable."""
        regs = self.draw(st.lists(st.sampled_from(s.readable()), min_size=1, max_size=3,
                                  unique=True))
        base = self.pick([r for r in s.writable() if r not in regs])
        out.append(LoadImm64(base, GLOBAL, PseudoKind.MAP_IDX_VALUE))
        for i, r in enumerate(regs):
            out.append(Store(8, base, 8 * i, r))
        s.regs.discard(base)

    def flush(self, out: list[Item]) -> None:
        """Add this frame's accumulator to the global map's observed word (r1, r2 clobbered)."""
        out += [LoadImm64(1, GLOBAL, PseudoKind.MAP_IDX_VALUE, OBSERVED),
                Load(8, 2, 10, ACCUMULATOR), Atomic(AtomicOp.ADD, 8, 1, 2, 0)]

    def epilogue(self, s: Scope, out: list[Item], callback: bool = False) -> None:
        """`r0 = <what the function computed>; exit`, and the early exit if it is used.

        Mostly every initialized register and some initialized stack words are mixed into
        r0 (`r0 = r0 * 31 + x`) and the high half is folded into the low one: a wrong bit
        anywhere then shows in the 32 bits BPF_PROG_TEST_RUN reports. A callback must
        return 0 or 1 provably: `r0 &= 1`."""
        if s.regs and self.chance(0.9):
            regs = self.draw(st.permutations(s.readable()))
            if 0 in regs:  # r0 goes first: it is overwritten next
                regs = [0] + [r for r in regs if r != 0]
            out.append(Alu(AluOp.MOV, 0, regs[0], bits=self.pick((64, 32))))
            if self.chance(0.8):
                words = [o for o in range(STACK_LO, STACK_HI, 8)
                         if all(("stack", o + i) in s.init for i in range(8))]
                for r in regs[1:]:
                    out += [Alu(AluOp.MUL, 0, imm=31), Alu(AluOp.ADD, 0, r)]
                for off in words[:4]:
                    out += [Load(8, 1, 10, off), Alu(AluOp.MUL, 0, imm=31), Alu(AluOp.ADD, 0, 1)]
            self.flush(out)
            if callback:
                out.append(Alu(AluOp.AND, 0, imm=1))
            elif self.chance(0.8):  # BPF_PROG_TEST_RUN reports 32 bits: fold the high half in
                out += [Alu(AluOp.MOV, 1, 0), Alu(AluOp.RSH, 1, imm=32), Alu(AluOp.XOR, 0, 1)]
        else:
            self.flush(out)
            out.append(Alu(AluOp.MOV, 0, imm=self.pick((0, 1)) if callback else self.imm32()))
        out.append(Exit())
        if s.exit_label is not None:
            imm = self.pick((0, 1)) if callback else self.imm32()
            out += [s.exit_label, Alu(AluOp.MOV, 0, imm=imm), Exit()]

    def function(self, level: int, kind: str) -> Function:
        """A subprogram or callback; its entry moves pointer arguments to r7-r9 (kept)."""
        passed = self.chance(0.3)
        nargs = {"call": self.draw(st.integers(int(passed), 5)), "loop": 2}.get(kind, 0)
        fn = Function(self.label(), kind, level, nargs, passed)
        self.functions.append(fn)
        s = Scope(pool=tuple(range(10)), regs=set(range(1, nargs + 1)), init=set(),
                  areas=[stack_area()], level=level)
        fn.items.append(Store(8, 10, ACCUMULATOR, imm=0))
        if kind.startswith("each"):
            # (map, &key, &value, ctx): key and value stay in r7 and r8
            value_size = MAP_SHAPES[ARRAY if kind == "each_arr" else GLOBAL][3]
            fn.items += [Alu(AluOp.MOV, 7, 2), Alu(AluOp.MOV, 8, 3)]
            s.areas += [Area("key", 7, 0, 4, atomics=False, writable=False),
                        Area("value", 8, 0, value_size)]
            s.frozen |= {7, 8}
        ctx_arg = {"call": 1, "loop": 2}.get(kind, 4)
        if passed:
            fn.items.append(Alu(AluOp.MOV, 9, ctx_arg))
            s.regs.discard(ctx_arg)
            s.areas.append(Area(f"passed{level}", 9, 0, PASSED_STACK, tracked=True))
            s.frozen |= {9}
        self.blocks(s, fn.items, self.draw(st.integers(1, 4)))
        self.epilogue(s, fn.items, fn.callback)
        return fn

    def program(self) -> list[Insn]:
        s = Scope(pool=(0, 1, 2, 3, 4, 5, 7, 8, 9), regs=set(), init=set(),
                  areas=[stack_area()], frozen=frozenset({6}))
        items: list[Item] = [Alu(AluOp.MOV, CTX_REG, 1), Store(8, 10, ACCUMULATOR, imm=0)]
        for r in self.draw(st.lists(st.sampled_from(s.pool), max_size=4, unique=True)):
            items.append(Alu(AluOp.MOV, r, imm=self.imm32()))
            s.regs.add(r)
        self.blocks(s, items, self.draw(st.integers(1, self.max_blocks)))
        if s.regs and self.chance(0.5):
            self.dump(s, items)
        self.epilogue(s, items)
        for fn in self.functions:  # only called functions exist: no unreachable code
            items += [fn.label, *fn.items]
        return assemble(items)


# --- strategies -----------------------------------------------------------------------


# the least payload BPF_PROG_TEST_RUN takes for an skb of these ethertypes (it reads the
# IP header: shorter frames are refused with EINVAL)
MIN_PAYLOAD = {b"\x08\x00": 20, b"\x86\xdd": 40}


def _frame(parts: tuple[bytes, bytes, bytes]) -> bytes:
    macs, ethertype, payload = parts
    need = MIN_PAYLOAD.get(ethertype, 0)
    return macs + ethertype + payload + bytes(max(0, need - len(payload)))


def packets() -> st.SearchStrategy[bytes]:
    """Ethernet frames of 14..128 bytes: random, or with an IPv4/IPv6/ARP/VLAN ethertype.

    Random ones may look like a short IPv4 frame, which tc's BPF_PROG_TEST_RUN refuses:
    the test counts those as not run."""
    ethertype = st.sampled_from([b"\x08\x00", b"\x86\xdd", b"\x08\x06", b"\x81\x00"])
    macs = st.one_of(st.binary(min_size=12, max_size=12),  # pkt_type: host, multicast, other
                     st.binary(min_size=6, max_size=6).map(lambda b: bytes(6) + b))
    typed = st.tuples(macs, ethertype, st.binary(max_size=114)).map(_frame)
    return st.one_of(st.binary(min_size=14, max_size=128), typed)


@st.composite
def map_specs(draw: Any) -> list[MapSpec]:
    """The three maps with generated initial contents."""
    specs = []
    for name, mtype, key_size, value_size, max_entries in MAP_SHAPES:
        value = st.one_of(st.just(bytes(value_size)),
                          st.binary(min_size=value_size, max_size=value_size))
        if mtype == MapType.ARRAY:
            keys = list(range(max_entries))
        else:
            keys = draw(st.lists(st.sampled_from(list(HASH_KEYS)), max_size=max_entries,
                                 unique=True))
        contents = {k.to_bytes(key_size, "little"): draw(value) for k in keys}
        specs.append(MapSpec(name, mtype, key_size, value_size, max_entries, contents))
    return specs


@st.composite
def programs(draw: Any, prog_type: ProgType = ProgType.XDP, max_blocks: int = 10) -> list[Insn]:
    return Builder(draw, prog_type, max_blocks).program()


@st.composite
def cases(draw: Any, prog_type: ProgType = ProgType.XDP, max_blocks: int = 10) -> Case:
    insns = draw(programs(prog_type, max_blocks))
    return Case(prog_type, insns, draw(packets()), draw(map_specs()))
