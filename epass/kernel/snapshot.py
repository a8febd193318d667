"""Reading a map's whole contents back from the kernel, to compare with the interpreter."""

from __future__ import annotations

import functools

from epass.kernel import syscall
from epass.uapi import MapType

PERCPU_TYPES = {MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH}
ARRAY_TYPES = {MapType.ARRAY, MapType.PERCPU_ARRAY}
ITERABLE_TYPES = ARRAY_TYPES | {MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
                                MapType.LRU_PERCPU_HASH}


@functools.cache
def possible_cpus() -> int:
    """How many CPUs per-CPU map values have slots for (/sys/devices/system/cpu/possible)."""
    with open("/sys/devices/system/cpu/possible") as f:
        count = 0
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            count += int(hi or lo) - int(lo) + 1
        return count


def map_contents(fd: int, map_type: int, key_size: int, value_size: int,
                 cpu: int = 0) -> dict[bytes, bytes] | None:
    """Key -> value for every entry, sorted by key; per-CPU maps give `cpu`'s value.

    None for map types whose entries cannot be listed (ringbuf, prog array, ...).
    """
    if map_type not in ITERABLE_TYPES:
        return None
    percpu = map_type in PERCPU_TYPES
    slot = (value_size + 7) // 8 * 8
    size = slot * possible_cpus() if percpu else value_size
    out: dict[bytes, bytes] = {}
    key: bytes | None = None
    while True:
        key = syscall.map_get_next_key(fd, key, key_size)
        if key is None:
            break
        value = syscall.map_lookup_elem(fd, key, size)
        if value is not None:
            out[key] = value[cpu * slot : cpu * slot + value_size] if percpu else value
    return dict(sorted(out.items()))
