"""CO-RE: compute what a relocated instruction must hold on the target kernel.

Follows libbpf's relo_core.c semantics:

* the access string "0:1:2" starts with an index into the root type (as if
  the root were an array; almost always 0), then member indices of
  structs/unions and indices of arrays;
* candidate target types share the local type's name with any "___flavor"
  suffix stripped and have a compatible kind;
* named members are matched by name (looking through anonymous
  structs/unions) and must have compatible types;
* all matching candidates must agree, otherwise the relocation is ambiguous.

`resolve_core_relo` only computes values; checking that the instruction holds
`local_value` and patching in `target_value` is the loader's job.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from epass.errors import BTFError
from epass.obj.btf import (
    Btf,
    BtfArray,
    BtfEnum,
    BtfFuncProto,
    BtfInt,
    BtfKind,
    BtfRef,
    BtfStruct,
    BtfType,
    IntEncoding,
)
from epass.obj.btf_ext import CoreRelo, CoreReloKind

MAX_SPEC_LEN = 64  # libbpf's BPF_CORE_SPEC_MAX_LEN
MAX_COMPAT_DEPTH = 32

FIELD_KINDS = frozenset(
    {
        CoreReloKind.FIELD_BYTE_OFFSET,
        CoreReloKind.FIELD_BYTE_SIZE,
        CoreReloKind.FIELD_EXISTS,
        CoreReloKind.FIELD_SIGNED,
        CoreReloKind.FIELD_LSHIFT_U64,
        CoreReloKind.FIELD_RSHIFT_U64,
    }
)
TYPE_KINDS = frozenset(
    {
        CoreReloKind.TYPE_ID_LOCAL,
        CoreReloKind.TYPE_ID_TARGET,
        CoreReloKind.TYPE_EXISTS,
        CoreReloKind.TYPE_SIZE,
    }
)
ENUMVAL_KINDS = frozenset({CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE})
SUPPORTED_KINDS = FIELD_KINDS | TYPE_KINDS | ENUMVAL_KINDS


@dataclass(frozen=True, slots=True)
class CoreResult:
    """The outcome of one relocation.

    `local_value` is what clang compiled into the instruction, `target_value`
    what it must become.  `target_exists` says whether the field/type/
    enumerator was found in the target.  `validate` is False where libbpf
    does not check the instruction's current value (bitfields, type ids).
    For FIELD_BYTE_OFFSET of a non-bitfield, `local_size`/`target_size` are
    the field's byte sizes (a load/store must be resized if they differ,
    which is only sound when `resize_ok`).  `poison` is set, instead of an
    error, for a missing target when `poison_missing=True` was asked for:
    the loader should then turn the instruction into an invalid call, as
    libbpf does, so the verifier rejects it only if it is reachable.
    """

    local_value: int
    target_value: int
    target_exists: bool
    validate: bool = True
    local_size: int = 0
    target_size: int = 0
    resize_ok: bool = True
    poison: bool = False


# ------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class _Accessor:
    """A high-level step: array index (name None) or named member `idx` of
    struct `type_id`; for enumerators, value `idx` of enum `type_id`."""

    type_id: int
    idx: int
    name: str | None


@dataclass(slots=True)
class _Spec:
    btf: Btf
    root_type_id: int
    accessors: list[_Accessor] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    bit_offset: int = 0


def essential_name(name: str) -> str:
    """`name` without a "___flavor" suffix: "foo___v2" -> "foo".

    Like libbpf, only the last "X___Y" with X and Y not underscores counts,
    so "__u32" or "a____b" keep their name.
    """
    for i in range(len(name) - 5, -1, -1):
        if (
            name[i] != "_"
            and name[i + 1 : i + 4] == "___"
            and name[i + 4] != "_"
        ):
            return name[: i + 1]
    return name


def _kinds_compat(a: BtfType, b: BtfType) -> bool:
    enums = (BtfKind.ENUM, BtfKind.ENUM64)
    return a.kind == b.kind or (a.kind in enums and b.kind in enums)


def _composite(t: BtfType) -> bool:
    return isinstance(t, BtfStruct)


def _is_flex_array(btf: Btf, acc: _Accessor | None, arr: BtfArray) -> bool:
    """A zero-length array that is the last member of its struct."""
    if acc is None or acc.name is None or arr.nelems > 0:
        return False
    parent = btf.type(acc.type_id)
    return isinstance(parent, BtfStruct) and acc.idx == len(parent.members) - 1


def _parse_spec(btf: Btf, relo: CoreRelo, where: str) -> _Spec:
    """The local side: access string -> accessors and a bit offset."""
    text = relo.access_str
    spec = _Spec(btf, relo.type_id)

    def bad(why: str) -> BTFError:
        return BTFError(f"{where}: {why}", section=".BTF.ext", index=relo.insn)

    if not text or text.startswith(":"):
        raise bad(f"invalid access string {text!r}")
    if relo.kind in TYPE_KINDS:
        if text != "0":
            raise bad(f"type relocation with access string {text!r} (expected '0')")
        return spec
    try:
        spec.raw = [int(part) for part in text.split(":")]
    except ValueError:
        raise bad(f"invalid access string {text!r}") from None
    if len(spec.raw) > MAX_SPEC_LEN or any(i < 0 for i in spec.raw):
        raise bad(f"invalid access string {text!r}")

    type_id = btf.resolve(relo.type_id)
    t = btf.type(type_id)
    first = spec.raw[0]
    if relo.kind in ENUMVAL_KINDS:
        if not isinstance(t, BtfEnum) or len(spec.raw) > 1 or first >= len(t.values):
            raise bad(f"access string {text!r} does not name an enumerator of type {type_id}")
        spec.accessors.append(_Accessor(type_id, first, t.values[first].name))
        return spec

    spec.accessors.append(_Accessor(type_id, first, None))
    spec.bit_offset = first * btf.size_of(type_id) * 8
    for idx in spec.raw[1:]:
        type_id = btf.resolve(type_id)
        t = btf.type(type_id)
        if isinstance(t, BtfStruct):
            if idx >= len(t.members):
                raise bad(f"member index {idx} is past the {len(t.members)} members of {t.name!r}")
            m = t.members[idx]
            spec.bit_offset += m.bit_offset
            if m.name:  # anonymous members are not a "turning point"
                spec.accessors.append(_Accessor(type_id, idx, m.name))
            type_id = m.type_id
        elif isinstance(t, BtfArray):
            elem = btf.resolve(t.type_id)
            if not _is_flex_array(btf, spec.accessors[-1], t) and idx >= t.nelems:
                raise bad(f"array index {idx} is past the {t.nelems} elements")
            spec.accessors.append(_Accessor(elem, idx, None))
            spec.bit_offset += idx * btf.size_of(elem) * 8
            type_id = elem
        else:
            raise bad(f"access step {idx} into type {type_id}, a {t.kind.name}")
    return spec


# ----------------------------------------------------------- compatibility


def _fields_compat(local: Btf, local_id: int, target: Btf, targ_id: int) -> bool:
    """libbpf's bpf_core_fields_are_compat: can a field of one type be read
    as the other?"""
    for _ in range(MAX_COMPAT_DEPTH):
        lt = local.type(local.resolve(local_id))
        tt = target.type(target.resolve(targ_id))
        if _composite(lt) and _composite(tt):
            return True
        if not _kinds_compat(lt, tt):
            return False
        if lt.kind in (BtfKind.PTR, BtfKind.FLOAT):
            return True
        if lt.kind in (BtfKind.FWD, BtfKind.ENUM, BtfKind.ENUM64):
            ln, tn = essential_name(lt.name), essential_name(tt.name)
            return not ln or not tn or ln == tn
        if isinstance(lt, BtfInt) and isinstance(tt, BtfInt):
            return lt.bit_offset == 0 and tt.bit_offset == 0
        if isinstance(lt, BtfArray) and isinstance(tt, BtfArray):
            local_id, targ_id = lt.type_id, tt.type_id
            continue
        return False
    raise BTFError("CO-RE: type nesting too deep while comparing fields", section=".BTF")


def _types_compat(
    local: Btf, local_id: int, target: Btf, targ_id: int, level: int = MAX_COMPAT_DEPTH
) -> bool:
    """libbpf's bpf_core_types_are_compat, used by the type-based kinds;
    `level` bounds the recursion into function prototype parameters."""
    if not _kinds_compat(local.type(local_id), target.type(targ_id)):
        return False
    for _ in range(MAX_COMPAT_DEPTH):
        local_id, targ_id = local.resolve(local_id), target.resolve(targ_id)
        lt, tt = local.type(local_id), target.type(targ_id)
        if not _kinds_compat(lt, tt):
            return False
        if lt.kind in (
            BtfKind.UNKN,
            BtfKind.STRUCT,
            BtfKind.UNION,
            BtfKind.ENUM,
            BtfKind.ENUM64,
            BtfKind.FWD,
        ):
            return True
        if isinstance(lt, BtfInt) and isinstance(tt, BtfInt):
            return lt.bit_offset == 0 and tt.bit_offset == 0
        if isinstance(lt, BtfRef) and isinstance(tt, BtfRef):  # PTR after resolve
            local_id, targ_id = lt.type_id, tt.type_id
        elif isinstance(lt, BtfArray) and isinstance(tt, BtfArray):
            local_id, targ_id = lt.type_id, tt.type_id
        elif isinstance(lt, BtfFuncProto) and isinstance(tt, BtfFuncProto):
            if len(lt.params) != len(tt.params) or level <= 0:
                return False
            for lp, tp in zip(lt.params, tt.params, strict=True):
                if not _types_compat(
                    local, local.resolve(lp.type_id), target, target.resolve(tp.type_id),
                    level - 1,
                ):
                    return False
            local_id, targ_id = lt.type_id, tt.type_id
        else:
            return False
    raise BTFError("CO-RE: type nesting too deep while comparing types", section=".BTF")


# -------------------------------------------------------------- candidates

_CANDIDATE_INDEX: weakref.WeakKeyDictionary[Btf, dict[str, list[int]]] = (
    weakref.WeakKeyDictionary()
)


def _candidates(local_type: BtfType, target: Btf) -> list[int]:
    """Target ids with the same essential name and a compatible kind."""
    index = _CANDIDATE_INDEX.get(target)
    if index is None:
        index = {}
        for type_id, t in target.types():
            if t.name:
                index.setdefault(essential_name(t.name), []).append(type_id)
        _CANDIDATE_INDEX[target] = index
    wanted = essential_name(local_type.name)
    return [i for i in index.get(wanted, ()) if _kinds_compat(local_type, target.type(i))]


# ---------------------------------------------------------------- matching


def _match_member(
    local: Btf, local_acc: _Accessor, target: Btf, targ_id: int, spec: _Spec
) -> int | None:
    """Find `local_acc`'s member by name in target struct `targ_id`, looking
    inside anonymous members; extends `spec` and returns the member's type."""
    targ_id = target.resolve(targ_id)
    tt = target.type(targ_id)
    if not isinstance(tt, BtfStruct):
        return None
    parent = local.type(local_acc.type_id)
    assert isinstance(parent, BtfStruct)
    local_member = parent.members[local_acc.idx]
    for i, m in enumerate(tt.members):
        if len(spec.raw) >= MAX_SPEC_LEN:
            raise BTFError("CO-RE: target struct nesting too deep", section=".BTF")
        spec.bit_offset += m.bit_offset
        spec.raw.append(i)
        if not m.name:
            found = _match_member(local, local_acc, target, m.type_id, spec)
            if found is not None:
                return found
        elif m.name == local_member.name:
            if not _fields_compat(local, local_member.type_id, target, m.type_id):
                return None
            spec.accessors.append(_Accessor(targ_id, i, m.name))
            return m.type_id
        spec.bit_offset -= m.bit_offset
        spec.raw.pop()
    return None


