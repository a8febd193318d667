"""Run a generated program in the kernel: create its maps, load, BPF_PROG_TEST_RUN, read back.

    result = run_in_kernel(insns, maps, packet, ProgType.XDP)
    if result.accepted: result.retval, result.packet, result.maps

Programs refer to maps by index (lddw MAP_IDX / MAP_IDX_VALUE, as the
interpreter takes them); here each becomes the fd of a freshly created map
(MAP_FD / MAP_VALUE). A program that takes a function's address (callbacks
of bpf_loop) needs BTF func_info, so it gets a minimal BTF: one static
`int f(void)` FUNC for every subprogram. Everything created is closed
before returning.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from epass.isa import Call, CallKind, Insn, LoadImm64, PseudoKind, encode, slot_indices
from epass.kernel.snapshot import map_contents
from epass.kernel.syscall import (
    BpfError,
    btf_load,
    close,
    map_create,
    map_update_elem,
    prog_load,
    prog_test_run,
)
from epass.obj.btf import Btf, BtfFunc, BtfFuncProto, BtfInt, FuncLinkage, IntEncoding
from epass.semantics.interp import MapSpec
from epass.uapi import ProgType

_BY_FD = {PseudoKind.MAP_IDX: PseudoKind.MAP_FD, PseudoKind.MAP_IDX_VALUE: PseudoKind.MAP_VALUE}
DATA_OUT_MAX = 4096  # bpf_xdp_adjust_tail may grow the packet up to about a page


@dataclass
class KernelResult:
    accepted: bool
    log: str  # the verifier log (level 1): on rejection it ends with the reason
    retval: int | None = None  # BPF_PROG_TEST_RUN's retval: r0 truncated to u32
    packet: bytes = b""
    maps: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    run_error: str | None = None  # BPF_PROG_TEST_RUN refused the input (a short IPv4 frame)

    @property
    def reason(self) -> str:
        """The verifier's complaint: the last log line that is not a statistic."""
        lines = [ln for ln in self.log.strip().splitlines()
                 if ln and not ln.startswith(("processed ", "verification time"))]
        return lines[-1] if lines else "(empty log)"


def relocate(insns: list[Insn], fds: list[int]) -> list[Insn]:
    """Map indexes in lddw become the fds of the created maps."""
    out = []
    for insn in insns:
        if isinstance(insn, LoadImm64) and insn.kind in _BY_FD:
            insn = replace(insn, imm=fds[insn.imm], kind=_BY_FD[insn.kind])
        out.append(insn)
    return out


def read_map(fd: int, spec: MapSpec) -> dict[bytes, bytes]:
    """Every entry, keys sorted (as the interpreter's snapshot)."""
    contents = map_contents(fd, spec.type, spec.key_size, spec.value_size)
    assert contents is not None, f"map {spec.name}: its type cannot be listed"
    return contents


def subprogram_starts(insns: list[Insn]) -> list[int]:
    """Slot indices where functions start: 0 and every local call or function address target."""
    starts = {0}
    for slot, insn in zip(slot_indices(insns), insns, strict=True):
        if isinstance(insn, Call) and insn.kind == CallKind.LOCAL:
            starts.add(slot + 1 + insn.imm)
        elif isinstance(insn, LoadImm64) and insn.kind == PseudoKind.FUNC:
            starts.add(slot + 1 + insn.imm)
    return sorted(starts)


_FUNC_BTF = Btf(
    [BtfInt(name_off=1, name="int", size=4, encoding=IntEncoding.SIGNED, bit_offset=0, bits=32),
     BtfFuncProto(type_id=1, params=()),
     BtfFunc(name_off=5, name="f", type_id=2, linkage=FuncLinkage.STATIC)],
    b"\0int\0f\0",
).encode()
_FUNC_TYPE_ID = 3


def create_map(spec: MapSpec) -> int:
    fd = map_create(spec.type, spec.key_size, spec.value_size, spec.max_entries,
                    name=spec.name)
    try:
        for key, value in spec.contents.items():
            map_update_elem(fd, key, value)
    except BaseException:
        close(fd)
        raise
    return fd


def run_in_kernel(insns: list[Insn], maps: list[MapSpec], packet: bytes,
                  prog_type: ProgType = ProgType.XDP) -> KernelResult:
    """Load and run once on `packet` (no ctx_in: the kernel's defaults)."""
    fds: list[int] = []
    prog_fd: int | None = None
    btf_fd: int | None = None
    try:
        for spec in maps:
            fds.append(create_map(spec))
        btf: dict[str, int | bytes] = {}
        # taking a function's address needs func_info ("missing btf func_info" otherwise)
        if any(isinstance(i, LoadImm64) and i.kind == PseudoKind.FUNC for i in insns):
            btf_fd = btf_load(_FUNC_BTF)
            btf = dict(prog_btf_fd=btf_fd, func_info_rec_size=8, func_info=b"".join(
                struct.pack("<II", start, _FUNC_TYPE_ID) for start in subprogram_starts(insns)))
        loaded = prog_load(prog_type, encode(relocate(insns, fds)), license="GPL",
                           log_level=1, **btf)
        if not loaded.ok:
            return KernelResult(False, loaded.log)
        prog_fd = loaded.fd
        try:
            run = prog_test_run(prog_fd, data_in=packet, data_size_out=DATA_OUT_MAX)
        except BpfError as e:
            return KernelResult(True, loaded.log, run_error=str(e))
        contents = {spec.name: read_map(fd, spec) for spec, fd in zip(maps, fds, strict=True)}
        return KernelResult(True, loaded.log, run.retval, run.data_out, contents)
    finally:
        if prog_fd is not None:
            close(prog_fd)
        if btf_fd is not None:
            close(btf_fd)
        for fd in fds:
            close(fd)
