"""The object loader's kernel objects: maps, global data, BTF, names, flags."""

from __future__ import annotations

import errno

import pytest

from epass.kernel import syscall
from epass.kernel.loader import open_object
from epass.obj.reader import read_object
from epass.uapi import BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, MapType

import progs

pytestmark = progs.skip_without_clang


def test_global_data_maps(built_progs, bpf_permitted):
    obj = read_object(str(built_progs["global_data", "v3"]))
    with open_object(obj) as loaded:
        assert loaded.btf_fd is not None and loaded.warnings == []
        for name in (".rodata", ".data", ".bss"):
            info = syscall.map_get_info(loaded.map_fds[name])
            m = obj.map(name)
            assert (info.type, info.key_size, info.value_size, info.max_entries) == (
                MapType.ARRAY, 4, m.value_size, 1)
            # libbpf's naming: object name prefix, then the section
            assert info.name == "global_data"[: 15 - len(name)] + name
            expected_flags = BPF_F_MMAPABLE | (BPF_F_RDONLY_PROG if name == ".rodata" else 0)
            assert info.map_flags == expected_flags
            value = syscall.map_lookup_elem(loaded.map_fds[name], b"\0\0\0\0", m.value_size)
            assert value == (m.initial if m.initial is not None else bytes(m.value_size))
        # .rodata is frozen: user space cannot change it any more
        with pytest.raises(syscall.BpfError) as err:
            syscall.map_update_elem(loaded.map_fds[".rodata"], b"\0\0\0\0",
                                    bytes(obj.map(".rodata").value_size))
        assert err.value.errno == errno.EPERM
        syscall.map_update_elem(loaded.map_fds[".data"], b"\0\0\0\0",
                                bytes(obj.map(".data").value_size))


def test_btf_defined_maps_carry_their_btf_and_flags(built_progs, bpf_permitted):
    obj = read_object(str(built_progs["maps_btf", "v3"]))
    with open_object(obj) as loaded:
        for m in obj.maps:
            info = syscall.map_get_info(loaded.map_fds[m.name])
            assert (info.type, info.key_size, info.value_size, info.max_entries,
                    info.map_flags) == (m.type, m.key_size, m.value_size, m.max_entries, m.flags)
            assert info.name == m.name[:15]
            if m.btf_value_type_id:
                assert info.btf_id != 0  # created with the object's BTF
