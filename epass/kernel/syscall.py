"""The bpf(2) system call through ctypes, one function per command we use.

Each command gets its own ctypes Structure laid out exactly like its member of
`union bpf_attr`. We pass the size of that structure, not of the whole union:
the kernel zero-extends a shorter attr and insists that bytes past what it
knows are zero, so a struct that stops at the last field we fill works on
both older and newer kernels.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
from dataclasses import dataclass
from functools import cache
from typing import Any, Self

from epass.errors import KernelError
from epass.uapi import (
    BPF_ANY,
    BPF_OBJ_NAME_LEN,
    BPF_TAG_SIZE,
    AttachType,
    BpfCmd,
    MapType,
    ProgType,
)

# asm-generic syscall table (aarch64, riscv64, loongarch64) vs x86_64.
_NR_BPF_BY_MACHINE = {
    "x86_64": 321,
    "amd64": 321,
    "aarch64": 280,
    "arm64": 280,
    "riscv64": 280,
    "loongarch64": 280,
}

_U32 = ctypes.c_uint32
_S32 = ctypes.c_int32
_U64 = ctypes.c_uint64
_NAME = ctypes.c_char * BPF_OBJ_NAME_LEN

# The kernel refuses verifier logs smaller than 128 bytes and from 1 GiB on.
LOG_SIZE_MIN = 128
LOG_SIZE_MAX = (1 << 30) - 1

_NOT_PERMITTED = "is not permitted here: needs root or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN"


class BpfError(KernelError):
    """A bpf(2) command failed; `errno` and `cmd` say which and how."""

    def __init__(self, cmd: BpfCmd, errno: int, message: str | None = None) -> None:
        self.cmd = cmd
        self.errno = errno
        if message is None:
            message = _default_message(cmd, errno)
        super().__init__(message)


ENOTSUPP = 524  # the kernel-internal "operation not supported" some commands leak


def errno_text(err: int) -> str:
    """`Permission denied (EACCES)`; also names the kernel-internal ENOTSUPP."""
    if err == ENOTSUPP:
        return "Operation not supported (ENOTSUPP)"
    name = _errno.errorcode.get(err, str(err))
    return f"{os.strerror(err)} ({name})"


# Commands where EPERM/EACCES means "no CAP_BPF & co". Elsewhere they mean
# something about the object (a frozen map, a read-only fd, file modes).
_CAPABILITY_GATED = frozenset(
    {
        BpfCmd.MAP_CREATE,
        BpfCmd.PROG_LOAD,
        BpfCmd.BTF_LOAD,
        BpfCmd.PROG_GET_NEXT_ID,
        BpfCmd.MAP_GET_NEXT_ID,
        BpfCmd.BTF_GET_NEXT_ID,
        BpfCmd.LINK_GET_NEXT_ID,
        BpfCmd.PROG_GET_FD_BY_ID,
        BpfCmd.MAP_GET_FD_BY_ID,
        BpfCmd.BTF_GET_FD_BY_ID,
        BpfCmd.LINK_GET_FD_BY_ID,
    }
)


def _default_message(cmd: BpfCmd, err: int) -> str:
    if cmd in _CAPABILITY_GATED and err in (_errno.EPERM, _errno.EACCES):
        return f"bpf({cmd.name}) {_NOT_PERMITTED} ({_errno.errorcode[err]})"
    return f"bpf({cmd.name}) failed: {errno_text(err)}"


# --- attr layouts (offsets checked against include/uapi/linux/bpf.h) --------------


class _MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", _U32),
        ("key_size", _U32),
        ("value_size", _U32),
        ("max_entries", _U32),
        ("map_flags", _U32),
        ("inner_map_fd", _U32),
        ("numa_node", _U32),
        ("map_name", _NAME),
        ("map_ifindex", _U32),
        ("btf_fd", _U32),
        ("btf_key_type_id", _U32),
        ("btf_value_type_id", _U32),
        ("btf_vmlinux_value_type_id", _U32),
        ("map_extra", _U64),
        ("value_type_btf_obj_fd", _S32),
        ("map_token_fd", _S32),
    ]


class _MapElemAttr(ctypes.Structure):
    # Shared by lookup/update/delete/get_next_key/freeze; next_key overlays value.
    _fields_ = [
        ("map_fd", _U32),
        ("key", _U64),
        ("value", _U64),
        ("flags", _U64),
    ]


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", _U32),
        ("insn_cnt", _U32),
        ("insns", _U64),
        ("license", _U64),
        ("log_level", _U32),
        ("log_size", _U32),
        ("log_buf", _U64),
        ("kern_version", _U32),
        ("prog_flags", _U32),
        ("prog_name", _NAME),
        ("prog_ifindex", _U32),
        ("expected_attach_type", _U32),
        ("prog_btf_fd", _U32),
        ("func_info_rec_size", _U32),
        ("func_info", _U64),
        ("func_info_cnt", _U32),
        ("line_info_rec_size", _U32),
        ("line_info", _U64),
        ("line_info_cnt", _U32),
        ("attach_btf_id", _U32),
        ("attach_prog_fd", _U32),  # union with attach_btf_obj_fd
        ("core_relo_cnt", _U32),
        ("fd_array", _U64),
        ("core_relos", _U64),
        ("core_relo_rec_size", _U32),
        ("log_true_size", _U32),
        ("prog_token_fd", _S32),
        ("fd_array_cnt", _U32),
    ]


class _ObjAttr(ctypes.Structure):
    _fields_ = [
        ("pathname", _U64),
        ("bpf_fd", _U32),
        ("file_flags", _U32),
        ("path_fd", _S32),
    ]


class _TestRunAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", _U32),
        ("retval", _U32),
        ("data_size_in", _U32),
        ("data_size_out", _U32),
        ("data_in", _U64),
        ("data_out", _U64),
        ("repeat", _U32),
        ("duration", _U32),
        ("ctx_size_in", _U32),
        ("ctx_size_out", _U32),
        ("ctx_in", _U64),
        ("ctx_out", _U64),
        ("flags", _U32),
        ("cpu", _U32),
        ("batch_size", _U32),
    ]


class _InfoAttr(ctypes.Structure):
    _fields_ = [
        ("bpf_fd", _U32),
        ("info_len", _U32),
        ("info", _U64),
    ]


class _BtfLoadAttr(ctypes.Structure):
    _fields_ = [
        ("btf", _U64),
        ("btf_log_buf", _U64),
        ("btf_size", _U32),
        ("btf_log_size", _U32),
        ("btf_log_level", _U32),
        ("btf_log_true_size", _U32),
        ("btf_flags", _U32),
        ("btf_token_fd", _S32),
    ]


class _ProgInfoStruct(ctypes.Structure):
    """`struct bpf_prog_info` up to attach_btf_id."""

    _fields_ = [
        ("type", _U32),
        ("id", _U32),
        ("tag", ctypes.c_uint8 * BPF_TAG_SIZE),
        ("jited_prog_len", _U32),
        ("xlated_prog_len", _U32),
        ("jited_prog_insns", _U64),
        ("xlated_prog_insns", _U64),
        ("load_time", _U64),
        ("created_by_uid", _U32),
        ("nr_map_ids", _U32),
        ("map_ids", _U64),
        ("name", _NAME),
        ("ifindex", _U32),
        ("gpl_compatible", _U32, 1),
        ("netns_dev", _U64),
        ("netns_ino", _U64),
        ("nr_jited_ksyms", _U32),
        ("nr_jited_func_lens", _U32),
        ("jited_ksyms", _U64),
        ("jited_func_lens", _U64),
        ("btf_id", _U32),
        ("func_info_rec_size", _U32),
        ("func_info", _U64),
        ("nr_func_info", _U32),
        ("nr_line_info", _U32),
        ("line_info", _U64),
        ("jited_line_info", _U64),
        ("nr_jited_line_info", _U32),
        ("line_info_rec_size", _U32),
        ("jited_line_info_rec_size", _U32),
        ("nr_prog_tags", _U32),
        ("prog_tags", _U64),
        ("run_time_ns", _U64),
        ("run_cnt", _U64),
        ("recursion_misses", _U64),
        ("verified_insns", _U32),
        ("attach_btf_obj_id", _U32),
        ("attach_btf_id", _U32),
    ]


class _MapInfoStruct(ctypes.Structure):
    """`struct bpf_map_info` up to map_extra (later fields ask the kernel for work)."""

    _fields_ = [
        ("type", _U32),
        ("id", _U32),
        ("key_size", _U32),
        ("value_size", _U32),
        ("max_entries", _U32),
        ("map_flags", _U32),
        ("name", _NAME),
        ("ifindex", _U32),
        ("btf_vmlinux_value_type_id", _U32),
        ("netns_dev", _U64),
        ("netns_ino", _U64),
        ("btf_id", _U32),
        ("btf_key_type_id", _U32),
        ("btf_value_type_id", _U32),
        ("btf_vmlinux_id", _U32),
        ("map_extra", _U64),
    ]


# --- the raw call -------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong]


@cache
def _nr_bpf() -> int:
    machine = platform.machine().lower()
    try:
        return _NR_BPF_BY_MACHINE[machine]
    except KeyError:
        raise KernelError(f"bpf(): unsupported architecture {machine!r}") from None


def _try_bpf(cmd: BpfCmd, attr: ctypes.Structure) -> tuple[int, int]:
    """One bpf(2) call; returns (result, errno) with errno 0 on success."""
    ctypes.set_errno(0)
    ret = _syscall(_nr_bpf(), int(cmd), ctypes.addressof(attr), ctypes.sizeof(attr))
    if ret < 0:
        return -1, ctypes.get_errno()
    return int(ret), 0


def _bpf(cmd: BpfCmd, attr: ctypes.Structure) -> int:
    ret, err = _try_bpf(cmd, attr)
    if err:
        raise BpfError(cmd, err)
    return ret


def _addr(buf: ctypes.Array[Any] | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _in_buf(data: bytes) -> ctypes.Array[ctypes.c_char] | None:
    """A C copy of `data` that stays alive while the caller holds it; None if empty."""
    return ctypes.create_string_buffer(data, len(data)) if data else None


def _c_string(raw: bytes) -> str:
    """Text up to the first NUL (ctypes char-array fields are already cut there)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def sanitize_obj_name(name: str) -> bytes:
    """What the kernel accepts as a map/prog name: [A-Za-z0-9_.], at most 15 chars.

    Like libbpf, other characters become '_' rather than failing the load.
    """
    out = "".join(c if (c.isascii() and c.isalnum()) or c in "_." else "_" for c in name)
    return out[: BPF_OBJ_NAME_LEN - 1].encode("ascii")


