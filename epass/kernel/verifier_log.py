"""Read the verdict, the error and the statistics out of a BPF verifier log.

The verifier writes one log per BPF_PROG_LOAD.  Whatever the log level, it ends
with a statistics block ("verification time", "stack depth" at BPF_LOG_STATS,
then "processed N insns ...").  A rejected program has, right before that
block, the error message: one headline and sometimes hint lines ("R6 max value
is outside of the allowed memory range", "cur state: ...").  Everything before
is the trace: instruction lines "N: (op) text", register-state lines, source
comments "; text @ file:line" and debug lines.

`classify_line` sorts single lines into those kinds; `epass.kernel.vimap` uses it
too.  `parse_log` finds the error block and classifies its message with the
declarative `ERROR_PATTERNS` table.  See docs/verifier-log.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "ERROR_PATTERNS",
    "ErrorClass",
    "ErrorPattern",
    "LineKind",
    "SourceLine",
    "VerifierError",
    "VerifierLog",
    "classify_error",
    "classify_line",
    "parse_log",
]


class ErrorClass(StrEnum):
    """Why the verifier rejected a program.  Values are stable: they go into JSON."""

    INVALID_MEM_ACCESS = "invalid-mem-access"
    INVALID_CTX_ACCESS = "invalid-ctx-access"
    INVALID_PACKET_ACCESS = "invalid-packet-access"
    INVALID_MAP_VALUE_ACCESS = "invalid-map-value-access"
    UNBOUNDED_ACCESS = "unbounded-access"
    UNBOUNDED_MIN_VALUE = "unbounded-min-value"
    OUT_OF_RANGE = "out-of-range"
    POINTER_ARITHMETIC = "pointer-arithmetic"
    MODIFIED_CTX = "modified-ctx"
    SAME_INSN_DIFFERENT_POINTERS = "same-insn-different-pointers"
    READ_NOT_OK = "read-not-ok"
    MISALIGNED_STACK = "misaligned-stack"
    MISALIGNED_ACCESS = "misaligned-access"
    UNINIT_STACK = "uninit-stack"
    INVALID_STACK_ACCESS = "invalid-stack-access"
    STACK_TOO_LARGE = "stack-too-large"
    CALL_STACK_TOO_DEEP = "call-stack-too-deep"
    PROGRAM_TOO_LARGE = "program-too-large"
    INFINITE_LOOP = "infinite-loop"
    BACK_EDGE = "back-edge"
    UNREACHABLE = "unreachable"
    INVALID_HELPER = "invalid-helper"
    GPL_ONLY_HELPER = "gpl-only-helper"
    INVALID_ARGUMENT = "invalid-argument"
    UNRELEASED_REFERENCE = "unreleased-reference"
    INVALID_RETURN = "invalid-return"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ErrorPattern:
    """One row of the error table: a regex over one message line.

    `insn_group` names the regex group that holds the rejected instruction when
    the kernel prints it in the message; `whole_program` marks errors found
    after the walk (no instruction is to blame).
    """

    error_class: ErrorClass
    regex: re.Pattern[str]
    insn_group: str | None = None
    whole_program: bool = False


def _row(
    cls: ErrorClass, pattern: str, *, insn_group: str | None = None, whole_program: bool = False
) -> ErrorPattern:
    return ErrorPattern(cls, re.compile(pattern), insn_group, whole_program)


_E = ErrorClass
_REG = r"R(?P<reg>\d+)"

# Most specific first: the first row that matches any line of the error block wins.
# OUT_OF_RANGE "max value" sits above INVALID_MAP_VALUE_ACCESS so that a variable
# offset running past the value is told apart from a constant one (both print
# "invalid access to map value" first, then a min/max hint line).
ERROR_PATTERNS: tuple[ErrorPattern, ...] = (
    _row(
        _E.MODIFIED_CTX,
        rf"dereference of modified (?P<type>\w+) ptr {_REG} off=(?P<off>-?\d+)",
    ),
    _row(_E.SAME_INSN_DIFFERENT_POINTERS, r"same insn cannot be used with different pointers"),
    _row(_E.READ_NOT_OK, rf"^{_REG} !read_ok"),
    _row(_E.INFINITE_LOOP, r"infinite loop detected at insn (?P<insn>\d+)", insn_group="insn"),
    _row(
        _E.BACK_EDGE,
        r"back-edge from insn (?P<insn>\d+) to (?P<target>\d+)",
        insn_group="insn",
    ),
    _row(_E.UNREACHABLE, r"unreachable insn (?P<insn>\d+)", insn_group="insn"),
    _row(
        _E.PROGRAM_TOO_LARGE,
        r"BPF program is too large\. Processed (?P<processed>\d+) insn"
        r"|The sequence of (?P<jumps>\d+) jumps is too complex",
    ),
    _row(
        _E.STACK_TOO_LARGE,
        r"combined stack size of (?P<calls>\d+) calls is (?P<size>\d+)\. Too large",
        whole_program=True,
    ),
    _row(_E.GPL_ONLY_HELPER,
         r"cannot call GPL-restricted function from non-GPL compatible program"),
    _row(_E.CALL_STACK_TOO_DEEP, r"the call stack of (?P<frames>\d+) frames is too deep"),
    _row(
        _E.UNRELEASED_REFERENCE,
        r"Unreleased reference id=(?P<id>\d+) alloc_insn=(?P<alloc_insn>\d+)",
    ),
    _row(_E.INVALID_RETURN, r"At program exit the register R(?P<reg>\d+) has (?P<value>.*)"),
    _row(
        _E.INVALID_HELPER,
        r"program of this type cannot use helper (?P<helper>\S+)"
        r"|(?:unknown|invalid) func (?P<func>\S+)",
    ),
    _row(_E.INVALID_ARGUMENT, rf"{_REG} type=(?P<type>\S+) expected=(?P<expected>.*)"),
    _row(
        _E.POINTER_ARITHMETIC,
        rf"{_REG} pointer arithmetic (?:with (?P<op>\S+) operator |on (?P<type>\w+) )?prohibited",
    ),
    _row(
        _E.POINTER_ARITHMETIC,
        rf"{_REG} (?:bitwise operator (?P<op>\S+) on pointer|32-bit pointer arithmetic"
        r"|pointer -= pointer|subtraction from stack pointer) prohibited",
    ),
    _row(_E.POINTER_ARITHMETIC, rf"{_REG} tried to \w+ from different maps, paths or scalars"),
    _row(
        _E.UNBOUNDED_MIN_VALUE,
        r"math between (?P<type>\w+) pointer and register with unbounded min value",
    ),
    _row(_E.UNBOUNDED_MIN_VALUE, rf"{_REG} min value is negative"),
    _row(
        _E.UNBOUNDED_MIN_VALUE,
        r"value (?P<value>-\d+) makes (?P<type>\w+) pointer be out of bounds",
    ),
    _row(_E.OUT_OF_RANGE, r"value (?P<value>\d+) makes (?P<type>\w+) pointer be out of bounds"),
    _row(_E.UNBOUNDED_ACCESS, rf"{_REG} unbounded memory access"),
    _row(_E.OUT_OF_RANGE, rf"{_REG} max value is outside of the allowed memory range"),
    _row(
        _E.INVALID_PACKET_ACCESS,
        r"invalid access to packet, off=(?P<off>-?\d+) size=(?P<size>\d+)"
        rf"|{_REG} offset is outside of the packet",
    ),
    _row(
        _E.INVALID_MAP_VALUE_ACCESS,
        r"invalid access to map value, value_size=(?P<value_size>\d+) "
        r"off=(?P<off>-?\d+) size=(?P<size>\d+)",
    ),
    _row(_E.OUT_OF_RANGE, rf"{_REG} min value is outside of the allowed memory range"),
    _row(
        _E.INVALID_CTX_ACCESS,
        r"invalid bpf_context access off=(?P<off>-?\d+) size=(?P<size>\d+)",
    ),
    _row(_E.INVALID_MEM_ACCESS, rf"{_REG} invalid mem access '(?P<type>[^']*)'"),
    _row(_E.MISALIGNED_STACK, r"misaligned stack access off (?P<off>.+?) size (?P<size>\d+)"),
    _row(_E.MISALIGNED_ACCESS, r"misaligned (?:\w+ )?access off (?P<off>.+?) size (?P<size>\d+)"),
    _row(_E.UNINIT_STACK, r"invalid (?:indirect |variable-offset )?read from stack"),
    _row(
        _E.INVALID_STACK_ACCESS,
        r"invalid (?:variable-offset )?(?:write to|indirect access to) stack",
    ),
)


def classify_error(line: str) -> tuple[ErrorClass, dict[str, str]]:
    """The class of one message line and the named parts its row captured."""
    for row in ERROR_PATTERNS:
        m = row.regex.search(line)
        if m:
            return row.error_class, {k: v for k, v in m.groupdict().items() if v is not None}
    return ErrorClass.UNKNOWN, {}


# --- line kinds -------------------------------------------------------------------


class LineKind(StrEnum):
    """What one log line is; trace kinds come before the error block."""

    INSN = "insn"  # "N: (op) text" [ "  ; delta" | " M: state" ]
    STATE = "state"  # "N: R1=... R10=fp0" (registers the last insn touched, or all)
    FROM = "from"  # "from A to B: state" / "from A to B: safe"
    SAFE = "safe"  # "N: safe" (state pruned)
    SOURCE = "source"  # "; source text @ file.c:12"
    FRAME_HEADER = "frame-header"  # "caller:", "callee:", "returning from callee:", ...
    FRAME_STATE = "frame-state"  # " frame1: R1=..." (the state under a frame header)
    FUNC = "func"  # "func#1 @9"
    LIVE_HEADER = "live-header"  # "Live regs before insn:"
    LIVE_REGS = "live-regs"  # "      3: .12....... (bf) r3 = r1"
    DEBUG = "debug"  # mark_precise, live-stack, SCC and other trace chatter
    HINT = "hint"  # "cur state: ..." / "old state: ..." printed after an error
    STATS = "stats"  # "processed ...", "verification time ...", "stack depth ..."
    EMPTY = "empty"
    OTHER = "other"  # anything else: messages, or lines this parser does not know


INSN_RE = re.compile(r"^(?P<idx>\d+): \((?P<code>[0-9a-f]{2})\) (?P<rest>.*)$")
STATE_RE = re.compile(r"^(?P<idx>\d+):(?P<state>(?: frame\d+:)?(?: \S.*)?)$")
FROM_RE = re.compile(
    r"^from (?P<src>\d+) to (?P<dst>\d+)(?P<spec> \(speculative execution\))?:(?P<state>.*)$"
)
SAFE_RE = re.compile(r"^(?P<idx>\d+): safe$")
SOURCE_RE = re.compile(r"^; (?P<text>.*?)(?: @ (?P<file>\S+):(?P<line>\d+))?$")
FRAME_HEADER_RE = re.compile(
    r"^(?:caller|callee|returning from callee|to caller at (?P<idx>\d+)):$"
)
FUNC_RE = re.compile(r"^func#(?P<func>\d+) @(?P<insn>\d+)$")
LIVE_REGS_RE = re.compile(
    r"^\s+(?:(?P<scc>\d+)\s+)?(?P<idx>\d+): (?P<live>[.0-9]{10}) \((?P<code>[0-9a-f]{2})\)"
)
PROCESSED_RE = re.compile(
    r"^processed (?P<insns>\d+) insns \(limit (?P<limit>\d+)\) "
    r"max_states_per_insn (?P<max>\d+) total_states (?P<total>\d+) "
    r"peak_states (?P<peak>\d+)(?: mark_read (?P<mark_read>\d+))?"
)
TIME_RE = re.compile(r"^verification time (?P<us>\d+) usec$")
DEPTH_RE = re.compile(r"^stack depth (?P<depths>\d+(?:\+\d+)*)$")

_DEBUG_RES = tuple(
    re.compile(p)
    for p in (
        r"^mark_precise: ",
        r"^\(\d+(?:,\d+)*\) ",  # live stack analysis: "(1,14,17) frame 1 insn 24 +live -8"
        r"^SCC \w+ \(\d+\)$",  # strongly connected components: enter, exit, backedge
        r"^frame \d+: propagating ",
        r"^propagating ",
        r"^last_idx \d+ first_idx \d+",
        r"^regs=\S* stack=",
        r"^parent (?:didn't have|already had) regs=",
        r"^Validating \S+ func#\d+",
        r"^Func#\d+ \('.*'\) is global and assumed valid\.",
        r"^Func#\d+ \('.*'\) is safe for any args that match its prototype$",
    )
)
_HINT_RE = re.compile(r"^(?:cur|old) state: ")
_STATE_TOKEN_RE = re.compile(
    r"^(?:frame\d+:|R\d+(?:_[rwD]+)?=|fp-?\d+(?:_[rwD]+)?=|refs=|cb$|async_cb$)"
)


def classify_line(line: str) -> LineKind:
    """Sort one log line (without its newline) into a `LineKind`."""
    if not line.strip():
        return LineKind.EMPTY
    if INSN_RE.match(line):
        return LineKind.INSN
    if SAFE_RE.match(line):
        return LineKind.SAFE
    m = STATE_RE.match(line)
    if m and _looks_like_state(m.group("state")):
        return LineKind.STATE
    if line.startswith("from ") and FROM_RE.match(line):
        return LineKind.FROM
    if line.startswith("; ") and SOURCE_RE.match(line):
        return LineKind.SOURCE
    if FRAME_HEADER_RE.match(line):
        return LineKind.FRAME_HEADER
    if line.startswith(" ") and _looks_like_state(line):
        return LineKind.FRAME_STATE
    if LIVE_REGS_RE.match(line):
        return LineKind.LIVE_REGS
    if FUNC_RE.match(line):
        return LineKind.FUNC
    if line == "Live regs before insn:":
        return LineKind.LIVE_HEADER
    if PROCESSED_RE.match(line) or TIME_RE.match(line) or DEPTH_RE.match(line):
        return LineKind.STATS
    if _HINT_RE.match(line):
        return LineKind.HINT
    if any(r.match(line) for r in _DEBUG_RES):
        return LineKind.DEBUG
    return LineKind.OTHER


def _looks_like_state(text: str) -> bool:
    """True for " R1=ctx() R10=fp0"-like text: the first token starts like a state item."""
    tokens = text.split()
    if not tokens:
        return True  # "N:" with nothing scratched
    return _STATE_TOKEN_RE.match(tokens[0]) is not None


# Lines of the walk itself.  The error block is made of the OTHER and HINT lines
# after the last of these (debug, func# and live-register lines there are skipped).
WALK_KINDS = frozenset(
    {
        LineKind.INSN,
        LineKind.STATE,
        LineKind.FROM,
        LineKind.SAFE,
        LineKind.SOURCE,
        LineKind.FRAME_HEADER,
        LineKind.FRAME_STATE,
    }
)
MESSAGE_KINDS = frozenset({LineKind.OTHER, LineKind.HINT})


def error_block_start(kinds: list[LineKind]) -> int:
    """Index of the first line after the last walk line (0 if there is none)."""
    for i in range(len(kinds) - 1, -1, -1):
        if kinds[i] in WALK_KINDS:
            return i + 1
    return 0


# --- the parsed log -----------------------------------------------------------------


@dataclass(frozen=True)
class SourceLine:
    """A "; text @ file:line" comment the kernel printed from BTF line info."""

    text: str
    file: str | None
    line: int | None


@dataclass(frozen=True)
class VerifierError:
    """The instruction the verifier rejected and why.

    `insn` is None for errors that no single instruction caused (combined stack
    size) or when the log does not show it.  `message` is the line that was
    classified; `lines` is the whole error block (headline and hints).
    `fields` holds the named parts of the message (reg, type, off, size, ...).
    """

    insn: int | None
    message: str
    error_class: ErrorClass
    source: SourceLine | None = None
    lines: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifierLog:
    """What one verifier log says.  `accepted` is None when the text does not tell."""

    accepted: bool | None
    error: VerifierError | None
    processed_insns: int | None
    insn_limit: int | None
    max_states_per_insn: int | None
    total_states: int | None
    peak_states: int | None
    mark_read: int | None
    verification_time_us: int | None
    stack_depth: tuple[int, ...]  # per subprogram, from "stack depth 8+0"
    text: str


def parse_log(text: str) -> VerifierLog:
    """Parse a verifier log of any level (1, 2, and 4 = stats).  Never raises."""
    lines = text.splitlines()
    kinds = [classify_line(line) for line in lines]

    stats: dict[str, int] = {}
    time_us: int | None = None
    depth: tuple[int, ...] = ()
    processed_at: int | None = None
    for i, (line, kind) in enumerate(zip(lines, kinds, strict=True)):
        if kind is not LineKind.STATS:
            continue
        if m := PROCESSED_RE.match(line):
            stats = {k: int(v) for k, v in m.groupdict().items() if v is not None}
            processed_at = i
        elif m := TIME_RE.match(line):
            time_us = int(m.group("us"))
        elif m := DEPTH_RE.match(line):
            depth = tuple(int(d) for d in m.group("depths").split("+"))

    start = error_block_start(kinds)
    end = processed_at if processed_at is not None and processed_at >= start else len(lines)
    block = [lines[i] for i in range(start, end) if kinds[i] in MESSAGE_KINDS]

    error = _error_from_block(block, lines[:start], kinds[:start])
    known = error is not None and error.error_class is not ErrorClass.UNKNOWN
    if error is not None and (processed_at is not None or known):
        accepted: bool | None = False
    elif error is None and processed_at is not None:
        accepted = True
    else:
        accepted, error = None, None

    return VerifierLog(
        accepted=accepted,
        error=error,
        processed_insns=stats.get("insns"),
        insn_limit=stats.get("limit"),
        max_states_per_insn=stats.get("max"),
        total_states=stats.get("total"),
        peak_states=stats.get("peak"),
        mark_read=stats.get("mark_read"),
        verification_time_us=time_us,
        stack_depth=depth,
        text=text,
    )


def _error_from_block(
    block: list[str], before: list[str], kinds: list[LineKind]
) -> VerifierError | None:
    if not block:
        return None
    chosen: tuple[str, ErrorPattern, dict[str, str]] | None = None
    for row in ERROR_PATTERNS:
        for line in block:
            if m := row.regex.search(line):
                groups = {k: v for k, v in m.groupdict().items() if v is not None}
                chosen = (line, row, groups)
                break
        if chosen:
            break

    last_insn, source = _last_insn_and_source(before, kinds)
    if chosen is None:
        return VerifierError(last_insn, block[0], ErrorClass.UNKNOWN, source, tuple(block))
    line, row, groups = chosen
    if row.whole_program:
        insn, source = None, None
    elif row.insn_group and row.insn_group in groups:
        insn = int(groups[row.insn_group])
    else:
        insn = last_insn
    return VerifierError(insn, line, row.error_class, source, tuple(block), groups)


def _last_insn_and_source(
    lines: list[str], kinds: list[LineKind]
) -> tuple[int | None, SourceLine | None]:
    """The last instruction line's index and the source comment printed before it."""
    for i in range(len(lines) - 1, -1, -1):
        if kinds[i] is not LineKind.INSN:
            continue
        m = INSN_RE.match(lines[i])
        assert m is not None
        insn = int(m.group("idx"))
        for j in range(i - 1, -1, -1):
            if kinds[j] is LineKind.SOURCE:
                s = SOURCE_RE.match(lines[j])
                assert s is not None
                line_no = s.group("line")
                return insn, SourceLine(
                    s.group("text"), s.group("file"), int(line_no) if line_no else None
                )
        return insn, None
    return None, None