def _match_spec(local_spec: _Spec, kind: CoreReloKind, target: Btf, targ_id: int) -> _Spec | None:
    """The target-side spec for candidate `targ_id`, or None if it does not match."""
    local = local_spec.btf
    spec = _Spec(target, targ_id)
    if kind in TYPE_KINDS:
        return spec if _types_compat(local, local_spec.root_type_id, target, targ_id) else None
    if kind in ENUMVAL_KINDS:
        targ_id = target.resolve(targ_id)
        tt = target.type(targ_id)
        if not isinstance(tt, BtfEnum):
            return None
        wanted = essential_name(local_spec.accessors[0].name or "")
        for i, v in enumerate(tt.values):
            if essential_name(v.name) == wanted:
                spec.accessors.append(_Accessor(targ_id, i, v.name))
                spec.raw.append(i)
                return spec
        return None
    for i, local_acc in enumerate(local_spec.accessors):
        targ_id = target.resolve(targ_id)
        tt = target.type(targ_id)
        if local_acc.name is not None:
            next_id = _match_member(local, local_acc, target, targ_id, spec)
            if next_id is None:
                return None
            targ_id = next_id
            continue
        if i > 0:  # for i == 0 the root itself is the "array element"
            if not isinstance(tt, BtfArray):
                return None
            flex = _is_flex_array(target, spec.accessors[-1], tt)
            if not flex and local_acc.idx >= tt.nelems:
                return None
            targ_id = target.resolve(tt.type_id)
        if len(spec.raw) >= MAX_SPEC_LEN:
            raise BTFError("CO-RE: target struct nesting too deep", section=".BTF")
        spec.accessors.append(_Accessor(targ_id, local_acc.idx, None))
        spec.raw.append(local_acc.idx)
        spec.bit_offset += local_acc.idx * target.size_of(targ_id) * 8
    return spec


