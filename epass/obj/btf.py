"""Read and write BTF (the BPF Type Format, include/uapi/linux/btf.h).

`Btf.parse` decodes the header, the type section and the string section into
frozen dataclasses; `Btf.encode` writes them back byte for byte, so fixed-up
BTF can be handed to the kernel with BPF_BTF_LOAD.  Every type carries both
its raw `name_off` (what gets encoded) and the resolved `name` (for reading).

Type ids start at 1; id 0 is `void`.  With `base=` the data is split BTF
(module BTF): its ids continue after the base's and its string offsets
continue after the base's string section.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum

from epass.errors import BTFError, KernelError

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
HEADER_SIZE = 24
MAX_RESOLVE_DEPTH = 32  # the same limit libbpf and the kernel use for chains

_SECTION = ".BTF"

_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_PAIR = struct.Struct("<II")
_TRIPLE = struct.Struct("<III")


class BtfKind(IntEnum):
    """`BTF_KIND_*` from include/uapi/linux/btf.h."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


class IntEncoding(IntEnum):
    """`BTF_INT_*` bits of an INT's encoding nibble."""

    SIGNED = 1
    CHAR = 2
    BOOL = 4


class VarLinkage(IntEnum):
    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


class FuncLinkage(IntEnum):
    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


# Kinds whose `type` field points at another type and that add nothing else.
REF_KINDS = frozenset(
    {
        BtfKind.PTR,
        BtfKind.TYPEDEF,
        BtfKind.VOLATILE,
        BtfKind.CONST,
        BtfKind.RESTRICT,
        BtfKind.TYPE_TAG,
    }
)
# What `Btf.resolve` looks through: names and qualifiers, never pointers.
MODIFIER_KINDS = REF_KINDS - {BtfKind.PTR}


# ---------------------------------------------------------------- data model


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfType:
    """Fields every `struct btf_type` has.  `kind_flag` is bit 31 of info;
    its meaning depends on the kind (bitfield members, signed enum, union fwd,
    attribute-style tag)."""

    kind: BtfKind
    name_off: int = 0
    name: str = ""
    kind_flag: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfVoid(BtfType):
    kind: BtfKind = BtfKind.UNKN


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfInt(BtfType):
    kind: BtfKind = BtfKind.INT
    size: int
    encoding: int  # IntEncoding bits
    bit_offset: int  # legacy in-type bitfield offset; 0 in anything modern
    bits: int

    @property
    def is_signed(self) -> bool:
        return bool(self.encoding & IntEncoding.SIGNED)


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfRef(BtfType):
    """PTR, TYPEDEF, VOLATILE, CONST, RESTRICT and TYPE_TAG: a name/qualifier
    or pointer wrapped around `type_id`."""

    type_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfArray(BtfType):
    kind: BtfKind = BtfKind.ARRAY
    type_id: int  # element type
    index_type_id: int
    nelems: int


@dataclass(frozen=True, slots=True)
class Member:
    """A struct/union member.  Offsets are in bits; `bitfield_size` is 0 for
    ordinary members and for all members of a struct without kind_flag."""

    name_off: int
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfStruct(BtfType):
    """STRUCT or UNION.  With kind_flag set, member offsets pack the
    bitfield size in their top 8 bits."""

    kind: BtfKind = BtfKind.STRUCT
    size: int
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class EnumValue:
    """An enumerator; `value` is signed when the enum's kind_flag is set."""

    name_off: int
    name: str
    value: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfEnum(BtfType):
    """ENUM (32-bit values) or ENUM64.  kind_flag set means signed."""

    kind: BtfKind = BtfKind.ENUM
    size: int
    values: tuple[EnumValue, ...]

    @property
    def is_signed(self) -> bool:
        return self.kind_flag


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfFwd(BtfType):
    """Forward declaration; kind_flag set means `union`, clear `struct`."""

    kind: BtfKind = BtfKind.FWD

    @property
    def is_union(self) -> bool:
        return self.kind_flag


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfFunc(BtfType):
    kind: BtfKind = BtfKind.FUNC
    type_id: int  # the FUNC_PROTO
    linkage: int  # FuncLinkage; stored in the vlen bits


