"""Read `.BTF.ext`: per-section func_info, line_info and CO-RE relocations.

In the file every record's `insn_off` counts BYTES from the start of its
ELF section.  Here it is exposed as an instruction index named `insn`
(`insn_off // 8`) so the two are never mixed up.  String offsets
(`file_name_off`, `line_off`) are kept raw because the kernel wants them as
offsets into the BTF that gets loaded alongside the program.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from epass.errors import BTFError
from epass.obj.btf import BTF_MAGIC, Btf

_SECTION = ".BTF.ext"
INSN_SIZE = 8

_HEADER = struct.Struct("<HBBIIIII")  # through line_info_len
_CORE_PART = struct.Struct("<II")  # core_relo_off, core_relo_len (optional)
_U32 = struct.Struct("<I")
_PAIR = struct.Struct("<II")
_QUAD = struct.Struct("<IIII")

MIN_HEADER_SIZE = _HEADER.size  # 24
FUNC_INFO_SIZE = 8
LINE_INFO_SIZE = 16
CORE_RELO_SIZE = 16


class CoreReloKind(IntEnum):
    """`enum bpf_core_relo_kind` from include/uapi/linux/bpf.h."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


@dataclass(frozen=True, slots=True)
class FuncInfo:
    """The function starting at instruction `insn` has BTF FUNC `type_id`."""

    insn: int
    type_id: int


@dataclass(frozen=True, slots=True)
class LineInfo:
    """Source position of the instruction `insn`.

    `line_num` is the line number and `line_col` the column (the kernel packs
    both into one u32 as `line_num << 10 | line_col`; see `packed_line_col`).
    `file_name_off`/`line_off` index the BTF string section; `file_name` and
    `line` are the strings found there.
    """

    insn: int
    file_name_off: int
    line_off: int
    line_num: int
    line_col: int
    file_name: str
    line: str

    @property
    def packed_line_col(self) -> int:
        return (self.line_num << 10) | (self.line_col & 0x3FF)


@dataclass(frozen=True, slots=True)
class CoreRelo:
    """A CO-RE relocation of instruction `insn` against local BTF `type_id`;
    `access_str` is e.g. "0:1:2" (see epass.obj.core)."""

    insn: int
    type_id: int
    access_str: str
    kind: CoreReloKind


@dataclass(frozen=True)
class BtfExt:
    """Parsed `.BTF.ext`, records grouped by ELF section name in file order."""

    func_info: dict[str, list[FuncInfo]]
    line_info: dict[str, list[LineInfo]]
    core_relos: dict[str, list[CoreRelo]]
    func_info_rec_size: int
    line_info_rec_size: int
    core_relo_rec_size: int
    flags: int = 0

    @classmethod
    def parse(cls, data: bytes, btf: Btf) -> BtfExt:
        """Decode `.BTF.ext`; names are resolved through `btf` (its `.BTF`)."""
        return _parse(bytes(data), btf)


def encode_func_info(records: Iterable[FuncInfo]) -> bytes:
    """`struct bpf_func_info` records for BPF_PROG_LOAD (insn_off in instructions)."""
    return b"".join(_PAIR.pack(r.insn, r.type_id) for r in records)


def encode_line_info(records: Iterable[LineInfo]) -> bytes:
    """`struct bpf_line_info` records for BPF_PROG_LOAD (insn_off in instructions)."""
    return b"".join(
        _QUAD.pack(r.insn, r.file_name_off, r.line_off, r.packed_line_col) for r in records
    )


# ------------------------------------------------------------------- parsing

_R = TypeVar("_R")


def _fail(message: str) -> BTFError:
    return BTFError(message, section=_SECTION)


