"""Load a `BpfObject` into the running kernel by ourselves, without libbpf.

`LoadedObject` owns the kernel objects of one object file: its BTF, its
maps (global data filled in, .rodata frozen), and the programs loaded
from it. Map references become `map[fd:N]` / `map[fd:N][0]+off` lddws at
load time, so a transformed program can be loaded against the same maps.
"""

from __future__ import annotations

import errno as _errno
import os
from dataclasses import dataclass, field, replace

from epass.errors import EpassError, KernelError, ObjectError
from epass.isa import Insn, LoadImm64, PseudoKind, encode
from epass.kernel import syscall
from epass.obj.btf import BtfKind, load_vmlinux_btf
from epass.obj.btf_ext import encode_func_info, encode_line_info
from epass.obj.model import BpfObject, MapDef, MapOrigin, Program
from epass.uapi import BPF_LOG_STATS, MapType

FUNC_INFO_REC_SIZE = 8
LINE_INFO_REC_SIZE = 16


@dataclass
class ProgramLoad:
    """What the kernel said about one program."""

    program: Program
    fd: int | None
    errno: int
    log: str
    insn_count: int  # slots submitted
    xlated_count: int | None = None  # slots after the kernel's rewrites (accepted only)
    verified_insns: int | None = None

    @property
    def accepted(self) -> bool:
        return self.fd is not None


