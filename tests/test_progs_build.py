"""Ground truth for the test programs in tests/progs.

Checks every claim of the table in tests/progs.py: each program builds for
each cpu from its min_cpu (and clang refuses older cpus with the recorded
error), the object has the recorded sections, programs, maps and instruction
features (read with pyelftools and a tiny independent decoder, not with
epass), and ``bpftool prog loadall`` (libbpf 1.1 + the running kernel's
verifier) loads the accept-programs and rejects the reject-programs with the
recorded message. Programs that BPF_PROG_TEST_RUN can run are run once on
progs.sample_packet() through ``bpftool prog run`` and must return the
recorded value.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

import progs

BPFTOOL = shutil.which("bpftool")
needs_bpftool = pytest.mark.skipif(BPFTOOL is None, reason="bpftool not installed")

BUILDS = list(progs.builds())
BUILD_IDS = [f"{n}-{c}" for n, c in BUILDS]
BELOW_MIN = [(p.name, c) for p in progs.PROGS for c in progs.CPUS[: progs.CPUS.index(p.min_cpu)]]


def _prog_params(pred) -> list:
    return [
        pytest.param(name, cpu, id=f"{name}-{cpu}") for name, cpu in BUILDS if pred(progs.get(name))
    ]


# --- the table itself ---------------------------------------------------------


def test_table_covers_every_file() -> None:
    files = {
        p.name.removesuffix(".bpf.c")
        for p in progs.PROGS_DIR.glob("*.bpf.c")
        if not p.name.startswith(progs.FOREIGN_PREFIXES)
    }
    names = [p.name for p in progs.PROGS]
    assert len(names) == len(set(names)), "duplicate names in progs.PROGS"
    assert files - set(names) == set(), "programs missing from tests/progs.py:PROGS"
    assert set(names) - files == set(), "PROGS entries without a .bpf.c file"


@pytest.mark.parametrize("prog", progs.PROGS, ids=lambda p: p.name)
def test_table_entry_is_consistent(prog: progs.Prog) -> None:
    assert prog.verdict in ("accept", "reject")
    assert (prog.verdict == "reject") == prog.name.startswith("reject_")
    assert prog.min_cpu in progs.CPUS
    assert (prog.min_cpu != "v2") == (prog.min_cpu_error is not None)
    assert prog.bpftool in ("load", "reject", "open-error")
    if prog.verdict == "reject":
        assert prog.bpftool == "reject"
    assert (prog.bpftool == "load") == (prog.bpftool_error is None)
    assert prog.programs, "every object has at least one program"
    funcs = {f for f, _ in prog.programs}
    assert {f for f, _ in prog.sample_retval} <= funcs
    if prog.test_run and prog.bpftool == "load":
        assert {f for f, _ in prog.sample_retval} == funcs, "test_run needs sample_retval"


@pytest.mark.parametrize("prog", progs.PROGS, ids=lambda p: p.name)
def test_source_has_header_comment_and_license(prog: progs.Prog) -> None:
    text = prog.source.read_text()
    head = text.split("#include", 1)[0]
    assert "/*" in head and prog.name in head, "header comment naming the file"
    m = re.search(r'SEC\("license"\)\s*=\s*"([^"]*)"', text)
    assert m and m.group(1) == prog.license


# --- building -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=BUILD_IDS)
def test_builds(built_progs, name: str, cpu: str) -> None:
    obj = built_progs[name, cpu]
    assert obj.is_file() and obj.stat().st_size > 0
    with obj.open("rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_BPF"
        assert elf.little_endian and elf.elfclass == 64


@pytest.mark.parametrize(("name", "cpu"), BELOW_MIN, ids=[f"{n}-{c}" for n, c in BELOW_MIN])
def test_below_min_cpu_does_not_build(requires_clang, tmp_path: Path, name: str, cpu: str) -> None:
    prog = progs.get(name)
    # clang-19 crashes (instead of diagnosing) on some atomics for v2: keep it
    # from dumping reproducer files into /tmp.
    with pytest.raises(progs.BuildError) as exc:
        progs.build(name, cpu, tmp_path, extra_flags=("-fno-crash-diagnostics",))
    assert prog.min_cpu_error in exc.value.stderr


def test_build_error_carries_stderr(requires_clang, tmp_path: Path) -> None:
    with pytest.raises(progs.BuildError) as exc:
        progs.build("v4_insns", "v2", tmp_path)
    assert "error:" in exc.value.stderr
    assert "v4_insns.bpf.c" in str(exc.value)
    assert not (tmp_path / "v4_insns.v2.o").exists()


# --- ELF contents ----------------------------------------------------------------


def _symbols(elf: ELFFile) -> list:
    symtab = elf.get_section_by_name(".symtab")
    assert symtab is not None, "no .symtab"
    return list(symtab.iter_symbols())


@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=BUILD_IDS)
def test_object_sections(built_progs, name: str, cpu: str) -> None:
    prog = progs.get(name)
    with built_progs[name, cpu].open("rb") as f:
        elf = ELFFile(f)
        sections = {s.name: i for i, s in enumerate(elf.iter_sections())}
        syms = _symbols(elf)

        # programs: one global FUNC symbol per program, in its section
        for func, sec in prog.programs:
            assert sec in sections, f"section {sec!r} missing"
            shdr = elf.get_section(sections[sec])
            assert shdr["sh_flags"] & SH_FLAGS.SHF_EXECINSTR
            match = [s for s in syms if s.name == func]
            assert len(match) == 1, f"symbol {func!r}"
            sym = match[0]
            assert sym["st_info"]["type"] == "STT_FUNC"
            assert sym["st_info"]["bind"] == "STB_GLOBAL"
            assert sym["st_shndx"] == sections[sec]
            assert sym["st_size"] > 0 and sym["st_size"] % 8 == 0
        prog_secs = {sections[s] for s in prog.sections}
        found = {
            s.name
            for s in syms
            if s["st_info"]["type"] == "STT_FUNC"
            and s["st_info"]["bind"] == "STB_GLOBAL"
            and s["st_shndx"] in prog_secs
        }
        assert found == {f for f, _ in prog.programs}, "unexpected programs"

        # .text holds subprograms / callbacks iff the table says so
        text = elf.get_section_by_name(".text")
        has_text = text is not None and text["sh_size"] > 0
        assert has_text == prog.subprogs

        lic = elf.get_section_by_name("license")
        assert lic is not None and lic.data().rstrip(b"\0").decode() == prog.license

        map_secs = {sections[s] for s in (".maps", "maps") if s in sections}
        maps = {
            s.name
            for s in syms
            if s["st_shndx"] in map_secs and s["st_info"]["type"] == "STT_OBJECT"
        }
        assert maps == set(prog.maps)
        if prog.bpftool_error == progs.LEGACY_MAPS:
            assert "maps" in sections and ".maps" not in sections

        for sec in prog.data_sections:
            assert sec in sections, f"global-data section {sec} missing"
        assert ".BTF" in sections and ".BTF.ext" in sections


# --- instruction features (independent mini-decoder) ---------------------------

HELPER_NAMES = {
    1: "bpf_map_lookup_elem",
    26: "bpf_skb_load_bytes",
    131: "bpf_ringbuf_reserve",
    132: "bpf_ringbuf_submit",
    133: "bpf_ringbuf_discard",
    164: "bpf_for_each_map_elem",
    181: "bpf_loop",
}


def insn_features(code_bytes: bytes) -> set[str]:
    """Names of the instruction features present in a section's bytecode."""
    feats: set[str] = set()
    i = 0
    while i + 8 <= len(code_bytes):
        code, regs, off, imm = struct.unpack_from("<BBhi", code_bytes, i)
        cls, src = code & 0x07, regs >> 4
        if code == 0x18:  # ld_imm64: two slots
            i += 16
            continue
        if cls == 0x00 and code & 0xE0 == 0x20:
            feats.add("ld_abs")
        elif cls == 0x00 and code & 0xE0 == 0x40:
            feats.add("ld_ind")
        elif cls == 0x01 and code & 0xE0 == 0x80:
            feats.add("ldsx")
        elif cls == 0x03 and code & 0xE0 == 0xC0:
            feats.add("atomic")
            if code & 0x18 == 0x00:
                feats.add("atomic32")
            if imm == 0xE1:
                feats.add("xchg")
            elif imm == 0xF1:
                feats.add("cmpxchg")
            elif imm & 0x01:
                feats.add("atomic_fetch")
        elif cls in (0x04, 0x07):
            op = code & 0xF0
            if op == 0xB0 and off in (8, 16, 32):
                feats.add("movsx")
            elif op == 0x30 and off == 1:
                feats.add("sdiv")
            elif op == 0x90 and off == 1:
                feats.add("smod")
            elif op == 0xD0 and cls == 0x07:
                feats.add("bswap")
        elif cls in (0x05, 0x06):
            op = code & 0xF0
            if op == 0x80:
                if src == 1:
                    feats.add("pseudo_call")
                elif src == 0:
                    feats.add(f"helper:{HELPER_NAMES.get(imm, imm)}")
            elif op != 0x90 and off < 0:
                feats.add("back_edge")
        i += 8
    return feats


