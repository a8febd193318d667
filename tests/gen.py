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
  explicit `if r4 > r3` bounds check;
- branches go forward; the do-while loop runs a constant 1..4 times with a
  counter its body may not write; after a join only what both paths
  initialized counts as initialized;
- helper and bpf-to-bpf calls clobber r1-r5 and give r0; called
  subprograms follow the main program's exit (r1..rN are their arguments,
  r6-r9 are the caller's again after the return);
- ktime_get_ns and get_prandom_u32 are called but their results never read.

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

# --- stack layout (offsets from r10) -------------------------------------------------

STACK_LO, STACK_HI = -160, -32  # tracked area for spills, fills, atomics
VALUE_BUF = -32  # 16 bytes: the value update_elem copies from
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
# cb[0..4], hash; narrow reads of their low bytes are allowed too
_SKB_FIELDS = (0, 4, 8, 12, 16, 32, 40, 44, 48, 52, 56, 60, 64, 68)
SKB_CTX = CtxInfo(
    76, 80,
    reads=tuple((o, s) for o in _SKB_FIELDS for s in (4, 2, 1)),
    writes=(8, 32, 44, 48, 52, 56, 60, 64),  # mark, priority, tc_index, cb[]
)
CTX_INFO = {ProgType.XDP: XDP_CTX, ProgType.SCHED_CLS: SKB_CTX}

# --- interesting constants ----------------------------------------------------------

EDGE_IMMS = (0, 1, -1, 2, 7, 8, 31, 32, 63, 64, 0xFF, 0x7FFF, -0x8000, 0x7FFFFFFF,
             -0x80000000, 0x12345678)
EDGE_IMM64S = (0, 1, (1 << 64) - 1, 1 << 63, (1 << 63) - 1, 1 << 32, 0xFFFFFFFF,
               0x8000_0000, 0x0123_4567_89AB_CDEF)

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
# offsets around the limits of BPF_PROG_TEST_RUN's frame (see helpers._adjust)
HEAD_DELTAS = (-256, -217, -216, -215, -40, -14, -1, 0, 1, 6, 7, 14, 0xFFFFFFF0)
TAIL_DELTAS = (-7, -6, -1, 0, 1, 16, 3500, 3501, 4096, 0xFFFFFFFC)


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
            case GotoTo():
                out.append(Goto(where[it.label] - slot - 1))
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

    base: int
    lo: int
    hi: int
    tracked: bool = False  # the stack: read only bytes written before
    atomics: bool = True
    aligned: bool = True  # the packet may be accessed unaligned


@dataclass
class Scope:
    pool: tuple[int, ...]  # registers that may hold scalars in this function
    regs: set[int]  # initialized scalars
    stack: set[int]  # initialized stack bytes (offsets from r10)
    areas: list[Area]
    frozen: frozenset[int] = frozenset()  # may not be written (loop counters, pointers)
    depth: int = 0  # nesting of branches and loops
    level: int = 0  # 0: main program, 1..: subprogram
    exit_label: Label | None = None  # the function's `r0 = imm; exit`, once used

    def fork(self, **changes: Any) -> Scope:
        new = Scope(self.pool, set(self.regs), set(self.stack), list(self.areas), self.frozen,
                    self.depth, self.level, self.exit_label)
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    def join(self, other: Scope) -> None:
        """Control flow merges: keep what both paths initialized."""
        self.regs &= other.regs
        self.stack &= other.stack
        self.exit_label = self.exit_label or other.exit_label

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
    nargs: int
    level: int
    callback: bool = False  # a bpf_loop callback: returns 0 (go on) or 1 (stop)
    items: list[Item] = field(default_factory=list)