@dataclass
class LoadedObject:
    """Kernel objects created for one object file; close() releases them."""

    obj: BpfObject
    btf_fd: int | None = None
    map_fds: dict[str, int] = field(default_factory=dict)
    prog_fds: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __enter__(self) -> LoadedObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for fd in [*self.prog_fds, *self.map_fds.values()]:
            syscall.close(fd)
        if self.btf_fd is not None:
            syscall.close(self.btf_fd)
        self.prog_fds.clear()
        self.map_fds.clear()
        self.btf_fd = None

    def resolve_maps(self, program: Program, insns: list[Insn] | None = None) -> list[Insn]:
        """The program's instructions with every map reference pointing at our map fds."""
        out = list(program.insns if insns is None else insns)
        slot_to_pos: dict[int, int] = {}
        slot = 0
        for pos, insn in enumerate(out):
            slot_to_pos[slot] = pos
            slot += 2 if isinstance(insn, LoadImm64) else 1
        for ref in program.map_refs:
            pos = slot_to_pos.get(ref.insn)
            if pos is None or not isinstance(out[pos], LoadImm64):
                raise ObjectError(f"map reference to {ref.map} is not on an lddw",
                                  section=program.section, index=ref.insn)
            fd = self.map_fds[ref.map]
            if ref.value:
                out[pos] = replace(out[pos], imm=fd, kind=PseudoKind.MAP_VALUE, aux=ref.offset)
            else:
                out[pos] = replace(out[pos], imm=fd, kind=PseudoKind.MAP_FD, aux=0)
        return out

    def load_program(self, program: Program, *, log_level: int = 1,
                     insns: list[Insn] | None = None, with_btf: bool = True) -> ProgramLoad:
        """Submit the program to the verifier; a rejection is a result, not an exception.

        `insns` replaces the program's code (same map references), for transformed programs.
        """
        if program.kind is None:
            raise ObjectError("no program type is known for this section",
                              section=program.section)
        try:
            return self._load(program, log_level, insns, with_btf)
        except EpassError as e:
            raise e.at(file=self.obj.path, section=program.section) from None

    def _load(self, program: Program, log_level: int, insns: list[Insn] | None,
              with_btf: bool) -> ProgramLoad:
        code = encode(self.resolve_maps(program, insns))
        use_btf = with_btf and self.btf_fd is not None and insns is None
        try:
            result = self._prog_load(program, code, use_btf, log_level)
        except syscall.BpfError as e:
            # EPERM before the verifier ran while bpf() works here: the kernel refuses this
            # program type or attach point (no trampolines, lockdown); a rejection, not ours
            if e.errno != _errno.EPERM or syscall.bpf_permitted() is not None:
                raise
            result = syscall.ProgLoadResult(None, e.errno, "")
        load = ProgramLoad(program, result.fd, result.errno, result.log, len(code) // 8)
        if result.fd is not None:
            self.prog_fds.append(result.fd)
            info = syscall.prog_get_info(result.fd)
            load.xlated_count = len(info.xlated_insns) // 8 if info.xlated_insns else None
            load.verified_insns = info.verified_insns
        return load

    def _prog_load(self, program: Program, code: bytes, use_btf: bool,
                   log_level: int) -> syscall.ProgLoadResult:
        kind = program.kind
        assert kind is not None
        return syscall.prog_load(
            kind.prog_type,
            code,
            license=self.obj.license,
            name=program.name,
            expected_attach_type=int(kind.expected_attach_type or 0),
            attach_btf_id=_attach_btf_id(program),
            prog_flags=kind.prog_flags,
            kern_version=self.obj.kern_version or _kernel_version(),
            prog_btf_fd=self.btf_fd if use_btf else 0,
            func_info=encode_func_info(program.func_info) if use_btf else b"",
            func_info_rec_size=FUNC_INFO_REC_SIZE,
            line_info=encode_line_info(program.line_info) if use_btf else b"",
            line_info_rec_size=LINE_INFO_REC_SIZE,
            log_level=log_level | BPF_LOG_STATS,  # statistics at every level, 0 included
        )


def open_object(obj: BpfObject) -> LoadedObject:
    """Create the object's BTF and maps in the kernel (programs load one by one)."""
    loaded = LoadedObject(obj)
    try:
        if obj.btf_raw is not None:
            try:
                loaded.btf_fd = syscall.btf_load(obj.btf_raw)
            except syscall.BpfError as e:
                if e.errno in (_errno.EPERM, _errno.EACCES):
                    raise
                # like libbpf: go on without BTF (no source lines, no func_info)
                loaded.warnings.append(f"kernel refused the object's BTF: {e.message}")
        for m in obj.maps:
            loaded.map_fds[m.name] = _create_map(loaded, m)
    except BaseException:
        loaded.close()
        raise
    return loaded


def _map_object_name(obj: BpfObject, m: MapDef) -> str:
    if m.origin != MapOrigin.DATA:
        return m.name
    # libbpf names internal maps "<object prefix><section>", within 15 characters
    base = os.path.basename(obj.path).split(".")[0]
    suffix = m.name[:15]
    return base[: max(0, 15 - len(suffix))] + suffix


def _create_map(loaded: LoadedObject, m: MapDef) -> int:
    max_entries = m.max_entries
    if m.type == MapType.PERF_EVENT_ARRAY and max_entries == 0:
        max_entries = os.cpu_count() or 1  # libbpf sizes it to the possible CPUs
    name = _map_object_name(loaded.obj, m)

    def create(with_btf: bool) -> int:
        btf = with_btf and loaded.btf_fd is not None and bool(m.btf_value_type_id)
        return syscall.map_create(
            m.type, m.key_size, m.value_size, max_entries,
            flags=m.flags, name=name, map_extra=m.map_extra, numa_node=m.numa_node,
            btf_fd=loaded.btf_fd if btf else 0,
            btf_key_type_id=m.btf_key_type_id if btf else 0,
            btf_value_type_id=m.btf_value_type_id if btf else 0,
        )

    try:
        try:
            fd = create(True)
        except syscall.BpfError as e:
            if e.errno != _errno.EINVAL or not m.btf_value_type_id:
                raise
            loaded.warnings.append(f"map {m.name}: created without BTF ({e.message})")
            fd = create(False)
    except syscall.BpfError as e:
        if e.errno in (_errno.EPERM, _errno.EACCES):
            raise
        hint = ""
        if m.type == MapType.RINGBUF and e.errno == _errno.EINVAL:
            hint = " (a ringbuf's max_entries must be a power-of-2 multiple of the page size)"
        raise KernelError(f"cannot create map {m.name!r}: {e.message}{hint}",
                          file=loaded.obj.path, section=m.section) from None
    try:
        if m.origin == MapOrigin.DATA:
            if m.initial is not None:
                syscall.map_update_elem(fd, b"\0\0\0\0", m.initial)
            if m.readonly:
                syscall.map_freeze(fd)
    except syscall.BpfError as e:
        syscall.close(fd)
        raise KernelError(f"cannot fill map {m.name!r}: {e.message}", file=loaded.obj.path,
                          section=m.section) from None
    return fd


def _attach_btf_id(program: Program) -> int:
    kind = program.kind
    if kind is None or kind.btf_attach_name is None:
        return 0
    name, btf_kind = kind.btf_attach_name
    ids = load_vmlinux_btf().find(BtfKind[btf_kind.upper()], name)
    if not ids:
        raise ObjectError(f"attach target {name!r} is not in the running kernel's BTF",
                          section=program.section)  # LoadedObject.load_program adds the file
    return ids[0]


def _kernel_version() -> int:
    """LINUX_VERSION_CODE of the running kernel (kprobes on old kernels check it)."""
    release = os.uname().release.split("-")[0].split(".")
    try:
        major, minor, patch = (int(x) for x in (release + ["0", "0"])[:3])
    except ValueError:
        return 0
    return (major << 16) | (minor << 8) | min(patch, 255)