@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=BUILD_IDS)
def test_instruction_features(built_progs, name: str, cpu: str) -> None:
    prog = progs.get(name)
    feats: set[str] = set()
    with built_progs[name, cpu].open("rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR:
                feats |= insn_features(sec.data())
    assert prog.features <= feats, f"missing {sorted(prog.features - feats)}"
    # cpu-gated encodings never appear in builds for older cpus
    if cpu != "v4":
        assert not feats & {"ldsx", "movsx", "sdiv", "smod", "bswap"}
    if cpu == "v2":
        assert not feats & {"atomic32", "atomic_fetch", "xchg", "cmpxchg"}


# --- bpftool: libbpf + the kernel verifier ------------------------------------


def _bpftool(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BPFTOOL or "bpftool", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _skip_if_env_refuses(prog: progs.Prog, out: str) -> None:
    if "trampoline" in prog.requires and "Operation not permitted" in out:
        pytest.skip(
            "this kernel refuses fentry/fexit loads with EPERM before verification "
            "(BPF trampolines unavailable here); see tests/progs/README.md"
        )


@needs_bpftool
@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=BUILD_IDS)
def test_bpftool_loadall(built_progs, bpf_permitted, bpffs: Path, name: str, cpu: str) -> None:
    prog = progs.get(name)
    proc = _bpftool("prog", "loadall", str(built_progs[name, cpu]), str(bpffs))
    out = proc.stdout + proc.stderr
    pinned = sorted(p.name for p in bpffs.iterdir())
    if prog.bpftool == "load":
        if proc.returncode != 0:
            _skip_if_env_refuses(prog, out)
        assert proc.returncode == 0, out[-3000:]
        assert pinned == sorted(f for f, _ in prog.programs)
    else:
        assert proc.returncode != 0, f"bpftool unexpectedly loaded {name}"
        assert prog.bpftool_error in out, out[-3000:]
        assert pinned == []


@needs_bpftool
@pytest.mark.parametrize(
    ("name", "cpu"), _prog_params(lambda p: p.test_run and p.bpftool == "load")
)
def test_bpftool_run_sample(
    built_progs, bpf_permitted, bpffs: Path, tmp_path: Path, name: str, cpu: str
) -> None:
    prog = progs.get(name)
    proc = _bpftool("prog", "loadall", str(built_progs[name, cpu]), str(bpffs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    pkt = progs.sample_packet()
    data_in = tmp_path / "in.bin"
    data_in.write_bytes(pkt)
    for func, expected in prog.sample_retval:
        data_out = tmp_path / f"{func}.out"
        run = _bpftool(
            "-j",
            "prog",
            "run",
            "pinned",
            str(bpffs / func),
            "data_in",
            str(data_in),
            "data_out",
            str(data_out),
            "repeat",
            "1",
        )
        assert run.returncode == 0, run.stderr[-2000:]
        res = json.loads(run.stdout)
        assert res["retval"] == expected, f"{func}: retval {res['retval']}"
        out = data_out.read_bytes()
        section = dict(prog.programs)[func]
        if section == "socket":
            # Non-L2 program types (socket filters) see skb->data at the IPv4
            # header; the kernel hands back data_out with the 14-byte
            # Ethernet header zeroed.
            assert out[:14] == bytes(14)
            out, pkt_cmp = out[14:], pkt[14:]
        else:
            pkt_cmp = pkt
        assert (out != pkt_cmp) == prog.rewrites_packet


# --- legacy "maps" section: the kernel's verdict without libbpf ----------------


def _raw_bpf(cmd: int, attr: bytes) -> tuple[int, int]:
    nr = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
    if nr is None:
        pytest.skip(f"bpf() syscall number unknown for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, 144)
    fd = libc.syscall(nr, cmd, buf, 144)
    return fd, ctypes.get_errno()


@pytest.mark.parametrize(("name", "cpu"), _prog_params(lambda p: p.bpftool == "open-error"))
def test_kernel_accepts_legacy_map_program(built_progs, bpf_permitted, name: str, cpu: str) -> None:
    """libbpf 1.x cannot open legacy-map objects; a 30-line loader shows the
    kernel itself accepts the program (the table's verdict)."""
    prog = progs.get(name)
    fds: list[int] = []
    try:
        with built_progs[name, cpu].open("rb") as f:
            elf = ELFFile(f)
            maps_idx = next(i for i, s in enumerate(elf.iter_sections()) if s.name == "maps")
            maps_data = elf.get_section(maps_idx).data()
            symtab = elf.get_section_by_name(".symtab")
            map_fd: dict[str, int] = {}
            for sym in symtab.iter_symbols():
                if sym["st_shndx"] == maps_idx and sym["st_info"]["type"] == "STT_OBJECT":
                    # struct bpf_map_def: type, key_size, value_size, max_entries, map_flags
                    fields = struct.unpack_from("<5I", maps_data, sym["st_value"])
                    fd, err = _raw_bpf(0, struct.pack("<5I", *fields))  # BPF_MAP_CREATE
                    assert fd >= 0, f"map {sym.name}: {os.strerror(err)}"
                    fds.append(fd)
                    map_fd[sym.name] = fd
            assert sorted(map_fd) == sorted(prog.maps)
            ((func, sec),) = prog.programs
            insns = bytearray(elf.get_section_by_name(sec).data())
            for rel in elf.get_section_by_name(f".rel{sec}").iter_relocations():
                sym = symtab.get_symbol(rel["r_info_sym"])
                off = rel["r_offset"]
                assert insns[off] == 0x18, "map relocation on a non-ld_imm64"
                insns[off + 1] = (insns[off + 1] & 0x0F) | (1 << 4)  # BPF_PSEUDO_MAP_FD
                struct.pack_into("<i", insns, off + 4, map_fd[sym.name])
        code = ctypes.create_string_buffer(bytes(insns), len(insns))
        lic = ctypes.create_string_buffer(prog.license.encode())
        log = ctypes.create_string_buffer(1 << 16)
        attr = struct.pack(
            "<IIQQIIQ",
            1,
            len(insns) // 8,
            ctypes.addressof(code),
            ctypes.addressof(lic),
            1,
            len(log),
            ctypes.addressof(log),
        )  # BPF_PROG_TYPE_SOCKET_FILTER, log_level 1
        fd, err = _raw_bpf(5, attr)  # BPF_PROG_LOAD
        assert fd >= 0, f"{os.strerror(err)}\n{log.value.decode(errors='replace')[-2000:]}"
        fds.append(fd)
    finally:
        for fd in fds:
            os.close(fd)
