"""Map definitions: BTF-defined `.maps`, legacy `maps`, and global data sections.

A BTF-defined map is a variable of an anonymous struct in the `.maps`
DATASEC whose members encode the attributes in their types:
`int (*type)[BPF_MAP_TYPE_ARRAY]` (a pointer to an array whose length is
the value) for numbers, `int *key` (a pointer to the key type) for types.
"""

from __future__ import annotations

import struct
from dataclasses import replace

from epass.errors import ObjectError
from epass.obj.btf import Btf, BtfArray, BtfDatasec, BtfKind, BtfRef, BtfStruct, BtfVar
from epass.obj.model import DataVar, MapDef, MapOrigin
from epass.uapi import BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, MapType

# members given as `int (*name)[N]`
_NUMERIC = {
    "type",
    "max_entries",
    "map_flags",
    "numa_node",
    "key_size",
    "value_size",
    "pinning",
    "map_extra",
}


def _pointee(btf: Btf, type_id: int) -> int | None:
    t = btf.type(btf.resolve(type_id))
    if isinstance(t, BtfRef) and t.kind == BtfKind.PTR:
        return t.type_id
    return None


def btf_maps(btf: Btf, path: str) -> list[MapDef]:
    """The maps declared in the `.maps` DATASEC."""
    out: list[MapDef] = []
    for _, t in btf.own_types():
        if not isinstance(t, BtfDatasec) or t.name != ".maps":
            continue
        for sec_var in t.vars:
            var = btf.type(sec_var.type_id)
            if not isinstance(var, BtfVar):
                continue
            out.append(_btf_map(btf, var, path))
    return out


def _btf_map(btf: Btf, var: BtfVar, path: str) -> MapDef:
    def fail(message: str) -> ObjectError:
        return ObjectError(f"map {var.name!r}: {message}", file=path, section=".maps")

    struct_t = btf.type(btf.resolve(var.type_id))
    if not isinstance(struct_t, BtfStruct):
        raise fail("its definition is not a struct")
    attrs: dict[str, int] = {}
    key_type = value_type = 0
    for member in struct_t.members:
        target = _pointee(btf, member.type_id)
        if member.name in _NUMERIC:
            arr = btf.type(btf.resolve(target)) if target is not None else None
            if not isinstance(arr, BtfArray):
                raise fail(f"attribute {member.name!r} is not declared with __uint()")
            attrs[member.name] = arr.nelems
        elif member.name in ("key", "value"):
            if target is None:
                raise fail(f"attribute {member.name!r} is not declared with __type()")
            if member.name == "key":
                key_type = target
            else:
                value_type = target
        elif member.name in ("values", "inner_map"):
            raise fail(f"attribute {member.name!r} (map-in-map / prog-array initial values) "
                       "is not supported")
        else:
            raise fail(f"unknown attribute {member.name!r}")
    if "type" not in attrs:
        raise fail("no map type given")
    key_size = attrs.get("key_size", btf.size_of(key_type) if key_type else 0)
    value_size = attrs.get("value_size", btf.size_of(value_type) if value_type else 0)
    if key_type and "key_size" in attrs and btf.size_of(key_type) != key_size:
        raise fail("key_size disagrees with the size of the key type")
    if value_type and "value_size" in attrs and btf.size_of(value_type) != value_size:
        raise fail("value_size disagrees with the size of the value type")
    return MapDef(
        name=var.name,
        type=attrs["type"],
        key_size=key_size,
        value_size=value_size,
        max_entries=attrs.get("max_entries", 0),
        flags=attrs.get("map_flags", 0),
        origin=MapOrigin.BTF,
        section=".maps",
        btf_key_type_id=key_type,
        btf_value_type_id=value_type,
        pinning=attrs.get("pinning", 0),
        map_extra=attrs.get("map_extra", 0),
        numa_node=attrs.get("numa_node", 0),
    )


_LEGACY_DEF = struct.Struct("<IIIII")  # type, key_size, value_size, max_entries, map_flags


def legacy_maps(data: bytes, symbols: list[tuple[str, int]], path: str) -> list[MapDef]:
    """`struct bpf_map_def` records in the legacy `maps` section, one per symbol."""
    if not symbols:
        return []
    rec_size = len(data) // len(symbols)
    if rec_size < _LEGACY_DEF.size or len(data) % len(symbols):
        raise ObjectError(
            f"legacy map definitions of {len(data)} bytes do not split into "
            f"{len(symbols)} records", file=path, section="maps"
        )
    out = []
    for name, offset in sorted(symbols, key=lambda s: s[1]):
        if offset % rec_size or offset + rec_size > len(data):
            raise ObjectError(f"map {name!r} at offset {offset} is not on a record boundary",
                              file=path, section="maps")
        rec = data[offset : offset + rec_size]
        if any(rec[_LEGACY_DEF.size :]):
            raise ObjectError(f"map {name!r} uses bpf_map_def fields this loader does not know",
                              file=path, section="maps")
        mtype, key_size, value_size, max_entries, flags = _LEGACY_DEF.unpack_from(rec)
        out.append(MapDef(name, mtype, key_size, value_size, max_entries, flags,
                          origin=MapOrigin.LEGACY, section="maps"))
    return out


def is_data_section(name: str) -> bool:
    """Global data sections that libbpf backs with a one-element array map."""
    return any(name == base or name.startswith(base + ".") for base in (".data", ".rodata", ".bss"))


def data_map(name: str, size: int, contents: bytes | None, btf: Btf | None) -> MapDef:
    """The array map backing a global data section; its value is the section."""
    readonly = name.startswith(".rodata")
    datasec = 0
    if btf is not None:
        ids = [i for i, t in btf.own_types() if isinstance(t, BtfDatasec) and t.name == name]
        datasec = ids[0] if ids else 0
    return MapDef(
        name=name,
        type=MapType.ARRAY,
        key_size=4,
        value_size=size,
        max_entries=1,
        flags=BPF_F_MMAPABLE | (BPF_F_RDONLY_PROG if readonly else 0),
        origin=MapOrigin.DATA,
        section=name,
        btf_value_type_id=datasec,
        initial=contents,
        readonly=readonly,
    )


def with_vars(m: MapDef, btf: Btf | None) -> MapDef:
    """A global-data map with its DATASEC's variables; `btf` must be fixed up (offsets
    filled in, as libbpf does), else every global variable is at offset 0."""
    if m.origin != MapOrigin.DATA or btf is None or not m.btf_value_type_id:
        return m
    sec = btf.type(m.btf_value_type_id)
    if not isinstance(sec, BtfDatasec):
        return m
    return replace(m, vars=tuple(DataVar(btf.name_of(v.type_id), v.offset, v.size)
                                 for v in sorted(sec.vars, key=lambda v: v.offset)))