@dataclass(frozen=True, slots=True)
class Param:
    """A FUNC_PROTO parameter; a trailing (0, 0) one means `...`."""

    name_off: int
    name: str
    type_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfFuncProto(BtfType):
    kind: BtfKind = BtfKind.FUNC_PROTO
    type_id: int  # return type, 0 for void
    params: tuple[Param, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfVar(BtfType):
    kind: BtfKind = BtfKind.VAR
    type_id: int
    linkage: int  # VarLinkage


@dataclass(frozen=True, slots=True)
class VarSecinfo:
    """One variable in a DATASEC: its VAR type, offset and size in bytes."""

    type_id: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfDatasec(BtfType):
    kind: BtfKind = BtfKind.DATASEC
    size: int
    vars: tuple[VarSecinfo, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfFloat(BtfType):
    kind: BtfKind = BtfKind.FLOAT
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BtfDeclTag(BtfType):
    """A tag on `type_id`, or on its member/param `component_idx` (-1: the
    type itself)."""

    kind: BtfKind = BtfKind.DECL_TAG
    type_id: int
    component_idx: int


VOID = BtfVoid()


# ------------------------------------------------------------------ strings


class _Strings:
    """The string section plus a lazily built offset -> str map."""

    __slots__ = ("data", "start", "_cache")

    def __init__(self, data: bytes, start: int) -> None:
        self.data = data
        self.start = start  # offset of data[0] (non-zero for split BTF)
        self._cache: dict[int, str] | None = None

    def _split(self) -> dict[int, str]:
        # One split is far cheaper than a find() per name on vmlinux.
        cache: dict[int, str] = {}
        off = self.start
        # The piece after the last NUL is not a (terminated) string.
        for chunk in self.data.split(b"\0")[:-1]:
            cache[off] = chunk.decode("utf-8", "backslashreplace")
            off += len(chunk) + 1
        return cache

    def table(self) -> dict[int, str]:
        """offset -> string for every string start (built on first use)."""
        if self._cache is None:
            self._cache = self._split()
        return self._cache

    def get(self, off: int) -> str | None:
        """The string at `off`, or None if `off` is not inside this section."""
        s = self.table().get(off)
        if s is not None:
            return s
        rel = off - self.start
        if rel < 0 or rel >= len(self.data):
            return None
        # An offset into the middle of a string (suffix sharing).
        end = self.data.find(b"\0", rel)
        if end < 0:
            return None
        s = self.data[rel:end].decode("utf-8", "backslashreplace")
        self.table()[off] = s
        return s


# ---------------------------------------------------------------------- Btf


class Btf:
    """A parsed (or built) BTF blob: types `start_id..` plus a string section."""

    def __init__(
        self,
        types: Sequence[BtfType],
        strings: bytes,
        *,
        base: Btf | None = None,
        flags: int = 0,
    ) -> None:
        """`types` are this blob's own types (ids `start_id`, `start_id`+1, ...);
        `strings` is its raw string section.  Nothing is validated here: use
        `parse(encode())` to check hand-built BTF."""
        self.base = base
        self.flags = flags
        self.start_id = base.type_count if base is not None else 1
        self._types: tuple[BtfType, ...] = tuple(types)
        str_start = base._str_end if base is not None else 0
        self._strings = _Strings(bytes(strings), str_start)
        self._index: dict[tuple[BtfKind, str], list[int]] | None = None

    # -- construction -------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes, *, base: Btf | None = None) -> Btf:
        """Decode raw BTF (the `.BTF` ELF section or /sys/kernel/btf/*)."""
        return _Parser(bytes(data), base).run()

    def replace_types(self, updates: Mapping[int, BtfType]) -> Btf:
        """A copy with the types at the given ids replaced (own ids only)."""
        types = list(self._types)
        for type_id, t in updates.items():
            if not self.start_id <= type_id < self.type_count:
                raise BTFError(f"BTF type {type_id} is not in this BTF", section=_SECTION)
            types[type_id - self.start_id] = t
        new = Btf(types, self._strings.data, base=self.base, flags=self.flags)
        new._strings = self._strings  # same strings: keep the already split table
        return new

    # -- lookups --------------------------------------------------------------

    @property
    def type_count(self) -> int:
        """One past the last valid type id (void counts, like libbpf)."""
        return self.start_id + len(self._types)

    @property
    def strings(self) -> bytes:
        """This blob's raw string section."""
        return self._strings.data

    @property
    def _str_end(self) -> int:
        return self._strings.start + len(self._strings.data)

    def type(self, type_id: int) -> BtfType:
        """The type with this id; 0 gives `VOID`."""
        if type_id >= self.start_id:
            idx = type_id - self.start_id
            if idx < len(self._types):
                return self._types[idx]
        elif type_id == 0:
            return VOID
        elif self.base is not None and type_id > 0:
            return self.base.type(type_id)
        raise BTFError(
            f"BTF type id {type_id} is out of range (last is {self.type_count - 1})",
            section=_SECTION,
        )

    def types(self) -> Iterator[tuple[int, BtfType]]:
        """(id, type) for every type including the base's, void excluded."""
        if self.base is not None:
            yield from self.base.types()
        yield from enumerate(self._types, self.start_id)

    def own_types(self) -> Iterator[tuple[int, BtfType]]:
        """(id, type) for this blob's own types only (what `encode` writes)."""
        return enumerate(self._types, self.start_id)

    def string_at(self, offset: int) -> str:
        """The NUL-terminated string at `offset` in the (combined) string section."""
        if self.base is not None and offset < self._strings.start:
            return self.base.string_at(offset)
        s = self._strings.get(offset)
        if s is None:
            raise BTFError(
                f"string offset {offset:#x} is past the string section", section=_SECTION
            )
        return s

    def name_of(self, type_id: int) -> str:
        return self.type(type_id).name

    def resolve(self, type_id: int) -> int:
        """Skip TYPEDEF, CONST, VOLATILE, RESTRICT and TYPE_TAG."""
        orig = type_id
        for _ in range(MAX_RESOLVE_DEPTH):
            t = self.type(type_id)
            if not isinstance(t, BtfRef) or t.kind == BtfKind.PTR:
                return type_id
            type_id = t.type_id
        raise BTFError(
            f"BTF type {orig}: modifier chain longer than {MAX_RESOLVE_DEPTH}",
            section=_SECTION,
        )

    def size_of(self, type_id: int) -> int:
        """Size in bytes, looking through modifiers, typedefs, arrays and VARs."""
        orig = type_id
        mult = 1
        for _ in range(MAX_RESOLVE_DEPTH):
            t = self.type(type_id)
            if isinstance(t, BtfInt | BtfStruct | BtfEnum | BtfDatasec | BtfFloat):
                return mult * t.size
            if t.kind == BtfKind.PTR:
                return mult * 8  # BPF and its targets are 64-bit
            if isinstance(t, BtfArray):
                mult *= t.nelems
                type_id = t.type_id
            elif isinstance(t, BtfRef | BtfVar):  # qualifiers, typedefs, type tags
                type_id = t.type_id
            else:
                raise BTFError(
                    f"BTF type {orig}: {t.kind.name} has no size", section=_SECTION
                )
        raise BTFError(
            f"BTF type {orig}: type chain longer than {MAX_RESOLVE_DEPTH}", section=_SECTION
        )

    def find(self, kind: BtfKind, name: str) -> list[int]:
        """Ids of all types of `kind` named `name` (base types included)."""
        if self._index is None:
            index: dict[tuple[BtfKind, str], list[int]] = {}
            for type_id, t in self.types():
                if t.name:
                    index.setdefault((t.kind, t.name), []).append(type_id)
            self._index = index
        return list(self._index.get((kind, name), ()))

    # -- writing --------------------------------------------------------------

    def encode(self) -> bytes:
        """Raw BTF: 24-byte header, types, strings (this blob's own part)."""
        out = bytearray()
        for type_id, t in self.own_types():
            _encode_type(out, type_id, t)
        type_len = len(out)
        strings = self._strings.data
        header = _HEADER.pack(
            BTF_MAGIC, BTF_VERSION, self.flags, HEADER_SIZE, 0, type_len, type_len, len(strings)
        )
        return header + bytes(out) + strings


# ------------------------------------------------------------------- parsing

# Bytes after the 12-byte btf_type: fixed part and per-vlen item.
_FIXED = {
    BtfKind.INT: 4,
    BtfKind.ARRAY: 12,
    BtfKind.VAR: 4,
    BtfKind.DECL_TAG: 4,
}
_PER_ITEM = {
    BtfKind.STRUCT: 12,
    BtfKind.UNION: 12,
    BtfKind.ENUM: 8,
    BtfKind.FUNC_PROTO: 8,
    BtfKind.DATASEC: 12,
    BtfKind.ENUM64: 12,
}
_KINDS = {int(k): k for k in BtfKind if k != BtfKind.UNKN}
_INFO_RESERVED = 0x60FF0000  # bits 16-23 and 29-30 must be zero


class _Parser:
    """One parse of one blob; keeps the bounds checks out of `Btf`."""

    def __init__(self, data: bytes, base: Btf | None) -> None:
        self.data = data
        self.base = base
        self.start_id = base.type_count if base is not None else 1

    def fail(self, message: str) -> BTFError:
        return BTFError(message, section=_SECTION)

    def run(self) -> Btf:
        data = self.data
        if len(data) < HEADER_SIZE:
            raise self.fail(
                f"BTF header is truncated: {len(data)} bytes, need {HEADER_SIZE}"
            )
        magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = (
            _HEADER.unpack_from(data)
        )
        if magic == 0x9FEB:
            raise self.fail("big-endian BTF is not supported")
        if magic != BTF_MAGIC:
            raise self.fail(f"bad BTF magic {magic:#06x} (expected {BTF_MAGIC:#06x})")
        if version != BTF_VERSION:
            raise self.fail(f"unsupported BTF version {version} (expected {BTF_VERSION})")
        if hdr_len < HEADER_SIZE or hdr_len > len(data):
            raise self.fail(f"BTF header length {hdr_len} is invalid ({len(data)} bytes of data)")
        if any(data[HEADER_SIZE:hdr_len]):
            raise self.fail("BTF header has unknown non-zero fields")
        body = len(data) - hdr_len
        if type_off + type_len > body:
            raise self.fail(
                f"BTF type section (offset {type_off}, length {type_len}) is past the end "
                f"of the data ({body} bytes after the header)"
            )
        if str_off + str_len > body:
            raise self.fail(
                f"BTF string section (offset {str_off}, length {str_len}) is past the end "
                f"of the data ({body} bytes after the header)"
            )
        if type_off % 4:
            raise self.fail(f"BTF type section offset {type_off} is not 4-byte aligned")
        if type_off < str_off < type_off + type_len or str_off < type_off < str_off + str_len:
            raise self.fail("BTF type and string sections overlap")
        types_raw = data[hdr_len + type_off : hdr_len + type_off + type_len]
        strs = data[hdr_len + str_off : hdr_len + str_off + str_len]
        self.check_strings(strs)
        str_start = self.base._str_end if self.base is not None else 0
        self.strings = _Strings(strs, str_start)
        self.names = self.strings.table()
        self.str_end = str_start + len(strs)
        offsets = self.walk(types_raw)
        self.last_id = self.start_id + len(offsets) - 1
        types = [self.decode(types_raw, off, self.start_id + i) for i, off in enumerate(offsets)]
        btf = Btf(types, strs, base=self.base, flags=flags)
        btf._strings = self.strings  # reuse the already split strings
        return btf

    def check_strings(self, strs: bytes) -> None:
        if self.base is None:
            if not strs or strs[0] != 0:
                raise self.fail("BTF string section does not start with an empty string")
        if strs and strs[-1] != 0:
            raise self.fail("BTF string section is not NUL-terminated")

    def walk(self, raw: bytes) -> list[int]:
        """Offsets of each type record; checks kinds and lengths."""
        offsets: list[int] = []
        off = 0
        end = len(raw)
        unpack = _TYPE.unpack_from
        while off < end:
            type_id = self.start_id + len(offsets)
            if end - off < 12:
                raise self.fail(
                    f"BTF type {type_id} is truncated at type section offset {off:#x}"
                )
            info = unpack(raw, off)[1]
            kind = _KINDS.get((info >> 24) & 0x1F)
            if kind is None:
                raise self.fail(f"BTF type {type_id}: unknown kind {(info >> 24) & 0x1F}")
            if info & _INFO_RESERVED:
                raise self.fail(f"BTF type {type_id}: reserved info bits set ({info:#010x})")
            size = 12 + _FIXED.get(kind, 0) + _PER_ITEM.get(kind, 0) * (info & 0xFFFF)
            if off + size > end:
                raise self.fail(
                    f"BTF type {type_id} ({kind.name}) is truncated: needs {size} bytes at "
                    f"type section offset {off:#x}, {end - off} left"
                )
            offsets.append(off)
            off += size
        return offsets

    def name(self, type_id: int, name_off: int) -> str:
        s = self.names.get(name_off)  # fast path: the start of a string
        if s is not None:
            return s
        if name_off < self.strings.start:
            if self.base is None:  # unreachable: start is 0 without a base
                raise self.fail(f"BTF type {type_id}: bad name offset {name_off:#x}")
            try:
                return self.base.string_at(name_off)
            except BTFError:
                pass
        elif name_off < self.str_end:
            s = self.strings.get(name_off)
            if s is not None:
                return s
        raise self.fail(
            f"BTF type {type_id}: name offset {name_off:#x} is past the string section"
        )

    def ref(self, type_id: int, target: int) -> int:
        if target > self.last_id:
            raise self.fail(
                f"BTF type {type_id}: refers to type {target}, past the last type "
                f"{self.last_id}"
            )
        return target

    def decode(self, raw: bytes, off: int, type_id: int) -> BtfType:
        name_off, info, size_or_type = _TYPE.unpack_from(raw, off)
        kind = _KINDS[(info >> 24) & 0x1F]
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self.name(type_id, name_off) if name_off else ""
        p = off + 12
        if kind in REF_KINDS:
            return BtfRef(
                kind=kind,
                name_off=name_off,
                name=name,
                kind_flag=kflag,
                type_id=self.ref(type_id, size_or_type),
            )
        if kind == BtfKind.FUNC:
            return BtfFunc(
                name_off=name_off,
                name=name,
                kind_flag=kflag,
                type_id=self.ref(type_id, size_or_type),
                linkage=vlen,
            )
        if kind == BtfKind.FUNC_PROTO:
            params = []
            for _ in range(vlen):
                p_name_off, p_type = _PAIR.unpack_from(raw, p)
                p_name = self.name(type_id, p_name_off) if p_name_off else ""
                params.append(Param(p_name_off, p_name, self.ref(type_id, p_type)))
                p += 8
            return BtfFuncProto(
                name_off=name_off,
                name=name,
                kind_flag=kflag,
                type_id=self.ref(type_id, size_or_type),
                params=tuple(params),
            )
        if kind in (BtfKind.STRUCT, BtfKind.UNION):
            members = []
            for _ in range(vlen):
                m_name_off, m_type, m_off = _TRIPLE.unpack_from(raw, p)
                m_name = self.name(type_id, m_name_off) if m_name_off else ""
                if kflag:
                    members.append(
                        Member(
                            m_name_off,
                            m_name,
                            self.ref(type_id, m_type),
                            m_off & 0xFFFFFF,
                            m_off >> 24,
                        )
                    )
                else:
                    members.append(Member(m_name_off, m_name, self.ref(type_id, m_type), m_off))
                p += 12
            return BtfStruct(
                kind=kind,
                name_off=name_off,
                name=name,
                kind_flag=kflag,
                size=size_or_type,
                members=tuple(members),
            )
        if kind == BtfKind.INT:
            bits = _U32.unpack_from(raw, p)[0]
            return BtfInt(
                name_off=name_off,
                name=name,
                kind_flag=kflag,
                size=size_or_type,
                encoding=(bits >> 24) & 0x0F,
                bit_offset=(bits >> 16) & 0xFF,
                bits=bits & 0xFF,
            )
        if kind == BtfKind.ENUM or kind == BtfKind.ENUM64:
            values = []
            for _ in range(vlen):
                if kind == BtfKind.ENUM:
                    v_name_off, value = _PAIR.unpack_from(raw, p)
                    if kflag and value & 0x80000000:
                        value -= 1 << 32
                    p += 8
                else:
                    v_name_off, lo, hi = _TRIPLE.unpack_from(raw, p)
                    value = hi << 32 | lo
                    if kflag and value & (1 << 63):
                        value -= 1 << 64
                    p += 12
                v_name = self.name(type_id, v_name_off) if v_name_off else ""
                values.append(EnumValue(v_name_off, v_name, value))
            return BtfEnum(
                kind=kind,
                name_off=name_off,
                name=name,
                kind_flag=kflag,
                size=size_or_type,
                values=tuple(values),
            )
        if kind == BtfKind.ARRAY:
            elem, index, nelems = _TRIPLE.unpack_from(raw, p)
            return BtfArray(
                name_off=name_off,
                name=name,
                kind_flag=kflag,
                type_id=self.ref(type_id, elem),
                index_type_id=self.ref(type_id, index),
                nelems=nelems,
            )
        if kind == BtfKind.VAR:
            return BtfVar(
                name_off=name_off,
                name=name,
                kind_flag=kflag,
                type_id=self.ref(type_id, size_or_type),
                linkage=_U32.unpack_from(raw, p)[0],
            )
        if kind == BtfKind.DATASEC:
            secinfos = []
            for _ in range(vlen):
                v_type, v_off, v_size = _TRIPLE.unpack_from(raw, p)
                secinfos.append(VarSecinfo(self.ref(type_id, v_type), v_off, v_size))
                p += 12
            return BtfDatasec(
                name_off=name_off,
                name=name,
                kind_flag=kflag,
                size=size_or_type,
                vars=tuple(secinfos),
            )
        if kind == BtfKind.FLOAT:
            return BtfFloat(name_off=name_off, name=name, kind_flag=kflag, size=size_or_type)
        if kind == BtfKind.FWD:
            return BtfFwd(name_off=name_off, name=name, kind_flag=kflag)
        if kind == BtfKind.DECL_TAG:
            return BtfDeclTag(
                name_off=name_off,
                name=name,
                kind_flag=kflag,
                type_id=self.ref(type_id, size_or_type),
                component_idx=_I32.unpack_from(raw, p)[0],
            )
        raise self.fail(f"BTF type {type_id}: unknown kind {int(kind)}")  # pragma: no cover


# ------------------------------------------------------------------- writing


def _u32(type_id: int, what: str, value: int) -> int:
    if not 0 <= value <= 0xFFFFFFFF:
        raise BTFError(f"BTF type {type_id}: {what} {value} does not fit in 32 bits",
                       section=_SECTION)
    return value


def _encode_type(out: bytearray, type_id: int, t: BtfType) -> None:
    """Append one `struct btf_type` and its trailing data."""
    kind = t.kind
    extra = b""
    if isinstance(t, BtfRef | BtfFunc | BtfVar | BtfDeclTag | BtfFuncProto):
        size_or_type = t.type_id
    elif isinstance(t, BtfInt | BtfStruct | BtfEnum | BtfDatasec | BtfFloat):
        size_or_type = t.size
    else:
        size_or_type = 0
    if isinstance(t, BtfFunc):
        vlen = t.linkage
    elif isinstance(t, BtfStruct):
        vlen = len(t.members)
        parts = []
        for m in t.members:
            if t.kind_flag:
                if m.bit_offset > 0xFFFFFF or m.bitfield_size > 0xFF:
                    raise BTFError(
                        f"BTF type {type_id}: member {m.name!r} offset/bitfield too large",
                        section=_SECTION,
                    )
                off = m.bitfield_size << 24 | m.bit_offset
            else:
                if m.bitfield_size:
                    raise BTFError(
                        f"BTF type {type_id}: member {m.name!r} is a bitfield but "
                        "kind_flag is clear",
                        section=_SECTION,
                    )
                off = m.bit_offset
            parts.append(_TRIPLE.pack(m.name_off, m.type_id, _u32(type_id, "offset", off)))
        extra = b"".join(parts)
    elif isinstance(t, BtfEnum):
        vlen = len(t.values)
        if kind == BtfKind.ENUM:
            extra = b"".join(_PAIR.pack(v.name_off, v.value & 0xFFFFFFFF) for v in t.values)
        else:
            extra = b"".join(
                _TRIPLE.pack(v.name_off, v.value & 0xFFFFFFFF, (v.value >> 32) & 0xFFFFFFFF)
                for v in t.values
            )
    elif isinstance(t, BtfFuncProto):
        vlen = len(t.params)
        extra = b"".join(_PAIR.pack(p.name_off, p.type_id) for p in t.params)
    elif isinstance(t, BtfDatasec):
        vlen = len(t.vars)
        extra = b"".join(
            _TRIPLE.pack(v.type_id, _u32(type_id, "var offset", v.offset),
                         _u32(type_id, "var size", v.size))
            for v in t.vars
        )
    else:
        vlen = 0
    if isinstance(t, BtfInt):
        extra = _U32.pack((t.encoding & 0x0F) << 24 | (t.bit_offset & 0xFF) << 16 | t.bits & 0xFF)
    elif isinstance(t, BtfArray):
        extra = _TRIPLE.pack(t.type_id, t.index_type_id, t.nelems)
    elif isinstance(t, BtfVar):
        extra = _U32.pack(t.linkage)
    elif isinstance(t, BtfDeclTag):
        extra = _I32.pack(t.component_idx)
    if vlen > 0xFFFF:
        raise BTFError(f"BTF type {type_id}: {vlen} items do not fit in vlen", section=_SECTION)
    info = int(t.kind_flag) << 31 | int(kind) << 24 | vlen
    out += _TYPE.pack(t.name_off, info, _u32(type_id, "size/type", size_or_type))
    out += extra


# ----------------------------------------------------------- datasec fix-up

KCONFIG_SECTION = ".kconfig"
KSYMS_SECTION = ".ksyms"


class _Editor:
    """Collects replaced and appended types and strings, then builds a new Btf."""

    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        self.types = list(btf._types)
        self.strings = bytearray(btf.strings)

    def get(self, type_id: int) -> BtfType:
        if type_id >= self.btf.start_id:
            idx = type_id - self.btf.start_id
            if idx < len(self.types):
                return self.types[idx]
        return self.btf.type(type_id)

    def set(self, type_id: int, t: BtfType) -> None:
        if type_id < self.btf.start_id:
            raise BTFError(f"BTF type {type_id} belongs to the base BTF", section=_SECTION)
        self.types[type_id - self.btf.start_id] = t

    def add(self, t: BtfType) -> int:
        self.types.append(t)
        return self.btf.start_id + len(self.types) - 1

    def string(self, s: str) -> int:
        """Offset of `s`, appended to the string section if not there yet."""
        raw = s.encode()
        at = self.strings.find(b"\0" + raw + b"\0")
        if at < 0:
            at = len(self.strings) - 1
            self.strings += raw + b"\0"
        return self.btf._strings.start + at + 1

    def build(self) -> Btf:
        if self.types == list(self.btf._types) and self.strings == self.btf.strings:
            return self.btf
        new = Btf(self.types, bytes(self.strings), base=self.btf.base, flags=self.btf.flags)
        if self.strings == self.btf.strings:
            new._strings = self.btf._strings  # keep the already split strings
        return new


def fixup_datasecs(
    btf: Btf,
    section_sizes: Mapping[str, int],
    symbol_offsets: Mapping[tuple[str, str], int],
    *,
    hidden_symbols: Container[tuple[str, str]] = frozenset(),
    warnings: list[str] | None = None,
) -> Btf:
    """Make clang's BTF loadable, doing what libbpf does before BPF_BTF_LOAD.

    * Data sections (libbpf's `btf_fixup_datasec`): a DATASEC of size 0 gets
      its ELF section's size and each global VAR its symbol's value as
      offset; VARs whose symbol is hidden become static; entries are sorted
      by offset.  Static VARs keep the offsets clang gave them.
    * Externs (libbpf's `bpf_object__collect_externs`): `.kconfig` VARs
      become allocated globals laid out like libbpf's .kconfig map (by
      alignment descending, size ascending, name; the loader reads the
      offsets back from the returned DATASEC); `.ksyms` entries become 4-byte
      dummies, extern FUNCs become global and get names for unnamed params.

    `section_sizes` maps ELF section name -> size; `symbol_offsets` maps
    (section name, symbol name) -> st_value; `hidden_symbols` holds the
    (section, symbol) pairs with STV_HIDDEN/STV_INTERNAL visibility.
    Anything left that the kernel will refuse (a DATASEC whose section is
    unknown keeps size 0, a VAR without symbol keeps its offset, extern
    linkage outside .kconfig/.ksyms) is described in `warnings`.
    """
    notes: list[str] = warnings if warnings is not None else []
    ed = _Editor(btf)
    for type_id, t in btf.own_types():
        if not isinstance(t, BtfDatasec):
            continue
        for v in t.vars:
            var = btf.type(v.type_id)
            if not isinstance(var, BtfVar | BtfFunc):
                raise BTFError(
                    f"DATASEC {t.name!r} (type {type_id}) lists type {v.type_id}, a "
                    f"{var.kind.name}, not a VAR",
                    section=_SECTION,
                )
        if t.name == KCONFIG_SECTION:
            _fixup_kconfig(ed, type_id, t)
        elif t.name == KSYMS_SECTION:
            _fixup_ksyms(ed, type_id, t)
        else:
            _fixup_data(ed, type_id, t, section_sizes, symbol_offsets, hidden_symbols, notes)
    fixed = ed.build()
    for type_id, t in fixed.own_types():
        if (isinstance(t, BtfVar) and t.linkage == VarLinkage.GLOBAL_EXTERN) or (
            isinstance(t, BtfFunc) and t.linkage == FuncLinkage.EXTERN
        ):
            notes.append(
                f"{t.kind.name} {t.name!r} (type {type_id}) has extern linkage, which the "
                "kernel rejects"
            )
    return fixed


def _fixup_data(
    ed: _Editor,
    type_id: int,
    t: BtfDatasec,
    section_sizes: Mapping[str, int],
    symbol_offsets: Mapping[tuple[str, str], int],
    hidden_symbols: Container[tuple[str, str]],
    notes: list[str],
) -> None:
    sec = t.name
    size = t.size
    fix_offsets = size == 0  # a non-zero size means someone already laid it out
    if fix_offsets:
        size = section_sizes.get(sec, 0)
        if size == 0:
            notes.append(
                f"DATASEC {sec!r} (type {type_id}): no ELF section of that name with a "
                "size; left with size 0"
            )
            return
    secinfos = []
    for v in t.vars:
        var = ed.get(v.type_id)
        if not isinstance(var, BtfVar) or var.linkage != VarLinkage.GLOBAL_ALLOCATED:
            secinfos.append(v)  # clang already placed statics; externs are not ours
            continue
        key = (sec, var.name)
        if key not in symbol_offsets:
            notes.append(
                f"DATASEC {sec!r}: no ELF symbol for VAR {var.name!r}; offset left at "
                f"{v.offset}"
            )
        elif fix_offsets:
            v = replace(v, offset=symbol_offsets[key])
        if key in hidden_symbols:
            ed.set(v.type_id, replace(var, linkage=VarLinkage.STATIC))
        secinfos.append(v)
    secinfos.sort(key=lambda v: v.offset)  # the kernel wants offset order; sort is stable
    ed.set(type_id, replace(t, size=size, vars=tuple(secinfos)))


def _fixup_kconfig(ed: _Editor, type_id: int, t: BtfDatasec) -> None:
    """Lay out .kconfig like libbpf's .kconfig map and make the VARs allocated."""
    btf = ed.btf
    entries = []
    for v in t.vars:
        var = ed.get(v.type_id)
        if not isinstance(var, BtfVar):
            raise BTFError(
                f"DATASEC {t.name!r}: entry {v.type_id} is a {var.kind.name}, not a VAR",
                section=_SECTION,
            )
        align = _align_of(btf, var.type_id)
        entries.append((-align, btf.size_of(var.type_id), var.name, v, var, align))
    entries.sort(key=lambda e: e[:3])
    off = 0
    secinfos = []
    for _, size, _, v, var, align in entries:
        off = (off + align - 1) // align * align
        secinfos.append(replace(v, offset=off, size=size))
        ed.set(v.type_id, replace(var, linkage=VarLinkage.GLOBAL_ALLOCATED))
        off += size
    secinfos.sort(key=lambda v: v.offset)
    ed.set(type_id, replace(t, size=off, vars=tuple(secinfos)))


def _fixup_ksyms(ed: _Editor, type_id: int, t: BtfDatasec) -> None:
    """libbpf's trick: every .ksyms entry becomes a 4-byte int VAR slot."""
    int_id = _find_int32(ed)
    dummy_id = 0
    secinfos = []
    for i, v in enumerate(t.vars):
        entry = ed.get(v.type_id)
        if isinstance(entry, BtfFunc):
            if not dummy_id:
                name_off = ed.string("dummy_ksym")
                dummy_id = ed.add(BtfVar(name_off=name_off, name="dummy_ksym", type_id=int_id,
                                         linkage=VarLinkage.GLOBAL_ALLOCATED))
            dummy = ed.get(dummy_id)
            proto = ed.get(entry.type_id)
            if isinstance(proto, BtfFuncProto):
                # The kernel refuses a FUNC whose params have types but no names.
                params = tuple(
                    replace(p, name_off=dummy.name_off, name=dummy.name)
                    if p.type_id and not p.name_off else p
                    for p in proto.params
                )
                ed.set(entry.type_id, replace(proto, params=params))
            ed.set(v.type_id, replace(entry, linkage=FuncLinkage.GLOBAL))
            v = replace(v, type_id=dummy_id)
        elif isinstance(entry, BtfVar):
            ed.set(v.type_id, replace(entry, type_id=int_id,
                                      linkage=VarLinkage.GLOBAL_ALLOCATED))
        secinfos.append(replace(v, offset=4 * i, size=4))
    ed.set(type_id, replace(t, size=4 * len(secinfos), vars=tuple(secinfos)))


def _find_int32(ed: _Editor) -> int:
    """A 32-bit INT to type dummy VARs with, added if the BTF has none."""
    for type_id, t in ed.btf.types():
        if isinstance(t, BtfInt) and t.bits == 32:
            return type_id
    return ed.add(BtfInt(name_off=ed.string("int"), name="int", size=4,
                         encoding=IntEncoding.SIGNED, bit_offset=0, bits=32))


def _align_of(btf: Btf, type_id: int) -> int:
    """libbpf's btf__align_of for the types a .kconfig extern can have."""
    for _ in range(MAX_RESOLVE_DEPTH):
        t = btf.type(type_id)
        if isinstance(t, BtfInt | BtfEnum | BtfFloat):
            return max(1, min(8, t.size))
        if t.kind == BtfKind.PTR:
            return 8
        if isinstance(t, BtfArray | BtfRef):  # PTR was handled above
            type_id = t.type_id
            continue
        raise BTFError(
            f"BTF type {type_id}: a {t.kind.name} cannot be a .kconfig extern", section=_SECTION
        )
    raise BTFError(f"BTF type {type_id}: type chain too long", section=_SECTION)


# ------------------------------------------------------------------- vmlinux


@functools.cache
def load_vmlinux_btf(path: str = "/sys/kernel/btf/vmlinux") -> Btf:
    """The running kernel's BTF, parsed once per path."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise KernelError(f"cannot read kernel BTF: {e.strerror}", file=path) from None
    try:
        return Btf.parse(data)
    except BTFError as e:
        raise e.at(file=path) from None
