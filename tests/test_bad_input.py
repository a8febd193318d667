"""Bad input is a first-class case: one clear line naming file, section and
instruction, exit code 2, no traceback -- for every kind we know of."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

import progs
from cli import epass

pytestmark = progs.skip_without_clang


def _compile(tmp_path: Path, source: str, *flags: str, name: str = "x") -> Path:
    src = tmp_path / f"{name}.bpf.c"
    src.write_text(source)
    out = tmp_path / f"{name}.o"
    subprocess.run([progs.CLANG, *progs.CFLAGS, *progs.INCLUDES, *flags, "-c", str(src),
                    "-o", str(out)], check=True, capture_output=True)
    return out


MINIMAL = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("%s") int prog(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return _compile(tmp_path, MINIMAL % "xdp", name="good")


def _section(path: Path, name: str) -> tuple[int, int]:
    """(file offset, size) of a section."""
    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        return sec["sh_offset"], sec["sh_size"]


def _patch(path: Path, offset: int, data: bytes) -> Path:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    out = path.with_name("patched.o")
    out.write_bytes(bytes(raw))
    return out


def _expect(args: list[str], line: str) -> None:
    run = epass(*args)
    assert run.code == 2, run
    assert run.err == f"epass: error: {line}\n"
    assert run.out == ""


def test_missing_file(tmp_path):
    path = tmp_path / "nope.o"
    _expect(["read", str(path)], f"{path}: cannot read: No such file or directory")


def test_not_an_elf_file(tmp_path):
    path = tmp_path / "text.o"
    path.write_text("hello, this is not an object\n")
    _expect(["read", str(path)], f"{path}: not an ELF file (bad magic)")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.o"
    path.write_bytes(b"")
    _expect(["verify", str(path)], f"{path}: not an ELF file (bad magic)")


def test_truncated_headers(good):
    cut = good.with_name("cut.o")
    cut.write_bytes(good.read_bytes()[:40])
    _expect(["read", str(cut)], f"{cut}: truncated ELF file (40 bytes)")


def test_truncated_section_headers(good):
    size = good.stat().st_size
    cut = good.with_name("cut.o")
    cut.write_bytes(good.read_bytes()[: size - 100])
    with open(good, "rb") as f:
        hdr = ELFFile(f).header
    end = hdr["e_shoff"] + hdr["e_shnum"] * hdr["e_shentsize"]
    _expect(["read", str(cut)],
            f"{cut}: truncated ELF file: section headers end at {end}, file has {size - 100} bytes")


def test_section_data_past_end_of_file(good):
    # point the xdp section's data past the end of the file
    with open(good, "rb") as f:
        elf = ELFFile(f)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == "xdp")
        shdr = elf.header["e_shoff"] + index * elf.header["e_shentsize"]
    bad = _patch(good, shdr + 24, struct.pack("<Q", 1 << 20))  # sh_offset
    _expect(["read", str(bad)], f"{bad}: truncated ELF file: section xdp ends past the end "
                                "of the file")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_wrong_machine(tmp_path):
    src = tmp_path / "host.c"
    src.write_text("int f(void) { return 1; }\n")
    out = tmp_path / "host.o"
    subprocess.run(["gcc", "-c", str(src), "-o", str(out)], check=True)
    _expect(["read", str(out)], f"{out}: not a BPF object: machine is EM_X86_64, expected EM_BPF")


def test_32_bit_elf(good):
    bad = _patch(good, 4, b"\x01")  # EI_CLASS = ELFCLASS32
    _expect(["read", str(bad)], f"{bad}: not a BPF object: ELF class 32, expected 64")


def test_big_endian_object(tmp_path):
    path = _compile(tmp_path, MINIMAL % "xdp", "-target", "bpfeb", name="be")
    _expect(["read", str(path)], f"{path}: big-endian BPF objects are not supported")


def test_not_a_relocatable_object(good):
    bad = _patch(good, 16, struct.pack("<H", 2))  # e_type = ET_EXEC
    _expect(["read", str(bad)], f"{bad}: not a BPF object file: ELF type ET_EXEC, expected ET_REL")


def test_unknown_section(tmp_path):
    path = _compile(tmp_path, MINIMAL % "not_a_hook", name="unknown")
    _expect(["read", str(path)],
            f"{path}: section not_a_hook: unknown program section: its name follows none of "
            "libbpf's conventions (xdp, tc, socket, kprobe/..., tracepoint/..., ...)")


def test_reserved_field_set(good):
    offset, size = _section(good, "xdp")
    assert size == 16  # w0 = 2; exit
    bad = _patch(good, offset + 9, b"\x10")  # exit with src_reg = 1
    _expect(["read", str(bad)],
            f"{bad}: section xdp: insn 1: reserved field src_reg is set (1) (opcode 0x95)")


def test_unknown_opcode(good):
    offset, _ = _section(good, "xdp")
    bad = _patch(good, offset + 8, b"\xf7")  # ALU64 op 0xf0 does not exist
    _expect(["verify", str(bad)], f"{bad}: section xdp: insn 1: unknown opcode (opcode 0xf7)")


def test_invalid_register(good):
    offset, _ = _section(good, "xdp")
    bad = _patch(good, offset + 1, b"\x0b")  # w11 = 2
    _expect(["read", str(bad)],
            f"{bad}: section xdp: insn 0: invalid register r11 in dst_reg (opcode 0xb7)")


def test_malformed_btf(good):
    offset, _ = _section(good, ".BTF")
    bad = _patch(good, offset, b"\x00\x00")
    _expect(["read", str(bad)], f"{bad}: section .BTF: bad BTF magic 0x0000 (expected 0xeb9f)")


def test_extern_kconfig_variable(tmp_path):
    path = _compile(tmp_path, """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