# ------------------------------------------------------------- calculation


@dataclass(frozen=True, slots=True)
class _Value:
    value: int
    size: int = 0  # field byte size for FIELD_BYTE_OFFSET, else 0
    type_id: int = 0  # the field's (resolved) type, for resize checks
    validate: bool = True


def _field_value(kind: CoreReloKind, spec: _Spec, where: str) -> _Value:
    """libbpf's bpf_core_calc_field_relo for a found field."""
    btf = spec.btf
    acc = spec.accessors[-1]
    if acc.name is None:  # array element (or the root itself)
        size = btf.size_of(acc.type_id)
        if kind == CoreReloKind.FIELD_BYTE_OFFSET:
            return _Value(spec.bit_offset // 8, size, acc.type_id)
        if kind == CoreReloKind.FIELD_BYTE_SIZE:
            return _Value(size)
        raise BTFError(f"{where}: cannot be applied to an array access", section=".BTF.ext")
    parent = btf.type(acc.type_id)
    assert isinstance(parent, BtfStruct)
    member = parent.members[acc.idx]
    field_id = btf.resolve(member.type_id)
    ft = btf.type(field_id)
    bit_off = spec.bit_offset
    bit_sz = member.bitfield_size
    bitfield = bit_sz > 0
    if bitfield:
        if not isinstance(ft, BtfInt | BtfEnum):
            raise BTFError(f"{where}: bitfield of non-integer type", section=".BTF.ext")
        byte_sz = ft.size
        byte_off = bit_off // 8 // byte_sz * byte_sz
        # the smallest power-of-two load that covers the whole bitfield
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise BTFError(f"{where}: bitfield cannot be read with a 64-bit load",
                               section=".BTF.ext")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = btf.size_of(field_id)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    if kind == CoreReloKind.FIELD_BYTE_OFFSET:
        if bitfield:
            return _Value(byte_off, validate=False)
        return _Value(byte_off, byte_sz, field_id)
    if kind == CoreReloKind.FIELD_BYTE_SIZE:
        return _Value(byte_sz, validate=not bitfield)
    if kind == CoreReloKind.FIELD_SIGNED:
        signed = (isinstance(ft, BtfEnum) and ft.kind_flag) or (
            isinstance(ft, BtfInt) and bool(ft.encoding & IntEncoding.SIGNED)
        )
        return _Value(int(signed))
    if kind == CoreReloKind.FIELD_LSHIFT_U64:  # little-endian formula
        return _Value(64 - (bit_off + bit_sz - byte_off * 8), validate=not bitfield)
    if kind == CoreReloKind.FIELD_RSHIFT_U64:
        return _Value(64 - bit_sz)
    raise AssertionError(kind)  # FIELD_EXISTS is handled by the caller


def _value(kind: CoreReloKind, spec: _Spec | None, where: str) -> _Value | None:
    """The relocated value for one side; None means "poison" (missing target)."""
    if kind == CoreReloKind.FIELD_EXISTS or kind == CoreReloKind.ENUMVAL_EXISTS:
        return _Value(int(spec is not None))
    if kind in FIELD_KINDS:
        return None if spec is None else _field_value(kind, spec, where)
    if kind in TYPE_KINDS:
        if spec is None:
            return _Value(0)  # type-based kinds give 0 for a missing type
        if kind == CoreReloKind.TYPE_ID_TARGET:
            return _Value(spec.root_type_id, validate=False)  # ids shift when linking
        if kind == CoreReloKind.TYPE_EXISTS:
            return _Value(1)
        if kind == CoreReloKind.TYPE_SIZE:
            return _Value(spec.btf.size_of(spec.root_type_id))
    if kind == CoreReloKind.ENUMVAL_VALUE:
        if spec is None:
            return None
        acc = spec.accessors[0]
        t = spec.btf.type(acc.type_id)
        assert isinstance(t, BtfEnum)
        value = t.values[acc.idx].value
        if t.kind == BtfKind.ENUM:  # libbpf sign-extends the s32 `val`
            value = value & 0xFFFFFFFF
            value = value - (1 << 32) if value & 0x80000000 else value
        return _Value(value & 0xFFFFFFFFFFFFFFFF)
    raise AssertionError(kind)


def _resize_ok(local: Btf, local_val: _Value, target: Btf, targ_val: _Value) -> bool:
    """libbpf: a load may change size only for pointers and unsigned ints
    (zero extension keeps the value right)."""
    if local_val.size == targ_val.size:
        return True
    lt, tt = local.type(local_val.type_id), target.type(targ_val.type_id)
    if lt.kind == BtfKind.PTR and tt.kind == BtfKind.PTR:
        return True
    return (
        isinstance(lt, BtfInt)
        and isinstance(tt, BtfInt)
        and lt.encoding != IntEncoding.SIGNED
        and tt.encoding != IntEncoding.SIGNED
    )


def _format_spec(spec: _Spec) -> str:
    """C-like view such as `task_struct.pid` or `foo[1].a[2]`."""
    t = spec.btf.type(spec.root_type_id)
    text = t.name or "<anon>"
    if spec.accessors and spec.accessors[0].name is not None:  # enumerator
        return f"{text}::{spec.accessors[0].name}"
    for i, acc in enumerate(spec.accessors):
        if acc.name is not None:
            text += f".{acc.name}"
        elif i > 0 or acc.idx > 0:
            text += f"[{acc.idx}]"
    return text


def resolve_core_relo(
    relo: CoreRelo, local: Btf, target: Btf, *, poison_missing: bool = False
) -> CoreResult:
    """Compute local and target values of `relo` (local BTF = the object's
    .BTF, target = usually `load_vmlinux_btf()`).

    A missing field (other than FIELD_EXISTS) or enumerator (ENUMVAL_VALUE)
    raises BTFError naming the relocation, unless `poison_missing` is set, in
    which case the result has `poison=True`.
    """
    kind = relo.kind
    if kind not in SUPPORTED_KINDS:
        raise BTFError(
            f"CO-RE relocation kind {kind.name} is not supported",
            section=".BTF.ext",
            index=relo.insn,
        )
    local_type = local.type(relo.type_id)
    where = (
        f"CO-RE relocation {kind.name} on [{relo.type_id}] {local_type.kind.name.lower()} "
        f"{local_type.name or '<anon>'} access {relo.access_str!r}"
    )
    local_spec = _parse_spec(local, relo, where)
    where = f"CO-RE relocation {kind.name} of {_format_spec(local_spec)} ({relo.access_str})"
    if kind == CoreReloKind.TYPE_ID_LOCAL:
        return CoreResult(relo.type_id, relo.type_id, True, validate=False)
    if not local_type.name:
        raise BTFError(f"{where}: anonymous local types are not supported",
                       section=".BTF.ext", index=relo.insn)

    local_val = _value(kind, local_spec, where)
    assert local_val is not None  # the local spec always exists
    # Every matching candidate must give the same answer (libbpf: BTF dedup
    # can leave several identical copies of a type; differing ones are fatal).
    found: tuple[_Spec, _Value | None] | None = None
    for cand in _candidates(local_type, target):
        targ_spec = _match_spec(local_spec, kind, target, cand)
        if targ_spec is None:
            continue
        targ_val = _value(kind, targ_spec, where)
        if found is None:
            found = (targ_spec, targ_val)
            continue
        prev_spec, prev_val = found
        if kind in FIELD_KINDS and prev_spec.bit_offset != targ_spec.bit_offset:
            raise BTFError(
                f"{where}: ambiguous target field offset ({prev_spec.bit_offset} bits in "
                f"type {prev_spec.root_type_id} vs {targ_spec.bit_offset} in type {cand})",
                section=".BTF.ext",
                index=relo.insn,
            )
        prev = None if prev_val is None else prev_val.value
        new = None if targ_val is None else targ_val.value
        if prev != new:
            raise BTFError(
                f"{where}: ambiguous target value ({prev} from type {prev_spec.root_type_id} "
                f"vs {new} from type {cand})",
                section=".BTF.ext",
                index=relo.insn,
            )

    exists = found is not None
    targ_val = found[1] if found is not None else _value(kind, None, where)
    if targ_val is None:  # a missing field or enumerator that must exist
        if not poison_missing:
            raise BTFError(f"{where}: not found in the target BTF",
                           section=".BTF.ext", index=relo.insn)
        return CoreResult(local_val.value, 0, exists, validate=False, poison=True)
    return CoreResult(
        local_val.value,
        targ_val.value,
        exists,
        validate=local_val.validate,
        local_size=local_val.size,
        target_size=targ_val.size,
        resize_ok=_resize_ok(local, local_val, target, targ_val),
    )
