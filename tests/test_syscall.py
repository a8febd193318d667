"""bpf(2) wrappers against the running kernel: no mocks, skipped where bpf() is refused."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from epass.errors import KernelError
from epass.kernel import syscall as bpf
from epass.uapi import (
    BPF_F_RDONLY_PROG,
    BPF_LOG_LEVEL2,
    BPF_NOEXIST,
    BpfCmd,
    MapType,
    ProgType,
)

_REASON = bpf.bpf_permitted()
if _REASON is not None:
    if os.environ.get("EPASS_REQUIRE_BPF") == "1":  # CI: a skip here is a broken set-up
        raise RuntimeError(f"bpf() is required here (EPASS_REQUIRE_BPF=1) but {_REASON}")
    pytest.skip(_REASON, allow_module_level=True)

BPFFS = "/sys/fs/bpf"


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One raw 8-byte instruction (little-endian, x86_64/aarch64)."""
    return struct.pack("<BBhi", code, src << 4 | dst, off, imm)


MOV64_IMM = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
EXIT = 0x95  # BPF_JMP | BPF_EXIT
LD_IMM64 = 0x18  # BPF_LD | BPF_DW | BPF_IMM
PSEUDO_MAP_FD = 1


def ret_const(value: int) -> bytes:
    """`r0 = value; exit`"""
    return insn(MOV64_IMM, dst=0, imm=value) + insn(EXIT)


@pytest.fixture
def fds() -> Iterator[list[int]]:
    """Collects fds a test opens and closes them afterwards."""
    opened: list[int] = []
    yield opened
    for fd in opened:
        bpf.close(fd)


def _bpffs_mounted() -> bool:
    with open("/proc/mounts") as mounts:
        return any(line.split()[1:3] == [BPFFS, "bpf"] for line in mounts)


@pytest.fixture
def pin_path() -> Iterator[str]:
    if not _bpffs_mounted():
        subprocess.run(["mount", "-t", "bpf", "bpf", BPFFS], check=True)
    path = f"{BPFFS}/epass_test_{uuid.uuid4().hex[:12]}"
    yield path
    if os.path.exists(path):
        os.unlink(path)


# --- maps ---------------------------------------------------------------------------


def test_array_map_update_lookup(fds: list[int]) -> None:
    fd = bpf.map_create(MapType.ARRAY, 4, 8, 4, name="epass_arr")
    fds.append(fd)
    key = struct.pack("<I", 2)
    value = bytes([1, 2, 3, 4, 5, 6, 7, 8])
    bpf.map_update_elem(fd, key, value)
    assert bpf.map_lookup_elem(fd, key, 8) == value
    # Array elements exist from the start, zeroed.
    assert bpf.map_lookup_elem(fd, struct.pack("<I", 0), 8) == bytes(8)

    info = bpf.map_get_info(fd)
    assert (info.type, info.key_size, info.value_size, info.max_entries) == (
        MapType.ARRAY,
        4,
        8,
        4,
    )
    assert info.name == "epass_arr"


def test_hash_map_delete_and_enoent(fds: list[int]) -> None:
    fd = bpf.map_create(MapType.HASH, 4, 4, 8)
    fds.append(fd)
    k1, k2 = struct.pack("<I", 7), struct.pack("<I", 9)
    bpf.map_update_elem(fd, k1, b"\x01\x00\x00\x00")
    bpf.map_update_elem(fd, k2, b"\x02\x00\x00\x00")

    with pytest.raises(bpf.BpfError) as exc:
        bpf.map_update_elem(fd, k1, b"\xff" * 4, BPF_NOEXIST)
    assert exc.value.errno == errno.EEXIST

    keys = []
    key = bpf.map_get_next_key(fd, None, 4)
    while key is not None:
        keys.append(key)
        key = bpf.map_get_next_key(fd, key, 4)
    assert sorted(keys) == sorted([k1, k2])

    assert bpf.map_delete_elem(fd, k1) is True
    assert bpf.map_lookup_elem(fd, k1, 4) is None
    assert bpf.map_delete_elem(fd, k1) is False
    assert bpf.map_lookup_elem(fd, k2, 4) == b"\x02\x00\x00\x00"


def test_map_freeze_blocks_updates(fds: list[int]) -> None:
    fd = bpf.map_create(MapType.ARRAY, 4, 4, 1, flags=BPF_F_RDONLY_PROG)
    fds.append(fd)
    bpf.map_update_elem(fd, bytes(4), b"abcd")
    bpf.map_freeze(fd)
    with pytest.raises(bpf.BpfError) as exc:
        bpf.map_update_elem(fd, bytes(4), b"wxyz")
    # A frozen map's EPERM is about the map, not about capabilities.
    assert exc.value.line() == "bpf(MAP_UPDATE_ELEM) failed: Operation not permitted (EPERM)"
    assert bpf.map_lookup_elem(fd, bytes(4), 4) == b"abcd"


def test_bpf_error_message_exact() -> None:
    with pytest.raises(bpf.BpfError) as exc:
        bpf.map_create(MapType.HASH, 0, 4, 1)
    err = exc.value
    assert isinstance(err, KernelError)
    assert err.errno == errno.EINVAL
    assert err.cmd is BpfCmd.MAP_CREATE
    assert err.line() == "bpf(MAP_CREATE) failed: Invalid argument (EINVAL)"


def test_map_name_sanitized(fds: list[int]) -> None:
    fd = bpf.map_create(MapType.ARRAY, 4, 4, 1, name="my-map:with a long name")
    fds.append(fd)
    assert bpf.map_get_info(fd).name == "my_map_with_a_l"


