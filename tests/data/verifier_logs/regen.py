#!/usr/bin/env python3
"""Regenerate the verifier-log fixtures in this directory from their C sources.

Each fixture program is `<stem>.bpf.c`; its logs are `<stem>.L<level>.log`, where
level is the BPF log_level the program was loaded with (1, 2, or 6 = 2|4 which
adds BPF_LOG_STATS).  Programs are compiled with clang-19 and loaded through
libbpf (via ctypes), which creates the maps and passes BTF line info, so the
kernel prints source-line comments.  Needs root.

    sudo python3 regen.py [STEM ...]         # all fixtures, or only these stems
    sudo python3 regen.py --unpriv-sysctl    # also the fully unprivileged ones

`capbpf` fixtures are loaded by a child that keeps CAP_BPF but drops CAP_PERFMON
and CAP_SYS_ADMIN, so the verifier runs without allow_uninit_stack.  `unpriv`
fixtures drop every capability, which only loads while
/proc/sys/kernel/unprivileged_bpf_disabled is 0: with --unpriv-sysctl the script
sets it to 0 for the load and restores the old value right after.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLANG = os.environ.get("CLANG", "clang-19")
CFLAGS = ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]
LOG_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class Fixture:
    stem: str
    levels: tuple[int, ...] = (1, 2, 6)
    cflags: tuple[str, ...] = ()
    caps: str = "root"  # root | capbpf | unpriv
    log_size: int = LOG_SIZE


FIXTURES: list[Fixture] = [
    # accepted
    Fixture("ok_xdp_bounds"),
    Fixture("ok_map_lookup"),
    Fixture("ok_loop"),
    Fixture("ok_bpf2bpf"),
    Fixture("ok_spill"),
    Fixture("ok_alu32", cflags=("-mcpu=v3",)),
    Fixture("ok_ringbuf"),
    Fixture("ok_callback"),
    Fixture("ok_iter_dynptr"),
    Fixture("ok_branch_copies"),
    # rejected: the level 1 log (what users see), the level 2 trace, and stats
    *(
        Fixture(stem, levels=(1, 2, 6))
        for stem in (
            "err_mem_access_scalar",
            "err_mem_access_null",
            "err_ctx_access",
            "err_packet_access",
            "err_map_value_access",
            "err_map_math_unbounded",
            "err_min_negative",
            "err_ptr_out_of_bounds",
            "err_max_out_of_range",
            "err_unbounded_access",
            "err_ptr_arith_lsh",
            "err_ptr_arith_pkt_end",
            "err_modified_ctx",
            "err_same_insn_ptrs",
            "err_read_not_ok",
            "err_misaligned_stack",
            "err_stack_too_large",
            "err_infinite_loop",
            "err_unreachable",
            "err_helper_prog_type",
            "err_helper_unknown",
            "err_invalid_argument",
            "err_unreleased_ref",
            "err_invalid_return",
        )
    ),
    Fixture("err_uninit_stack", levels=(1, 2), caps="capbpf"),
    Fixture("err_uninit_stack_indirect", levels=(1, 2), caps="capbpf"),
    Fixture("err_uninit_stack_slot", levels=(1, 2), caps="capbpf"),
    Fixture("err_back_edge", levels=(1, 2), caps="unpriv"),
    # a million-insn walk: keep only the tail of the level 1 log
    Fixture("err_too_large", levels=(1,), log_size=16 * 1024),
]


# --- loading through libbpf ---------------------------------------------------


def _libbpf() -> ctypes.CDLL:
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    lib.bpf_object__open_file.restype = ctypes.c_void_p
    lib.bpf_object__open_file.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.bpf_object__next_program.restype = ctypes.c_void_p
    lib.bpf_object__next_program.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.bpf_program__set_log_level.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.bpf_program__set_log_buf.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.bpf_object__load.argtypes = [ctypes.c_void_p]
    lib.bpf_object__close.argtypes = [ctypes.c_void_p]
    lib.libbpf_set_print.argtypes = [ctypes.c_void_p]
    lib.libbpf_set_print(None)  # keep libbpf's own chatter out of our output
    return lib


def load(obj: Path, level: int, log_size: int) -> tuple[int, str]:
    """Load `obj` with its (only) program at `level`; return (libbpf result, the log)."""
    lib = _libbpf()
    handle = lib.bpf_object__open_file(str(obj).encode(), None)
    if not handle:
        raise SystemExit(f"{obj}: open failed: {os.strerror(ctypes.get_errno())}")
    buf = ctypes.create_string_buffer(log_size)
    prog = lib.bpf_object__next_program(handle, None)
    lib.bpf_program__set_log_level(prog, level)
    lib.bpf_program__set_log_buf(prog, buf, log_size)
    rc = lib.bpf_object__load(handle)
    lib.bpf_object__close(handle)
    return rc, buf.value.decode(errors="replace")


# --- capabilities ---------------------------------------------------------------

CAP_NET_ADMIN, CAP_BPF = 12, 39  # everything else (CAP_SYS_ADMIN, CAP_PERFMON) goes


def drop_caps(keep: set[int]) -> None:
    """capset(2) the effective/permitted sets down to `keep` (this process only)."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    mask = sum(1 << c for c in keep)
    data = (Data * 2)()
    for i in range(2):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = word
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.capset(ctypes.byref(Header(0x20080522, 0)), data) != 0:
        raise SystemExit(f"capset: {os.strerror(ctypes.get_errno())}")


# --- driver -------------------------------------------------------------------------


def compile_fixture(fx: Fixture, out_dir: Path) -> Path:
    obj = out_dir / f"{fx.stem}.o"
    cmd = [CLANG, *CFLAGS, *fx.cflags, "-c", str(HERE / f"{fx.stem}.bpf.c"), "-o", str(obj)]
    subprocess.run(cmd, check=True)
    return obj


def child_load(obj: str, level: str, log_size: str, caps: str) -> None:
    """Entry point of the child process that drops capabilities, then loads."""
    if caps == "capbpf":
        drop_caps({CAP_BPF, CAP_NET_ADMIN})
    elif caps == "unpriv":
        drop_caps(set())
    rc, log = load(Path(obj), int(level), int(log_size))
    sys.stdout.write(log)
    sys.stderr.write(f"rc={rc}\n")


def regen(fx: Fixture, work: Path, unpriv_sysctl: bool) -> None:
    if fx.caps == "unpriv" and not unpriv_sysctl:
        print(f"skip {fx.stem}: needs --unpriv-sysctl")
        return
    obj = compile_fixture(fx, work)
    for level in fx.levels:
        sysctl = Path("/proc/sys/kernel/unprivileged_bpf_disabled")
        old = sysctl.read_text().strip() if fx.caps == "unpriv" else None
        try:
            if old is not None:
                sysctl.write_text("0")
            res = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(obj),
                    str(level),
                    str(fx.log_size),
                    fx.caps,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            if old is not None:
                sysctl.write_text(old)
        out = HERE / f"{fx.stem}.L{level}.log"
        out.write_text(res.stdout)
        print(f"{out.name}: {res.stderr.strip()}, {len(res.stdout)} bytes")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        child_load(*argv[1:5])
        return
    unpriv_sysctl = "--unpriv-sysctl" in argv
    stems = [a for a in argv if not a.startswith("--")]
    with tempfile.TemporaryDirectory() as tmp:
        for fx in FIXTURES:
            if not stems or fx.stem in stems:
                regen(fx, Path(tmp), unpriv_sysctl)


if __name__ == "__main__":
    main(sys.argv[1:])
