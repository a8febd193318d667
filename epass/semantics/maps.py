"""Maps as the interpreter sees them: keys to value regions.

Array and per-CPU array maps have every value from the start (zeroed);
hash maps start with the entries given. A value lives in its own
`MAP_VALUE` region, so `bpf_map_lookup_elem` returns a pointer into it and
later loads and stores through that pointer change the map. Per-CPU maps
are modelled for one CPU (the one BPF_PROG_TEST_RUN runs on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from epass.semantics.memory import MAP_BASE, MAP_STRIDE, Memory, Region, RegionKind
from epass.uapi import MapType

ARRAY_TYPES = {MapType.ARRAY, MapType.PERCPU_ARRAY}
HASH_TYPES = {MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH}

# errno values helpers return (negated)
ENOENT = 2
E2BIG = 7
EINVAL = 22
EEXIST = 17

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
BPF_F_LOCK = 4


@dataclass
class MapState:
    """One map's contents during a run; `handle` is what an lddw of the map yields."""

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    handle: int
    entries: dict[bytes, Region] = field(default_factory=dict)

    def snapshot(self) -> dict[bytes, bytes]:
        return {k: bytes(r.data) for k, r in sorted(self.entries.items())}


class MapSet:
    """Every map of a run; allocates value regions in the shared address space."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.maps: list[MapState] = []
        self._next_value = 0

    def _value_region(self, m: MapState, key: bytes, data: bytes | None = None) -> Region:
        base = MAP_BASE + self._next_value * MAP_STRIDE
        self._next_value += 1
        value = bytearray(data if data is not None else bytes(m.value_size))
        return self.memory.add(Region(RegionKind.MAP_VALUE, f"{m.name}[{key.hex()}]", base,
                                      value))

    def add(self, name: str, type: int, key_size: int, value_size: int, max_entries: int,
            contents: dict[bytes, bytes] | None = None) -> MapState:
        # the handle is an address no region uses: helpers recognise maps by it
        handle = MAP_BASE - (len(self.maps) + 1) * 0x100
        m = MapState(name, type, key_size, value_size, max_entries, handle)
        self.maps.append(m)
        if type in ARRAY_TYPES:
            for i in range(max_entries):
                key = i.to_bytes(4, "little")
                m.entries[key] = self._value_region(m, key, (contents or {}).get(key))
        else:
            for key, value in (contents or {}).items():
                m.entries[key] = self._value_region(m, key, value)
        return m

    def by_handle(self, handle: int) -> MapState | None:
        for m in self.maps:
            if m.handle == handle:
                return m
        return None

    def lookup(self, m: MapState, key: bytes) -> Region | None:
        return m.entries.get(key)

    def update(self, m: MapState, key: bytes, value: bytes, flags: int) -> int:
        """bpf_map_update_elem's return value (0 or a negative errno)."""
        present = key in m.entries
        if m.type in ARRAY_TYPES:
            # array_map_update_elem's order: unknown flags, index, NOEXIST, then BPF_F_LOCK
            # (-EINVAL: no spin lock in the value); so flags 5 gives -EEXIST, not -EINVAL
            if flags & ~BPF_F_LOCK > BPF_EXIST:
                return -EINVAL
            if not present:
                return -E2BIG
            if flags & BPF_NOEXIST:
                return -EEXIST
            if flags & BPF_F_LOCK:
                return -EINVAL
        elif flags > BPF_EXIST:
            return -EINVAL  # hash maps refuse BPF_F_LOCK (no spin lock) before anything else
        elif flags == BPF_NOEXIST and present:
            return -EEXIST
        elif flags == BPF_EXIST and not present:
            return -ENOENT
        elif not present and len(m.entries) >= m.max_entries:
            return -E2BIG
        if present:
            m.entries[key].data[:] = value
        else:
            m.entries[key] = self._value_region(m, key, value)
        return 0

    def delete(self, m: MapState, key: bytes) -> int:
        if m.type in ARRAY_TYPES:
            return -EINVAL
        if m.entries.pop(key, None) is None:
            return -ENOENT
        # the value's memory stays readable, as under RCU: a pointer taken before
        # the delete may still be used by this run
        return 0