# --- fds ---------------------------------------------------------------------------


def close(fd: int) -> None:
    """Close a map/prog/BTF/link fd."""
    os.close(fd)


class Fd:
    """Owns one fd; `with Fd(map_create(...)) as m:` closes it on exit."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __int__(self) -> int:
        return self.fd

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Fd({self.fd})"


# --- capability probe ----------------------------------------------------------------


def bpf_permitted() -> str | None:
    """None when bpf() works here, else a one-line reason it does not."""
    try:
        fd = map_create(MapType.ARRAY, 4, 4, 1)
    except KernelError as e:
        return e.line()
    close(fd)
    return None


# --- BTF -------------------------------------------------------------------------------


_BTF_LOG_SIZE = 16 << 20


def _btf_load_once(data: bytes, log_level: int) -> tuple[int, int, str]:
    """(fd, errno, log) for one BPF_BTF_LOAD."""
    blob = ctypes.create_string_buffer(data, len(data))
    attr = _BtfLoadAttr(btf=ctypes.addressof(blob), btf_size=len(data))
    log = None
    if log_level:
        log = ctypes.create_string_buffer(_BTF_LOG_SIZE)
        attr.btf_log_buf = ctypes.addressof(log)
        attr.btf_log_size = _BTF_LOG_SIZE
        attr.btf_log_level = log_level
    fd, err = _try_bpf(BpfCmd.BTF_LOAD, attr)
    return fd, err, _c_string(log.raw) if log is not None else ""


def _last_line(log: str) -> str:
    lines = [ln for ln in log.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def btf_load(data: bytes, *, log_level: int = 0) -> int:
    """Load raw BTF (header + types + strings); returns the BTF fd.

    On failure without a log, loads again with log_level=1 just to read why:
    the message ends with the last line of the kernel's BTF log.
    """
    fd, err, log = _btf_load_once(data, log_level)
    if not err:
        return fd
    if err in (_errno.EPERM, _errno.EACCES):
        raise BpfError(BpfCmd.BTF_LOAD, err)
    if not log_level:
        # Keep the first errno: a truncated log on the retry would report ENOSPC.
        retry_fd, _, log = _btf_load_once(data, 1)
        if retry_fd >= 0:
            close(retry_fd)
    message = f"bpf(BTF_LOAD) failed: {errno_text(err)}"
    reason = _last_line(log)
    if reason:
        message += f": {reason}"
    raise BpfError(BpfCmd.BTF_LOAD, err, message)


# --- maps ------------------------------------------------------------------------------


def map_create(
    map_type: MapType | int,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    flags: int = 0,
    name: str = "",
    btf_fd: int = 0,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
    btf_vmlinux_value_type_id: int = 0,
    inner_map_fd: int = 0,
    map_extra: int = 0,
    numa_node: int = 0,
) -> int:
    """BPF_MAP_CREATE; returns the map fd. `name` is sanitized like libbpf does."""
    attr = _MapCreateAttr(
        map_type=int(map_type),
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_flags=flags,
        inner_map_fd=inner_map_fd,
        numa_node=numa_node,
        map_name=sanitize_obj_name(name),
        btf_fd=btf_fd,
        btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
        btf_vmlinux_value_type_id=btf_vmlinux_value_type_id,
        map_extra=map_extra,
    )
    return _bpf(BpfCmd.MAP_CREATE, attr)


def map_update_elem(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    """BPF_MAP_UPDATE_ELEM; flags is BPF_ANY, BPF_NOEXIST or BPF_EXIST (| BPF_F_LOCK)."""
    kbuf, vbuf = _in_buf(key), _in_buf(value)
    attr = _MapElemAttr(map_fd=fd, key=_addr(kbuf), value=_addr(vbuf), flags=flags)
    _bpf(BpfCmd.MAP_UPDATE_ELEM, attr)


def map_lookup_elem(fd: int, key: bytes, value_size: int, flags: int = 0) -> bytes | None:
    """BPF_MAP_LOOKUP_ELEM; None when the key is absent.

    For per-CPU maps value_size must be round_up(value_size, 8) * possible CPUs.
    """
    kbuf = _in_buf(key)
    vbuf = ctypes.create_string_buffer(value_size)
    attr = _MapElemAttr(map_fd=fd, key=_addr(kbuf), value=ctypes.addressof(vbuf), flags=flags)
    _, err = _try_bpf(BpfCmd.MAP_LOOKUP_ELEM, attr)
    if err == _errno.ENOENT:
        return None
    if err:
        raise BpfError(BpfCmd.MAP_LOOKUP_ELEM, err)
    return vbuf.raw


def map_delete_elem(fd: int, key: bytes) -> bool:
    """BPF_MAP_DELETE_ELEM; False when the key was not there."""
    kbuf = _in_buf(key)
    _, err = _try_bpf(BpfCmd.MAP_DELETE_ELEM, _MapElemAttr(map_fd=fd, key=_addr(kbuf)))
    if err == _errno.ENOENT:
        return False
    if err:
        raise BpfError(BpfCmd.MAP_DELETE_ELEM, err)
    return True


def map_get_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """BPF_MAP_GET_NEXT_KEY; key None gives the first key, None means no more keys."""
    kbuf = _in_buf(key) if key is not None else None
    nbuf = ctypes.create_string_buffer(key_size)
    attr = _MapElemAttr(map_fd=fd, key=_addr(kbuf), value=ctypes.addressof(nbuf))
    _, err = _try_bpf(BpfCmd.MAP_GET_NEXT_KEY, attr)
    if err == _errno.ENOENT:
        return None
    if err:
        raise BpfError(BpfCmd.MAP_GET_NEXT_KEY, err)
    return nbuf.raw


def map_freeze(fd: int) -> None:
    """BPF_MAP_FREEZE: no more writes from user space (what libbpf does to .rodata)."""
    _bpf(BpfCmd.MAP_FREEZE, _MapElemAttr(map_fd=fd))


# --- programs --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgLoadResult:
    """Outcome of BPF_PROG_LOAD: fd is None when the verifier said no."""

    fd: int | None
    errno: int
    log: str

    @property
    def ok(self) -> bool:
        return self.fd is not None


# libbpf retries PROG_LOAD on EAGAIN a few times; the verifier can return it spuriously.
_EAGAIN_RETRIES = 5


def prog_load(
    prog_type: ProgType | int,
    insns: bytes,
    *,
    license: str,
    name: str = "",
    expected_attach_type: AttachType | int | None = 0,
    attach_btf_id: int = 0,
    attach_btf_obj_fd: int = 0,
    attach_prog_fd: int = 0,
    prog_flags: int = 0,
    kern_version: int = 0,
    prog_btf_fd: int = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 0,
    line_info: bytes = b"",
    line_info_rec_size: int = 0,
    fd_array: list[int] | None = None,
    log_level: int = 1,
    log_size: int = 1 << 20,
) -> ProgLoadResult:
    """BPF_PROG_LOAD. A verifier rejection is a result, not an exception.

    Raises BpfError only when bpf() itself is refused (EPERM, no log). With
    log_level > 0 a truncated log (ENOSPC) is retried with a bigger buffer
    until it fits or reaches 1 GiB, so `log` is always the complete log.
    """
    if len(insns) % 8:
        raise ValueError(f"insns is {len(insns)} bytes, not a multiple of 8")
    if (func_info and not func_info_rec_size) or (line_info and not line_info_rec_size):
        raise ValueError("func_info/line_info need their record size")
    if attach_prog_fd and attach_btf_obj_fd:
        raise ValueError("attach_prog_fd and attach_btf_obj_fd share one field; give one")

    insn_buf = ctypes.create_string_buffer(insns, len(insns))
    license_buf = ctypes.create_string_buffer(license.encode())
    fi_buf, li_buf = _in_buf(func_info), _in_buf(line_info)
    fds = (_S32 * len(fd_array))(*fd_array) if fd_array else None
    attr = _ProgLoadAttr(
        prog_type=int(prog_type),
        insn_cnt=len(insns) // 8,
        insns=ctypes.addressof(insn_buf),
        license=ctypes.addressof(license_buf),
        kern_version=kern_version,
        prog_flags=prog_flags,
        prog_name=sanitize_obj_name(name),
        expected_attach_type=int(expected_attach_type or 0),  # None: as libbpf, 0
        prog_btf_fd=prog_btf_fd,
        func_info_rec_size=func_info_rec_size if func_info else 0,
        func_info=_addr(fi_buf),
        func_info_cnt=len(func_info) // func_info_rec_size if func_info else 0,
        line_info_rec_size=line_info_rec_size if line_info else 0,
        line_info=_addr(li_buf),
        line_info_cnt=len(line_info) // line_info_rec_size if line_info else 0,
        attach_btf_id=attach_btf_id,
        attach_prog_fd=attach_prog_fd or attach_btf_obj_fd,
        fd_array=_addr(fds),
    )

    size = min(max(log_size, LOG_SIZE_MIN), LOG_SIZE_MAX)
    while True:
        log_buf = ctypes.create_string_buffer(size) if log_level else None
        attr.log_level = log_level
        attr.log_size = size if log_level else 0
        attr.log_buf = _addr(log_buf)
        attr.log_true_size = 0
        fd, err = _load_with_retries(attr)
        # string_at stops at the NUL: no copy of the whole (maybe huge) buffer
        log = ctypes.string_at(log_buf).decode("utf-8", "replace") if log_buf is not None else ""
        # Capability checks fail before the verifier runs, so with an empty log;
        # an EPERM the verifier explains (or EACCES) is a rejection like any other.
        if err == _errno.EPERM and not log.strip():
            raise BpfError(BpfCmd.PROG_LOAD, err)
        if err == _errno.ENOSPC and log_level and size < LOG_SIZE_MAX:
            # 6.4+ reports the size it needed; older kernels get doubling.
            size = min(max(attr.log_true_size, size * 2), LOG_SIZE_MAX)
            continue
        if err == _errno.ENOSPC and log_level:
            raise KernelError(f"the verifier log is larger than {LOG_SIZE_MAX >> 20} MiB; "
                              "use a lower log level")
        return ProgLoadResult(fd=None if err else fd, errno=err, log=log)


def _load_with_retries(attr: _ProgLoadAttr) -> tuple[int, int]:
    for _ in range(_EAGAIN_RETRIES):
        fd, err = _try_bpf(BpfCmd.PROG_LOAD, attr)
        if err != _errno.EAGAIN:
            break
    return fd, err


@dataclass(frozen=True)
class TestRunResult:
    """What BPF_PROG_TEST_RUN reports; duration_ns is the mean per repeat."""

    __test__ = False  # not a pytest class despite the name

    retval: int
    data_out: bytes
    ctx_out: bytes
    duration_ns: int


def prog_test_run(
    prog_fd: int,
    *,
    data_in: bytes = b"",
    data_size_out: int = 0,
    ctx_in: bytes | None = None,
    ctx_size_out: int = 0,
    repeat: int = 1,
    flags: int = 0,
    cpu: int = 0,
) -> TestRunResult:
    """BPF_PROG_TEST_RUN on a packet and/or context.

    data_size_out / ctx_size_out of 0 mean "as large as the input", so the
    output comes back unless the program grew it (then BpfError ENOSPC).
    """
    out_size = data_size_out or len(data_in)
    ctx_out_size = ctx_size_out or (len(ctx_in) if ctx_in else 0)
    din, cin = _in_buf(data_in), _in_buf(ctx_in or b"")
    dout = ctypes.create_string_buffer(out_size) if out_size else None
    cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
    attr = _TestRunAttr(
        prog_fd=prog_fd,
        data_size_in=len(data_in),
        data_size_out=out_size,
        data_in=_addr(din),
        data_out=_addr(dout),
        repeat=repeat,
        ctx_size_in=len(ctx_in) if ctx_in else 0,
        ctx_size_out=ctx_out_size,
        ctx_in=_addr(cin),
        ctx_out=_addr(cout),
        flags=flags,
        cpu=cpu,
    )
    _, err = _try_bpf(BpfCmd.PROG_TEST_RUN, attr)
    if err == _errno.ENOSPC:
        raise BpfError(
            BpfCmd.PROG_TEST_RUN,
            err,
            f"bpf(PROG_TEST_RUN) failed: {errno_text(err)}: output is larger than "
            f"data_size_out={out_size} / ctx_size_out={ctx_out_size}",
        )
    if err:
        raise BpfError(BpfCmd.PROG_TEST_RUN, err)
    data_out = dout.raw[: attr.data_size_out] if dout is not None else b""
    ctx_out = cout.raw[: attr.ctx_size_out] if cout is not None else b""
    return TestRunResult(
        retval=attr.retval, data_out=data_out, ctx_out=ctx_out, duration_ns=attr.duration
    )


# --- bpffs -----------------------------------------------------------------------------


def obj_pin(fd: int, path: str) -> None:
    """BPF_OBJ_PIN: make `fd` reachable at `path` on a bpf filesystem."""
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    _bpf(BpfCmd.OBJ_PIN, _ObjAttr(pathname=ctypes.addressof(pbuf), bpf_fd=fd))


def obj_get(path: str) -> int:
    """BPF_OBJ_GET: a new fd for the object pinned at `path`."""
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    return _bpf(BpfCmd.OBJ_GET, _ObjAttr(pathname=ctypes.addressof(pbuf)))


# --- object info -------------------------------------------------------------------


def _get_info(fd: int, info: ctypes.Structure) -> None:
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _bpf(BpfCmd.OBJ_GET_INFO_BY_FD, attr)


def _prog_type(value: int) -> ProgType | int:
    return ProgType(value) if value in ProgType._value2member_map_ else value


def _map_type(value: int) -> MapType | int:
    return MapType(value) if value in MapType._value2member_map_ else value


@dataclass(frozen=True)
class ProgInfo:
    """The parts of `struct bpf_prog_info` we use."""

    type: ProgType | int
    id: int
    tag: str  # hex, as bpftool prints it
    name: str
    xlated_insns: bytes  # after the kernel's rewrites; empty if not allowed to dump
    jited_len: int
    verified_insns: int
    map_ids: tuple[int, ...]
    run_time_ns: int
    run_cnt: int
    btf_id: int


def prog_get_info(fd: int) -> ProgInfo:
    """BPF_OBJ_GET_INFO_BY_FD for a program, with its xlated code and map ids.

    Two calls: the first learns the sizes, the second hands in buffers that big.
    """
    sizes = _ProgInfoStruct()
    _get_info(fd, sizes)

    xlated = ctypes.create_string_buffer(sizes.xlated_prog_len)
    map_ids = (_U32 * sizes.nr_map_ids)()
    info = _ProgInfoStruct(
        xlated_prog_len=sizes.xlated_prog_len,
        xlated_prog_insns=ctypes.addressof(xlated),
        nr_map_ids=sizes.nr_map_ids,
        map_ids=ctypes.addressof(map_ids),
    )
    _get_info(fd, info)

    # The kernel leaves xlated_prog_insns 0 when raw dumps are not allowed.
    code = xlated.raw[: info.xlated_prog_len] if info.xlated_prog_insns else b""
    n_maps = min(info.nr_map_ids, sizes.nr_map_ids)
    return ProgInfo(
        type=_prog_type(info.type),
        id=info.id,
        tag=bytes(info.tag).hex(),
        name=_c_string(info.name),
        xlated_insns=code,
        jited_len=info.jited_prog_len,
        verified_insns=info.verified_insns,
        map_ids=tuple(map_ids[:n_maps]),
        run_time_ns=info.run_time_ns,
        run_cnt=info.run_cnt,
        btf_id=info.btf_id,
    )


@dataclass(frozen=True)
class MapInfo:
    """The parts of `struct bpf_map_info` we use."""

    type: MapType | int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    btf_id: int


def map_get_info(fd: int) -> MapInfo:
    """BPF_OBJ_GET_INFO_BY_FD for a map."""
    info = _MapInfoStruct()
    _get_info(fd, info)
    return MapInfo(
        type=_map_type(info.type),
        id=info.id,
        key_size=info.key_size,
        value_size=info.value_size,
        max_entries=info.max_entries,
        map_flags=info.map_flags,
        name=_c_string(info.name),
        btf_id=info.btf_id,
    )