def _parse(data: bytes, btf: Btf) -> BtfExt:
    if len(data) < MIN_HEADER_SIZE:
        raise _fail(f"BTF.ext header is truncated: {len(data)} bytes, need {MIN_HEADER_SIZE}")
    magic, version, flags, hdr_len, fi_off, fi_len, li_off, li_len = _HEADER.unpack_from(data)
    if magic == 0x9FEB:
        raise _fail("big-endian BTF.ext is not supported")
    if magic != BTF_MAGIC:
        raise _fail(f"bad BTF.ext magic {magic:#06x} (expected {BTF_MAGIC:#06x})")
    if version != 1:
        raise _fail(f"unsupported BTF.ext version {version} (expected 1)")
    if hdr_len < MIN_HEADER_SIZE or hdr_len > len(data):
        raise _fail(f"BTF.ext header length {hdr_len} is invalid ({len(data)} bytes of data)")
    cr_off = cr_len = 0
    if hdr_len >= MIN_HEADER_SIZE + _CORE_PART.size:
        cr_off, cr_len = _CORE_PART.unpack_from(data, MIN_HEADER_SIZE)
    body = data[hdr_len:]

    def func_rec(rec: bytes, insn: int) -> FuncInfo:
        return FuncInfo(insn, _U32.unpack_from(rec, 4)[0])

    def line_rec(rec: bytes, insn: int) -> LineInfo:
        file_off, line_off, line_col = struct.unpack_from("<III", rec, 4)
        return LineInfo(
            insn,
            file_off,
            line_off,
            line_col >> 10,
            line_col & 0x3FF,
            _string(btf, file_off, "line_info file name"),
            _string(btf, line_off, "line_info line"),
        )

    def core_rec(rec: bytes, insn: int) -> CoreRelo:
        type_id, access_off, kind = struct.unpack_from("<III", rec, 4)
        try:
            relo_kind = CoreReloKind(kind)
        except ValueError:
            raise _fail(f"CO-RE relocation at insn {insn}: unknown kind {kind}") from None
        return CoreRelo(insn, type_id, _string(btf, access_off, "CO-RE access string"), relo_kind)

    fi, fi_size = _info_block(body, btf, "func_info", fi_off, fi_len, FUNC_INFO_SIZE, func_rec)
    li, li_size = _info_block(body, btf, "line_info", li_off, li_len, LINE_INFO_SIZE, line_rec)
    cr, cr_size = _info_block(body, btf, "core_relo", cr_off, cr_len, CORE_RELO_SIZE, core_rec)
    return BtfExt(fi, li, cr, fi_size, li_size, cr_size, flags)


def _string(btf: Btf, offset: int, what: str) -> str:
    try:
        return btf.string_at(offset)
    except BTFError:
        raise _fail(f"{what} offset {offset:#x} is past the BTF string section") from None


def _info_block(
    body: bytes,
    btf: Btf,
    what: str,
    off: int,
    length: int,
    min_size: int,
    make: Callable[[bytes, int], _R],
) -> tuple[dict[str, list[_R]], int]:
    """One `rec_size` + (sec_name_off, num_info, records...)* block."""
    out: dict[str, list[_R]] = {}
    if length == 0:
        return out, 0
    if off + length > len(body):
        raise _fail(
            f"BTF.ext {what} (offset {off}, length {length}) is past the end of the data "
            f"({len(body)} bytes after the header)"
        )
    block = body[off : off + length]
    if length < 4:
        raise _fail(f"BTF.ext {what} is too short for its record size")
    rec_size = _U32.unpack_from(block)[0]
    if rec_size < min_size or rec_size % 4:
        raise _fail(f"BTF.ext {what} record size {rec_size} is invalid (need >= {min_size})")
    pos = 4
    while pos < length:
        if length - pos < 8:
            raise _fail(f"BTF.ext {what} section header at offset {pos} is truncated")
        name_off, count = _PAIR.unpack_from(block, pos)
        pos += 8
        sec = _string(btf, name_off, f"BTF.ext {what} section name")
        if count == 0:
            raise _fail(f"BTF.ext {what} for section {sec!r} has no records")
        need = count * rec_size
        if length - pos < need:
            raise _fail(
                f"BTF.ext {what} for section {sec!r} is truncated: {count} records of "
                f"{rec_size} bytes need {need}, {length - pos} left"
            )
        records = out.setdefault(sec, [])
        for i in range(count):
            rec = block[pos + i * rec_size : pos + (i + 1) * rec_size]
            insn_off = _U32.unpack_from(rec)[0]
            if insn_off % INSN_SIZE:
                raise _fail(
                    f"BTF.ext {what} for section {sec!r}: insn_off {insn_off} is not a "
                    "multiple of 8"
                )
            records.append(make(rec, insn_off // INSN_SIZE))
        pos += need
    return out, rec_size