SEC("xdp") int prog(struct xdp_md *ctx) { return LINUX_KERNEL_VERSION & 3; }
char LICENSE[] SEC("license") = "GPL";
""", name="kconfig")
    run = epass("read", str(path))
    assert run.code == 2
    assert run.err == (f"epass: error: {path}: section xdp: insn 0: extern symbol "
                       "'LINUX_KERNEL_VERSION' (__ksym/__kconfig) is not supported\n")


def test_unknown_section_option(good):
    _expect(["read", str(good), "--section", "tc"],
            f"{good}: no program in section 'tc'; sections: xdp (prog)")


def test_directory(tmp_path):
    _expect(["read", str(tmp_path)], f"{tmp_path}: cannot read: Is a directory")


def test_verify_without_bpf_permission(good):
    # a world-readable copy, so that the unprivileged user can read it
    shared = Path(tempfile.mkdtemp(prefix="epass-"))
    try:
        shared.chmod(0o755)
        obj = shared / "good.o"
        shutil.copy(good, obj)
        obj.chmod(0o644)
        run = epass("verify", str(obj), user="65534")
    finally:
        shutil.rmtree(shared)
    assert run.code == 2, run
    assert run.err.startswith("epass: error: bpf(")
    assert "is not permitted here: needs root or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN" in run.err
    assert run.err.count("\n") == 1


def test_map_in_map_is_refused(tmp_path):
    path = _compile(tmp_path, """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
               __type(key, int); __type(value, int); } inner SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 1); __type(key, int);
         __array(values, struct inner); } outer SEC(".maps") = { .values = { &inner } };
SEC("xdp") int prog(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
""", name="mim")
    _expect(["read", str(path)],
            f"{path}: section .maps: map 'outer': attribute 'values' (map-in-map / prog-array "
            "initial values) is not supported")


def test_section_name_table_past_the_end(good):
    with open(good, "rb") as f:
        hdr = ELFFile(f).header
    at = hdr["e_shoff"] + hdr["e_shstrndx"] * hdr["e_shentsize"] + 24  # its sh_offset
    bad = _patch(good, at, struct.pack("<Q", 2**64 - 1))
    _expect(["read", str(bad)], f"{bad}: truncated ELF file: section #{hdr['e_shstrndx']} ends "
                                "past the end of the file")


def test_compressed_section(good):
    with open(good, "rb") as f:
        elf = ELFFile(f)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == "license")
        at = elf.header["e_shoff"] + index * elf.header["e_shentsize"] + 8  # sh_flags
        flags = elf.get_section(index)["sh_flags"]
    bad = _patch(good, at, struct.pack("<Q", flags | 0x800))
    _expect(["read", str(bad)], f"{bad}: section license: compressed sections are not supported")


def test_addr_space_cast_is_named(good):
    offset, _ = _section(good, "xdp")
    # r0 = addr_space_cast(r1, 0, 1): ALU64 MOV X with off=1
    bad = _patch(good, offset, bytes.fromhex("bf10010001000000"))
    _expect(["read", str(bad)], f"{bad}: section xdp: insn 0: addr_space_cast (arena pointer "
                                "cast) is not supported (opcode 0xbf)")