@dataclass
class Case:
    """One differential test input."""

    prog_type: ProgType
    insns: list[Insn]
    packet: bytes
    maps: list[MapSpec]

    def describe(self) -> str:
        """The program in pseudo-C, the packet and the maps: a reproducer."""
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
            kinds += ["mov_reg", "binop", "binop", "binop", "neg", "movsx", "endian"]
        kind = self.pick(kinds)
        bits = self.pick((64, 32))
        if kind == "mov_imm":
            out.append(Alu(AluOp.MOV, self.pick(s.writable()), imm=self.imm32(), bits=bits))
        elif kind == "lddw":
            out.append(LoadImm64(self.pick(s.writable()), self.imm64()))
        elif kind == "mov_reg":
            out.append(Alu(AluOp.MOV, self.pick(s.writable()), self.pick(s.readable()),
                           bits=bits))
        elif kind == "movsx":
            op = self.pick((AluOp.MOVSX8, AluOp.MOVSX16) + ((AluOp.MOVSX32,) * (bits == 64)))
            out.append(Alu(op, self.pick(s.writable()), self.pick(s.readable()), bits=bits))
        else:
            dsts = [r for r in s.writable() if r in s.regs]
            if not dsts:
                return
            dst = self.pick(dsts)
            if kind == "neg":
                out.append(Alu(AluOp.NEG, dst, bits=bits))
            elif kind == "endian":
                ekind = self.pick(list(EndianKind))
                out.append(Endian(ekind, dst, self.pick((16, 32, 64))))
            else:
                op = self.pick(BINOPS)
                src, imm = self.source(s, out)
                if src is None and op in SHIFTS:
                    imm = self.draw(st.integers(0, bits - 1))  # larger immediates are refused
                elif src is None and op in DIVISIONS and imm == 0:
                    imm = self.pick((1, -1, 3))  # so is a constant zero divisor
                out.append(Alu(op, dst, src, imm, bits))
            return
        s.regs.add(out[-1].dst)  # type: ignore[union-attr]

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
            offs = [o for o in offs if all(o + i in s.stack for i in range(size))]
        return offs

    def mark(self, s: Scope, area: Area, off: int, size: int) -> None:
        if area.tracked:
            s.stack.update(range(off, off + size))

    def load(self, s: Scope, out: list[Item], area: Area) -> None:
        size = self.pick((1, 2, 4, 8))
        offs = self.accesses(s, area, size, need_init=True)
        if not offs:
            return self.store(s, out, area)
        dst = self.pick(s.writable())
        signed = size < 8 and self.chance(0.25)
        out.append(Load(size, dst, area.base, self.pick(offs), signed))
        s.regs.add(dst)

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
                area = self.pick(s.areas)
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
            s.regs, s.stack, s.exit_label = inner.regs, inner.stack, inner.exit_label
        else:
            out.append(target)
            s.join(inner)

    # -- structured control flow

    def if_else(self, s: Scope, out: list[Item]) -> None:
        other, end = self.label(), self.label()
        out.append(self.condition(s, out, other))
        then = s.fork(depth=s.depth + 1)
        self.blocks(then, out, self.draw(st.integers(1, 3)))
        out.append(GotoTo(end))
        out.append(other)
        orelse = s.fork(depth=s.depth + 1, exit_label=then.exit_label)
        self.blocks(orelse, out, self.draw(st.integers(0, 3)))
        out.append(end)
        then.join(orelse)
        s.regs, s.stack, s.exit_label = then.regs, then.stack, then.exit_label

    def loop(self, s: Scope, out: list[Item]) -> None:
        """do { body } while (--c != 0) with c = 1..4: bounded, so the verifier follows it."""
        # callee-saved: blocks in the body may call helpers, which clobber r0-r5
        counter = self.pick([r for r in s.writable() if r in CALLEE_SAVED])
        bits = self.pick((64, 32))
        out.append(Alu(AluOp.MOV, counter, imm=self.draw(st.integers(1, 4)), bits=bits))
        top = self.label()
        out.append(top)
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
        # the body ran at least once: its initializations hold after the loop
        s.regs, s.stack, s.exit_label = body.regs | {counter}, body.stack, body.exit_label

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
            inner.areas = inner.areas + [Area(2, 0, size, atomics=False, aligned=False)]
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
            inner.areas = inner.areas + [Area(5, 0, value_size)]
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
        s.clobber()
        s.regs.add(0)

    def map_delete(self, s: Scope, out: list[Item]) -> None:
        m = self.pick((HASH, HASH, ARRAY))
        self.key(s, out, 5)
        out += [LoadImm64(1, m, PseudoKind.MAP_IDX), Alu(AluOp.MOV, 2, 10),
                Alu(AluOp.ADD, 2, imm=KEY_SLOT), Call(CallKind.HELPER, DELETE)]
        s.clobber()
        s.regs.add(0)

    def global_value(self, s: Scope, out: list[Item]) -> None:
        """`rP = &glob + aux` (a direct value lddw), then accesses through rP."""
        base = self.pick(s.writable())
        aux = self.pick((0, 8, 16))
        out.append(LoadImm64(base, GLOBAL, PseudoKind.MAP_IDX_VALUE, aux))
        s.regs.discard(base)
        inner_frozen, inner_areas = s.frozen, s.areas
        s.frozen = s.frozen | {base}
        s.areas = s.areas + [Area(base, -aux, MAP_SHAPES[GLOBAL][3] - aux)]
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
            if delta > 0x7FFFFFFF:  # `w2 = -16`: r2 = 0xfffffff0, which the helper reads as -16
                out.append(Alu(AluOp.MOV, 2, imm=delta - (1 << 32), bits=32))
            else:
                out.append(Alu(AluOp.MOV, 2, imm=delta))
        out.append(Call(CallKind.HELPER, ADJUST_HEAD if head else ADJUST_TAIL))
        s.clobber()
        s.regs.add(0)

    def bpf_loop(self, s: Scope, out: list[Item]) -> None:
        """bpf_loop(nr, callback, NULL, 0): the callback sees (index, NULL)."""
        fn = self.callee(s.level + 1, callback=True)
        if s.regs and self.chance(0.4):
            out.append(Alu(AluOp.MOV, 1, self.pick(s.readable())))
            out.append(Alu(AluOp.AND, 1, imm=7))
        elif self.chance(0.1):  # refused with -E2BIG before any iteration
            out.append(LoadImm64(1, self.pick((MAX_LOOPS + 1, (1 << 32) | 3, 1 << 63))))
        else:
            out.append(Alu(AluOp.MOV, 1, imm=self.draw(st.integers(0, 6))))
        out += [FuncAddr(2, fn.label), Alu(AluOp.MOV, 3, imm=0),
                Alu(AluOp.MOV, 4, imm=self.pick((0, 0, 0, 0, 1)))]
        out.append(Call(CallKind.HELPER, BPF_LOOP))
        s.clobber()
        s.regs.add(0)

    def callee(self, level: int, callback: bool) -> Function:
        """A function of `level`: one drawn before, or a new one."""
        known = [f for f in self.functions if f.level == level and f.callback == callback]
        if known and self.chance(0.5):
            return self.pick(known)
        nargs = 2 if callback else self.draw(st.integers(0, 5))
        return self.function(level, nargs, callback)

    def call(self, s: Scope, out: list[Item]) -> None:
        fn = self.callee(s.level + 1, callback=False)
        for r in range(1, fn.nargs + 1):
            if s.regs and self.chance(0.7):
                out.append(Alu(AluOp.MOV, r, self.pick(s.readable())))
            else:
                out.append(Alu(AluOp.MOV, r, imm=self.imm32()))
            s.regs.add(r)
        out.append(CallTo(fn.label))
        s.clobber()
        s.regs.add(0)

    # -- programs

    def blocks(self, s: Scope, out: list[Item], count: int, calls: bool = True) -> None:
        kinds = ["ops", "ops", "ops", "lookup", "update", "delete", "global", "helper"]
        if s.level == 0:
            kinds += ["packet", "packet", "ctx"]
            if self.prog_type == ProgType.XDP:
                kinds += ["adjust"]
        if s.depth < 2:
            kinds += ["if_else", "loop"]
        if calls and s.level < MAX_SUB_LEVEL and s.depth == 0:
            kinds += ["call", "bpf_loop"]
        for _ in range(count):
            match self.pick(kinds):
                case "ops":
                    self.ops(s, out, self.draw(st.integers(1, 6)))
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
                case "adjust":
                    self.adjust(s, out)

    def epilogue(self, s: Scope, out: list[Item], callback: bool = False) -> None:
        """`r0 = rX; exit`, and the early exit when something jumps there.

        A callback must return 0 or 1, provably: `r0 &= 1` (with a low chance of 0 or 1
        taken from the register's value, the loop goes on for a while)."""
        if s.regs and self.chance(0.9):
            out.append(Alu(AluOp.MOV, 0, self.pick(s.readable()), bits=self.pick((64, 32))))
            if callback:
                out.append(Alu(AluOp.AND, 0, imm=1))
        else:
            out.append(Alu(AluOp.MOV, 0, imm=self.pick((0, 1)) if callback else self.imm32()))
        out.append(Exit())
        if s.exit_label is not None:
            imm = self.pick((0, 1)) if callback else self.imm32()
            out += [s.exit_label, Alu(AluOp.MOV, 0, imm=imm), Exit()]

    def function(self, level: int, nargs: int, callback: bool = False) -> Function:
        fn = Function(self.label(), nargs, level, callback)
        self.functions.append(fn)
        s = Scope(pool=tuple(range(10)), regs=set(range(1, nargs + 1)), stack=set(),
                  areas=[Area(10, STACK_LO, STACK_HI, tracked=True)], level=level)
        self.blocks(s, fn.items, self.draw(st.integers(1, 4)))
        self.epilogue(s, fn.items, callback)
        return fn

    def program(self) -> list[Insn]:
        s = Scope(pool=(0, 1, 2, 3, 4, 5, 7, 8, 9), regs=set(), stack=set(),
                  areas=[Area(10, STACK_LO, STACK_HI, tracked=True)], frozen=frozenset({6}))
        items: list[Item] = [Alu(AluOp.MOV, CTX_REG, 1)]
        for r in self.draw(st.lists(st.sampled_from(s.pool), max_size=4, unique=True)):
            items.append(Alu(AluOp.MOV, r, imm=self.imm32()))
            s.regs.add(r)
        self.blocks(s, items, self.draw(st.integers(1, self.max_blocks)))
        self.epilogue(s, items)
        for fn in self.functions:  # only called functions exist: no unreachable code
            items += [fn.label, *fn.items]
        return assemble(items)


# --- strategies -----------------------------------------------------------------------


def packets() -> st.SearchStrategy[bytes]:
    """Ethernet frames of 14..128 bytes: random, or with an IPv4/IPv6/ARP ethertype."""
    ethertype = st.sampled_from([b"\x08\x00", b"\x86\xdd", b"\x08\x06", b"\x81\x00"])
    typed = st.tuples(st.binary(min_size=12, max_size=12), ethertype,
                      st.binary(max_size=114)).map(lambda t: b"".join(t))
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
