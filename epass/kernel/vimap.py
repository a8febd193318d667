"""The VI map: the verifier's register and stack state before each instruction.

With a log level of 1 or more the verifier prints, after each instruction line
"N: (op) text", a "; R0=... fp-8=..." comment with the registers and stack
slots that the instruction touched (the kernel calls them "scratched").  On a
new path it prints the whole state of the current frame ("from A to B: ...",
or at level 1 " B: ..." appended to the branch instruction), and around
bpf-to-bpf calls it prints the caller's and callee's frames.

`build_vimap` replays those prints: full states replace the current frame,
deltas update it, and it applies the few effects the kernel does not print
(caller-saved registers dropped by a call, the NULL check or packet bounds
check reaching copies of the checked register, references released by a
helper).  It records the state before every instruction line, once per visit.

The text format comes from print_verifier_state() and print_reg_state() in
kernel/bpf/log.c: bounds equal to their defaults are omitted; bounds with equal
values are chained ("smin=smin32=0"); values beyond 16 bits are printed in hex,
signed ones as their 64-bit (or, for smin32/smax32, 32-bit) two's complement.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from epass.kernel.verifier_log import (
    FROM_RE,
    INSN_RE,
    LIVE_REGS_RE,
    SOURCE_RE,
    STATE_RE,
    LineKind,
    SourceLine,
    classify_line,
    error_block_start,
)

__all__ = [
    "Checkpoint",
    "FrameDelta",
    "FrameState",
    "MergedReg",
    "RegState",
    "StackSlot",
    "VIMap",
    "VerifierState",
    "Visit",
    "build_vimap",
    "parse_reg_state",
    "parse_stack_slot",
    "parse_state",
]

U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1
S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
CALLER_SAVED = range(6)  # R0-R5: a call leaves them uninitialised (R0 gets the result)


def to_s64(v: int) -> int:
    v &= U64_MAX
    return v - (1 << 64) if v > S64_MAX else v


def to_s32(v: int) -> int:
    v &= U32_MAX
    return v - (1 << 32) if v > S32_MAX else v


# --- data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RegState:
    """One register (or spilled register) as the verifier printed it.

    Bounds the log omitted carry the kernel's defaults (umax = 2^64-1, ...);
    a constant has every bound equal to it and var_off (value, 0).  For
    pointers the bounds and var_off describe the variable part of the offset;
    `off` is the fixed part.  `frameno` is the frame whose stack a stack
    pointer points into (None: the register's own frame).
    """

    type: str
    off: int = 0
    id: int = 0
    add_const: bool = False  # "id=1-8": a scalar linked to id 1 plus a constant (off)
    ref_obj_id: int = 0
    umin: int = 0
    umax: int = U64_MAX
    smin: int = S64_MIN
    smax: int = S64_MAX
    u32_min: int = 0
    u32_max: int = U32_MAX
    s32_min: int = S32_MIN
    s32_max: int = S32_MAX
    var_off_value: int = 0
    var_off_mask: int = U64_MAX
    range: int | None = None  # r= of packet pointers (negative: AT/BEYOND_PKT_END)
    key_size: int | None = None
    value_size: int | None = None
    map_name: str | None = None
    mem_size: int | None = None  # sz= of mem pointers
    frameno: int | None = None
    non_own_ref: bool = False
    precise: bool = False
    live: str = ""  # liveness marks of older kernels ("R0_w"): r, w, D
    extra: tuple[tuple[str, str], ...] = ()  # attributes this parser does not know

    @property
    def written(self) -> bool:
        return "w" in self.live

    @property
    def is_scalar(self) -> bool:
        return self.type == "scalar"

    @property
    def is_const(self) -> bool:
        return self.var_off_mask == 0

    @property
    def const_value(self) -> int | None:
        """The signed 64-bit value of a constant scalar, else None."""
        return to_s64(self.var_off_value) if self.is_scalar and self.is_const else None

    @classmethod
    def constant(cls, value: int, type: str = "scalar", **kw: object) -> RegState:
        """A register whose (variable) value is known: all bounds equal `value`."""
        return cls(type=type, **_const_bounds(value), **kw)  # type: ignore[arg-type]


def _const_bounds(value: int) -> dict[str, int]:
    u = value & U64_MAX
    s = to_s64(u)
    u32 = u & U32_MAX
    s32 = to_s32(u)
    return {
        "umin": u, "umax": u, "smin": s, "smax": s,
        "u32_min": u32, "u32_max": u32, "s32_min": s32, "s32_max": s32,
        "var_off_value": u, "var_off_mask": 0,
    }  # fmt: skip


@dataclass(frozen=True)
class StackSlot:
    """One 8-byte stack slot at `off` (fp-8, fp-16, ...).

    `kind` is spill, misc, zero, invalid, dynptr, iter or mixed.  `slot_types`
    has one character per byte as the kernel prints them (r spill, m misc,
    0 zero, ? invalid, d dynptr, i iter, f irq flag); character j describes the
    byte at off + 7 - j.  `spilled` is the register kept in a spill slot.
    """

    off: int
    kind: str
    slot_types: str
    spilled: RegState | None = None
    live: str = ""
    extra: tuple[tuple[str, str], ...] = ()  # dynptr/iter details: type, id, ref_id, state...

    @property
    def ref_id(self) -> int:
        return int(dict(self.extra).get("ref_id", "0"))


@dataclass(frozen=True)
class FrameState:
    """Registers and stack of one call frame (frame 0 is the main program)."""

    frameno: int
    regs: Mapping[int, RegState] = field(default_factory=dict)
    stack: Mapping[int, StackSlot] = field(default_factory=dict)
    callback: bool = False  # "cb": the frame runs a callback (bpf_loop, ...)
    async_callback: bool = False


@dataclass(frozen=True)
class VerifierState:
    """The whole verifier state: the frame stack (innermost last) and held references."""

    frames: tuple[FrameState, ...]
    refs: tuple[int, ...] = ()

    @property
    def frame(self) -> int:
        """Index of the current (innermost) frame."""
        return len(self.frames) - 1

    @property
    def regs(self) -> Mapping[int, RegState]:
        return self.frames[-1].regs

    @property
    def stack(self) -> Mapping[int, StackSlot]:
        return self.frames[-1].stack


@dataclass(frozen=True)
class FrameDelta:
    """What one state print listed: for a delta, the touched registers/slots."""

    frame: int
    regs: Mapping[int, RegState]
    stack: Mapping[int, StackSlot]
    refs: tuple[int, ...]
    callback: bool = False
    async_callback: bool = False


@dataclass(frozen=True)
class Visit:
    """One walk of the verifier over one instruction, with the state before it."""

    insn: int
    state: VerifierState
    text: str  # the instruction as printed, "r1 = *(u32 *)(r1 +16)"
    line: int  # 1-based line number in the log
    delta: FrameDelta | None = None  # what the instruction changed, if printed


@dataclass(frozen=True)
class Checkpoint:
    """A frame the log printed in full where the tracker also had its own copy."""

    line: int
    what: str  # "returning from callee", "caller"
    tracked: FrameState
    printed: FrameState


@dataclass(frozen=True)
class MergedReg:
    """A register's union over every visit of an instruction."""

    type: str | None  # None when the visits disagree
    umin: int
    umax: int
    smin: int
    smax: int
    u32_min: int
    u32_max: int
    s32_min: int
    s32_max: int
    visits: int  # visits where the register was initialised
    uninit_visits: int


@dataclass(frozen=True)
class VIMap:
    """States per instruction, in the order the verifier visited them."""

    visits: tuple[Visit, ...]
    unparsed: list[str]  # lines (or tokens) this parser did not understand
    live_regs: Mapping[int, frozenset[int]]  # "Live regs before insn" (6.15+), level 2
    sources: Mapping[int, SourceLine]  # source comment printed before each insn
    checkpoints: tuple[Checkpoint, ...] = ()
    head_fragment: str | None = None  # a rotated log's cut first line
    _by_insn: dict[int, list[Visit]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for v in self.visits:
            self._by_insn.setdefault(v.insn, []).append(v)

    def insns(self) -> list[int]:
        """Visited instruction indices, ascending."""
        return sorted(self._by_insn)

    def visits_of(self, insn: int) -> list[Visit]:
        return list(self._by_insn.get(insn, ()))

    def states(self, insn: int) -> list[VerifierState]:
        """The state before `insn`, once per visit, in visit order."""
        return [v.state for v in self._by_insn.get(insn, ())]

    def reg_at(self, insn: int, regno: int) -> list[RegState]:
        """Register `regno` of the current frame before `insn`, for the visits where
        it was initialised (so the list may be shorter than `states(insn)`)."""
        return [s.regs[regno] for s in self.states(insn) if regno in s.regs]

    def slot_at(self, insn: int, off: int) -> list[StackSlot]:
        """Stack slot `off` of the current frame before `insn`, where it was valid."""
        return [s.stack[off] for s in self.states(insn) if off in s.stack]

    def merged(self, insn: int, regno: int) -> MergedReg | None:
        """Union of the register's bounds over all visits; None if never initialised."""
        states = self.states(insn)
        regs = [s.regs[regno] for s in states if regno in s.regs]
        if not regs:
            return None
        types = {r.type for r in regs}
        return MergedReg(
            type=types.pop() if len(types) == 1 else None,
            umin=min(r.umin for r in regs),
            umax=max(r.umax for r in regs),
            smin=min(r.smin for r in regs),
            smax=max(r.smax for r in regs),
            u32_min=min(r.u32_min for r in regs),
            u32_max=max(r.u32_max for r in regs),
            s32_min=min(r.s32_min for r in regs),
            s32_max=max(r.s32_max for r in regs),
            visits=len(regs),
            uninit_visits=len(states) - len(regs),
        )


# --- parsing one state print ----------------------------------------------------------

_NUM = r"-?(?:0x[0-9a-f]+|0|[1-9][0-9]*)"  # the kernel never prints leading zeros
_NUM_RE = re.compile(rf"^{_NUM}$")
_FP_RE = re.compile(rf"^fp(?:\[(?P<frame>\d+)\])?(?P<off>{_NUM})$")
_TYPED_RE = re.compile(r"^(?P<type>[a-z_][A-Za-z0-9_]*?)(?:\[(?P<frame>\d+)\])?\((?P<attrs>.*)\)$")
_OLD_INV_RE = re.compile(rf"^inv(?P<precise>P?)(?P<num>{_NUM})$")  # kernels before 5.19
_ID_RE = re.compile(r"^(?P<id>\d+)(?P<off>[+-]\d+)?$")
_TNUM_RE = re.compile(r"^\((?P<value>0x[0-9a-f]+); (?P<mask>0x[0-9a-f]+)\)$")
_REG_TOKEN_RE = re.compile(r"^R(?P<reg>\d+)(?:_(?P<live>[rwD]+))?=(?P<value>.*)$")
_SLOT_TOKEN_RE = re.compile(r"^fp(?P<off>-?\d+)(?:_(?P<live>[rwD]+))?=(?P<value>.*)$")
_SLOT_CHARS = frozenset("?rm0difp")
_RAW_ATTRS = frozenset({"type"})  # known attributes kept as text in RegState.extra
_BOUND_FIELDS = {
    "smin": ("smin", to_s64),
    "smax": ("smax", to_s64),
    "umin": ("umin", lambda v: v & U64_MAX),
    "umax": ("umax", lambda v: v & U64_MAX),
    "smin32": ("s32_min", to_s32),
    "smax32": ("s32_max", to_s32),
    "umin32": ("u32_min", lambda v: v & U32_MAX),
    "umax32": ("u32_max", lambda v: v & U32_MAX),
    # names printed by kernels before 6.4
    "smin_value": ("smin", to_s64),
    "smax_value": ("smax", to_s64),
    "umin_value": ("umin", lambda v: v & U64_MAX),
    "umax_value": ("umax", lambda v: v & U64_MAX),
    "s32_min_value": ("s32_min", to_s32),
    "s32_max_value": ("s32_max", to_s32),
    "u32_min_value": ("u32_min", lambda v: v & U32_MAX),
    "u32_max_value": ("u32_max", lambda v: v & U32_MAX),
}


def _split_top(text: str, sep: str) -> list[str]:
    """Split at `sep` outside parentheses ("var_off=(0x0; 0xff)" stays whole)."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p]


def parse_reg_state(text: str, live: str = "") -> RegState | None:
    """Parse the value side of "R1=..." ("ctx()", "42", "fp-8", "scalar(...)").

    Returns None for text it does not understand.
    """
    precise = text.startswith("P")
    if precise:
        text = text[1:]
    if _NUM_RE.match(text):
        return RegState.constant(int(text, 0), precise=precise, live=live)
    if m := _FP_RE.match(text):
        frame = m.group("frame")
        return RegState.constant(
            0,
            type="fp",
            off=to_s64(int(m.group("off"), 0)),
            frameno=int(frame) if frame is not None else None,
            live=live,
        )
    if m := _OLD_INV_RE.match(text):
        value = int(m.group("num"), 0)
        return RegState.constant(value, precise=bool(m.group("precise")), live=live)
    m = _TYPED_RE.match(text)
    if not m:
        return None
    type_ = m.group("type")
    if type_ in ("inv", "invP"):  # old kernels' name for scalars
        type_, precise = "scalar", precise or type_ == "invP"
    kw: dict[str, object] = {"precise": precise, "live": live}
    if m.group("frame") is not None:
        kw["frameno"] = int(m.group("frame"))
    bounds: dict[str, int] = {}
    tnum: tuple[int, int] | None = None
    imm: int | None = None
    extra: list[tuple[str, str]] = []
    for attr in _split_top(m.group("attrs"), ","):
        if attr == "non_own_ref":
            kw["non_own_ref"] = True
            continue
        names = attr.split("=")
        if len(names) < 2:
            extra.append((attr, ""))
            continue
        *keys, value = names
        key = keys[0]
        try:
            if key in _BOUND_FIELDS:
                num = int(value, 0)
                for k in keys:
                    name, conv = _BOUND_FIELDS[k]
                    bounds[name] = conv(num)
            elif key == "var_off":
                if t := _TNUM_RE.match(value):
                    tnum = (int(t.group("value"), 16), int(t.group("mask"), 16))
                else:
                    tnum = (int(value, 0) & U64_MAX, 0)
            elif key == "id":
                idm = _ID_RE.match(value)
                if not idm:
                    raise ValueError(value)
                kw["id"] = int(idm.group("id"))
                if idm.group("off"):
                    kw["add_const"] = True
                    kw["off"] = int(idm.group("off"))
            elif key == "imm":
                imm = int(value, 0)
            elif key == "off":
                kw["off"] = to_s64(int(value, 0))
            elif key == "r":
                kw["range"] = to_s64(int(value, 0))
            elif key in ("ref_obj_id", "ks", "vs", "sz"):
                name = {"ks": "key_size", "vs": "value_size", "sz": "mem_size"}.get(key, key)
                kw[name] = int(value, 0)
            elif key == "map":
                kw["map_name"] = value
            else:
                extra.append((key, value))
        except (KeyError, ValueError):
            extra.append((key, value))
    if bounds or tnum is not None or type_ == "scalar":
        # A variable value: omitted bounds are the defaults, omitted var_off unknown.
        value_, mask = tnum if tnum is not None else (0, U64_MAX)
        base = dict(var_off_value=value_, var_off_mask=mask, **bounds)
    else:
        base = _const_bounds(imm or 0)  # a pointer with a fixed offset
    return RegState(type=type_, extra=tuple(extra), **base, **kw)  # type: ignore[arg-type]


def parse_stack_slot(off: int, text: str, live: str = "") -> StackSlot | None:
    """Parse the value side of "fp-8=..." ("mmmm????", "ctx()", "????0", "iter_num(...)")."""
    if len(text) == 8 and set(text) <= _SLOT_CHARS:
        return StackSlot(off, _slot_kind(text), text, live=live)
    m = _TYPED_RE.match(text)
    if m and m.group("type").startswith(("dynptr_", "iter_")):
        kind, _, sub = m.group("type").partition("_")
        extra = [("type" if kind == "dynptr" else "iter", sub)]
        for attr in _split_top(m.group("attrs"), ","):
            k, _, v = attr.partition("=")
            extra.append((k, v))
        types = "dddddddd" if kind == "dynptr" else "iiiiiiii"
        return StackSlot(off, kind, types, live=live, extra=tuple(extra))
    # A spill: the slot types above a narrow spill ("????" for 4 bytes), then the register.
    for width in (0, 4, 6, 7, 1, 2, 3, 5):
        prefix, rest = text[:width], text[width:]
        if set(prefix) <= _SLOT_CHARS - {"r"}:
            reg = parse_reg_state(rest)
            if reg is not None:
                return StackSlot(off, "spill", prefix + "r" * (8 - width), reg, live=live)
    return None


def _slot_kind(types: str) -> str:
    used = set(types) - {"?"}
    if not used:
        return "invalid"
    if used == {"0"}:
        return "zero"
    if used <= {"m", "0"}:
        return "misc"
    if used == {"r"}:
        return "spill"
    return "mixed"


def parse_state(text: str) -> tuple[FrameDelta, list[str]]:
    """Parse one state print (" frame1: R1=... fp-8=... refs=2 cb").

    Returns the items and the tokens it could not parse.
    """
    frame = 0
    regs: dict[int, RegState] = {}
    stack: dict[int, StackSlot] = {}
    refs: tuple[int, ...] = ()
    cb = async_cb = False
    bad: list[str] = []
    for token in _split_top(text.strip(), " "):
        if token.startswith("frame") and token.endswith(":") and token[5:-1].isdigit():
            frame = int(token[5:-1])
        elif m := _REG_TOKEN_RE.match(token):
            reg = parse_reg_state(m.group("value"), m.group("live") or "")
            if reg is None:
                bad.append(token)
                continue
            if any(k not in _RAW_ATTRS for k, _ in reg.extra):
                bad.append(token)  # kept, but reported: an attribute this parser lacks
            regs[int(m.group("reg"))] = reg
        elif m := _SLOT_TOKEN_RE.match(token):
            off = int(m.group("off"))
            slot = parse_stack_slot(off, m.group("value"), m.group("live") or "")
            if slot is None:
                bad.append(token)
                continue
            stack[off] = slot
        elif token.startswith("refs="):
            try:
                refs = tuple(int(r) for r in token[5:].split(","))
            except ValueError:
                bad.append(token)
        elif token == "cb":
            cb = True
        elif token == "async_cb":
            async_cb = True
        else:
            bad.append(token)
    return FrameDelta(frame, regs, stack, refs, cb, async_cb), bad


# --- replaying the log ------------------------------------------------------------------

Rewrite = Callable[[RegState], RegState | None]


def _null_checked(prev: RegState, new: RegState) -> Rewrite:
    """mark_ptr_or_null_regs(): every copy of the checked pointer becomes 0 or non-NULL."""

    def rewrite(r: RegState) -> RegState | None:
        if r.id != prev.id or "or_null" not in r.type:
            return None
        if new.const_value == 0:
            return RegState.constant(0)
        return dataclasses.replace(r, type=new.type, id=new.id)

    return rewrite


def _pkt_range_learned(new: RegState) -> Rewrite:
    """find_good_pkt_pointers(): packet pointers with the same id learn the new range."""

    def rewrite(r: RegState) -> RegState | None:
        if r.type != new.type or r.id != new.id or r.range is None or r.range < 0:
            return None
        return dataclasses.replace(r, range=max(r.range, new.range or 0))

    return rewrite


def _linked_bounds(new: RegState) -> Rewrite:
    """sync_linked_regs(): scalars copied from one another share refined bounds."""

    def rewrite(r: RegState) -> RegState | None:
        if not r.is_scalar or r.id != new.id or r.add_const:
            return None
        return dataclasses.replace(new, precise=r.precise, live=r.live)

    return rewrite


@dataclass
class _Frame:
    """A mutable frame while replaying; frozen into FrameState at each visit."""

    frameno: int
    regs: dict[int, RegState] = field(default_factory=dict)
    stack: dict[int, StackSlot] = field(default_factory=dict)
    callback: bool = False
    async_callback: bool = False

    def freeze(self) -> FrameState:
        return FrameState(
            self.frameno, dict(self.regs), dict(self.stack), self.callback, self.async_callback
        )

    @classmethod
    def thaw(cls, f: FrameState) -> _Frame:
        return cls(f.frameno, dict(f.regs), dict(f.stack), f.callback, f.async_callback)

    @classmethod
    def of(cls, d: FrameDelta) -> _Frame:
        return cls(d.frame, dict(d.regs), dict(d.stack), d.callback, d.async_callback)


_DELTA_RE = re.compile(r"^(?P<text>.*?)\s+;(?P<delta>.*)$")
_APPENDED_RE = re.compile(r"^(?P<text>.*?) (?P<idx>\d+):(?P<state>(?: frame\d+:)? [Rf].*)$")
_COND_JUMP_RE = re.compile(r"^if |^may_goto")


class _Replay:
    def __init__(self) -> None:
        self.frames: list[_Frame] = [_Frame(0)]
        self.refs: tuple[int, ...] = ()
        self.visits: list[Visit] = []
        self.last_visit: dict[int, int] = {}  # insn -> index into visits
        self.unparsed: list[str] = []
        self.live_regs: dict[int, frozenset[int]] = {}
        self.sources: dict[int, SourceLine] = {}
        self.checkpoints: list[Checkpoint] = []
        self.source: SourceLine | None = None
        self.header: str | None = None  # the frame header waiting for its state line
        self.open_visit: int | None = None  # visit whose delta may still come on its own line

    # -- state helpers --

    def snapshot(self) -> VerifierState:
        return VerifierState(tuple(f.freeze() for f in self.frames), self.refs)

    def frame(self, k: int) -> _Frame:
        """Frame k, making the stack exactly k+1 frames deep (the log says where we are)."""
        while len(self.frames) <= k:
            self.frames.append(_Frame(len(self.frames)))
        del self.frames[k + 1 :]
        return self.frames[k]

    def map_regs(self, fn: Rewrite, skip: set[int] | None = None) -> None:
        """Replace every register and spilled register r by fn(r) (None keeps r);
        `skip` names registers of the current frame to leave alone."""
        cur = self.frames[-1]
        for f in self.frames:
            for regno, reg in list(f.regs.items()):
                if f is cur and skip and regno in skip:
                    continue
                new = fn(reg)
                if new is not None:
                    f.regs[regno] = new
            for off, slot in list(f.stack.items()):
                if slot.spilled is not None:
                    new = fn(slot.spilled)
                    if new is not None:
                        f.stack[off] = dataclasses.replace(slot, spilled=new)

    # -- applying prints --

    def apply_full(self, d: FrameDelta, callers: tuple[FrameState, ...] | None = None) -> None:
        if callers is not None:
            self.frames = [_Frame.thaw(f) for f in callers[: d.frame]]
        self.frame(d.frame)
        self.frames[d.frame] = _Frame.of(d)
        self.set_refs(d.refs)

    def apply_delta(self, d: FrameDelta, jump: bool) -> None:
        frame = self.frame(d.frame)
        old = dict(frame.regs)
        frame.regs.update(d.regs)
        frame.stack.update(d.stack)
        frame.callback = frame.callback or d.callback
        frame.async_callback = frame.async_callback or d.async_callback
        self.set_refs(d.refs)
        if jump:
            self.propagate_branch(old, d.regs)

    def set_refs(self, refs: tuple[int, ...]) -> None:
        gone = set(self.refs) - set(refs)
        self.refs = refs
        if not gone:
            return
        # release_reference(): every copy of a released pointer becomes unusable.
        self.map_regs(lambda r: RegState("scalar") if r.ref_obj_id in gone else None)
        for f in self.frames:
            for off, slot in list(f.stack.items()):
                if slot.kind in ("iter", "dynptr") and slot.ref_id in gone:
                    del f.stack[off]

    def propagate_branch(self, old: dict[int, RegState], printed: Mapping[int, RegState]) -> None:
        """Effects of a conditional jump on registers the kernel did not print."""
        for regno, new in printed.items():
            prev = old.get(regno)
            if prev is None:
                continue
            if "or_null" in prev.type and prev.id and new.type != prev.type:
                self.map_regs(_null_checked(prev, new), skip=set(printed))
            elif new.type in ("pkt", "pkt_meta") and (new.range or 0) > max(prev.range or 0, 0):
                self.map_regs(_pkt_range_learned(new), skip=set(printed))
            elif new.is_scalar and new.id and not new.add_const:
                self.map_regs(_linked_bounds(new), skip=set(printed))

    # -- line handlers --

    def on_insn(self, line: str, lineno: int) -> None:
        m = INSN_RE.match(line)
        assert m is not None
        idx, rest = int(m.group("idx")), m.group("rest")
        delta_text = appended = None
        if dm := _DELTA_RE.match(rest):
            text, delta_text = dm.group("text"), dm.group("delta")
        elif am := _APPENDED_RE.match(rest):
            text, appended = am.group("text"), am.group("state")
        else:
            text = rest.rstrip()
        if self.source is not None:
            self.sources.setdefault(idx, self.source)
        self.visits.append(Visit(idx, self.snapshot(), text, lineno))
        self.last_visit[idx] = len(self.visits) - 1
        self.open_visit = len(self.visits) - 1
        if text.startswith("call ") and not text.startswith("call pc"):
            cur = self.frames[-1]  # helpers and kfuncs clobber R0-R5
            for r in CALLER_SAVED:
                cur.regs.pop(r, None)
        if delta_text is not None:
            self.on_delta(delta_text, line)
        elif appended is not None:
            # Level 1: the log was rewound to this branch, which was then taken.
            d = self.parse(appended, line)
            self.apply_full(d)
            self.open_visit = None

    def on_delta(self, text: str, line: str) -> None:
        d = self.parse(text, line)
        jump = False
        if self.open_visit is not None:
            visit = self.visits[self.open_visit]
            jump = _COND_JUMP_RE.match(visit.text) is not None
            self.visits[self.open_visit] = dataclasses.replace(visit, delta=d)
            self.open_visit = None
        self.apply_delta(d, jump)

    def on_from(self, line: str) -> None:
        m = FROM_RE.match(line)
        assert m is not None
        self.open_visit = None
        state = m.group("state").strip()
        if state == "safe":
            return
        d = self.parse(state, line)
        src = self.last_visit.get(int(m.group("src")))
        callers = self.visits[src].state.frames if src is not None else None
        if callers is not None and len(callers) < d.frame:
            callers = None
        self.apply_full(d, callers)

    def on_frame_state(self, line: str, lineno: int) -> None:
        header, self.header = self.header, None
        d = self.parse(line, line)
        if header is None:
            self.unparsed.append(line)
        elif header == "callee":
            self.frame(max(d.frame - 1, 0))
            self.frames.append(_Frame.of(d))
            self.set_refs(d.refs)
        elif header == "caller":
            self.checkpoint(lineno, "caller", d)
            self.frame(d.frame)
            self.frames[d.frame] = _Frame.of(d)
        elif header == "returning from callee":
            self.checkpoint(lineno, header, d)
        else:  # "to caller at N": back in the caller, with R0 set
            self.apply_full(d)

    def checkpoint(self, lineno: int, what: str, d: FrameDelta) -> None:
        if d.frame < len(self.frames):
            tracked = self.frames[d.frame].freeze()
            printed = _Frame.of(d).freeze()
            self.checkpoints.append(Checkpoint(lineno, what, tracked, printed))

    def on_live_regs(self, line: str) -> None:
        m = LIVE_REGS_RE.match(line)
        assert m is not None
        live = m.group("live")
        self.live_regs[int(m.group("idx"))] = frozenset(i for i, ch in enumerate(live) if ch != ".")

    def parse(self, text: str, line: str) -> FrameDelta:
        d, bad = parse_state(text)
        if bad:
            self.unparsed.append(line)
        return d


def build_vimap(text: str) -> VIMap:
    """Rebuild the per-instruction states from a verifier log (level 1 or 2).  Never raises."""
    lines = text.splitlines()
    kinds = [classify_line(line) for line in lines]
    # Lines after the last walk line are the error message and statistics.
    tail = error_block_start(kinds)
    head_fragment = None
    if lines and kinds[0] is LineKind.OTHER and tail > 0:
        head_fragment = lines[0]  # a rotated log starts mid-line

    r = _Replay()
    for i, (line, kind) in enumerate(zip(lines, kinds, strict=True)):
        lineno = i + 1
        if i == 0 and head_fragment is not None:
            continue
        try:
            _dispatch(r, kind, line, lineno, in_tail=i >= tail)
        except (ValueError, KeyError, IndexError, AssertionError):  # never fail on a log
            r.unparsed.append(line)
    return VIMap(
        visits=tuple(r.visits),
        unparsed=r.unparsed,
        live_regs=r.live_regs,
        sources=r.sources,
        checkpoints=tuple(r.checkpoints),
        head_fragment=head_fragment,
    )


def _dispatch(r: _Replay, kind: LineKind, line: str, lineno: int, *, in_tail: bool) -> None:
    if kind is LineKind.INSN:
        r.on_insn(line, lineno)
    elif kind is LineKind.STATE:
        m = STATE_RE.match(line)
        assert m is not None
        r.on_delta(m.group("state"), line)
    elif kind is LineKind.FROM:
        r.on_from(line)
    elif kind is LineKind.SOURCE:
        m = SOURCE_RE.match(line)
        assert m is not None
        num = m.group("line")
        r.source = SourceLine(m.group("text"), m.group("file"), int(num) if num else None)
    elif kind is LineKind.FRAME_HEADER:
        r.header = "to caller" if line.startswith("to caller at ") else line[:-1]
    elif kind is LineKind.FRAME_STATE:
        r.on_frame_state(line, lineno)
    elif kind is LineKind.LIVE_REGS:
        r.on_live_regs(line)
    elif kind is LineKind.OTHER and not in_tail:
        r.unparsed.append(line)
    # SAFE, FUNC, LIVE_HEADER, DEBUG, HINT, STATS, EMPTY and the error block: nothing to do