def test_sanitize_obj_name() -> None:
    assert bpf.sanitize_obj_name("xdp.prog_1") == b"xdp.prog_1"
    assert bpf.sanitize_obj_name("a-b c/dé") == b"a_b_c_d_"
    assert bpf.sanitize_obj_name("x" * 40) == b"x" * 15


# --- programs ------------------------------------------------------------------------


def test_xdp_pass_test_run(fds: list[int]) -> None:
    res = bpf.prog_load(ProgType.XDP, ret_const(2), license="GPL", name="xdp_pass")
    assert res.fd is not None, res.log
    fds.append(res.fd)
    packet = bytes(range(64))
    run = bpf.prog_test_run(res.fd, data_in=packet, repeat=3)
    assert run.retval == 2  # XDP_PASS
    assert run.data_out == packet
    assert run.duration_ns >= 0


def test_socket_filter_returns_constant(fds: list[int]) -> None:
    res = bpf.prog_load(ProgType.SOCKET_FILTER, ret_const(0x1234), license="GPL")
    assert res.fd is not None, res.log
    fds.append(res.fd)
    run = bpf.prog_test_run(res.fd, data_in=bytes(64))
    assert run.retval == 0x1234


def test_rejected_program_keeps_log() -> None:
    res = bpf.prog_load(ProgType.XDP, insn(EXIT), license="GPL")
    assert res.fd is None
    assert not res.ok
    assert res.errno == errno.EACCES
    assert "R0 !read_ok" in res.log


def test_log_grows_until_complete(fds: list[int]) -> None:
    prog = ret_const(2)
    small = bpf.prog_load(ProgType.XDP, prog, license="GPL", log_level=BPF_LOG_LEVEL2, log_size=64)
    full = bpf.prog_load(ProgType.XDP, prog, license="GPL", log_level=BPF_LOG_LEVEL2)
    for res in (small, full):
        assert res.fd is not None, res.log
        fds.append(res.fd)
    assert len(small.log) > 128  # more than the smallest buffer we started with
    assert small.log == full.log
    assert "0: (b7) r0 = 2" in small.log
    assert small.log.splitlines()[-1].startswith("processed 2 insns")


def test_prog_get_info_with_map(fds: list[int]) -> None:
    map_fd = bpf.map_create(MapType.ARRAY, 4, 4, 1)
    fds.append(map_fd)
    prog = (
        insn(LD_IMM64, dst=1, src=PSEUDO_MAP_FD, imm=map_fd)
        + insn(0)  # second half of the 16-byte ld_imm64
        + ret_const(2)
    )
    res = bpf.prog_load(ProgType.XDP, prog, license="GPL", name="with-map")
    assert res.fd is not None, res.log
    fds.append(res.fd)

    info = bpf.prog_get_info(res.fd)
    assert info.type is ProgType.XDP
    assert info.name == "with_map"
    assert len(info.xlated_insns) == 8 * (len(prog) // 8)
    assert info.xlated_insns[-16:] == ret_const(2)
    assert len(info.tag) == 16 and int(info.tag, 16) >= 0
    assert info.map_ids == (bpf.map_get_info(map_fd).id,)
    assert info.verified_insns > 0


def test_prog_load_needs_whole_insns() -> None:
    with pytest.raises(ValueError):
        bpf.prog_load(ProgType.XDP, b"\x95\x00\x00", license="GPL")


# --- BTF --------------------------------------------------------------------------------


def _btf_with_int() -> bytes:
    """Minimal BTF: one 32-bit signed `int`."""
    strings = b"\0int\0"
    kind_int = 1
    types = struct.pack("<III", 1, kind_int << 24, 4) + struct.pack("<I", (1 << 24) | 32)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_btf_load(fds: list[int]) -> None:
    fd = bpf.btf_load(_btf_with_int())
    fds.append(fd)
    assert fd >= 0


def test_btf_load_error_has_log_line() -> None:
    with pytest.raises(bpf.BpfError) as exc:
        bpf.btf_load(b"\x00\x00" + _btf_with_int()[2:])  # bad magic
    assert exc.value.errno == errno.EINVAL
    assert exc.value.line().startswith("bpf(BTF_LOAD) failed: Invalid argument (EINVAL): ")
    assert "magic" in exc.value.line()


# --- bpffs, fds, permissions -------------------------------------------------------------


def test_pin_and_get(fds: list[int], pin_path: str) -> None:
    fd = bpf.map_create(MapType.ARRAY, 4, 4, 1)
    fds.append(fd)
    bpf.obj_pin(fd, pin_path)
    again = bpf.obj_get(pin_path)
    fds.append(again)
    assert again != fd
    assert bpf.map_get_info(again).id == bpf.map_get_info(fd).id


def test_fd_holder_closes() -> None:
    with bpf.Fd(bpf.map_create(MapType.ARRAY, 4, 4, 1)) as held:
        raw = held.fd
        os.fstat(raw)
    assert held.fd == -1
    with pytest.raises(OSError):
        os.fstat(raw)


def test_bpf_permitted_here() -> None:
    assert bpf.bpf_permitted() is None


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv not installed")
def test_bpf_not_permitted_without_capabilities() -> None:
    with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
        if f.read().strip() == "0":
            pytest.skip("unprivileged bpf() is enabled on this host")
    code = "from epass.kernel.syscall import bpf_permitted; print(bpf_permitted())"
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c", code],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == (
        "bpf(MAP_CREATE) is not permitted here: "
        "needs root or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN (EPERM)"
    )
