"""BTF, .BTF.ext and CO-RE: exact values from small clang-built programs and
from the running kernel's BTF, plus malformed-input handling."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import random
import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from epass.errors import BTFError, KernelError
from epass.obj.btf import (
    Btf,
    BtfArray,
    BtfDatasec,
    BtfEnum,
    BtfFunc,
    BtfInt,
    BtfKind,
    BtfRef,
    BtfStruct,
    BtfVar,
    EnumValue,
    Member,
    VarLinkage,
    VarSecinfo,
    fixup_datasecs,
    load_vmlinux_btf,
)
from epass.obj.btf_ext import (
    BtfExt,
    CoreRelo,
    CoreReloKind,
    FuncInfo,
    LineInfo,
    encode_func_info,
    encode_line_info,
)
from epass.obj.core import essential_name, resolve_core_relo

CLANG = "clang-19"
VMLINUX = Path("/sys/kernel/btf/vmlinux")

needs_clang = pytest.mark.skipif(shutil.which(CLANG) is None, reason=f"{CLANG} not installed")
needs_vmlinux = pytest.mark.skipif(not VMLINUX.exists(), reason="no /sys/kernel/btf/vmlinux")


# ------------------------------------------------------------------ helpers


@dataclass(frozen=True)
class Obj:
    """What the tests need from a compiled object, read with pyelftools."""

    path: Path
    btf: bytes
    btf_ext: bytes
    section_sizes: dict[str, int]
    section_data: dict[str, bytes]
    symbols: dict[tuple[str, str], int]
    hidden: frozenset[tuple[str, str]]
    functions: dict[tuple[str, str], int]  # (section, name) -> instruction index


def compile_bpf(tmp_path: Path, name: str, source: str) -> Obj:
    src = tmp_path / f"{name}.bpf.c"
    src.write_text(source)
    out = tmp_path / f"{name}.o"
    subprocess.run(
        [CLANG, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
         "-c", str(src), "-o", str(out)],
        check=True,
        capture_output=True,
    )
    return read_obj(out)


def read_obj(path: Path) -> Obj:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        sizes: dict[str, int] = {}
        datas: dict[str, bytes] = {}
        names: dict[int, str] = {}
        for idx, sec in enumerate(elf.iter_sections()):
            names[idx] = sec.name
            sizes[sec.name] = sec["sh_size"]
            if sec["sh_type"] != "SHT_NOBITS":
                datas[sec.name] = sec.data()
        symbols: dict[tuple[str, str], int] = {}
        hidden: set[tuple[str, str]] = set()
        functions: dict[tuple[str, str], int] = {}
        for sym in elf.get_section_by_name(".symtab").iter_symbols():
            shndx = sym["st_shndx"]
            if not isinstance(shndx, int):
                continue
            key = (names[shndx], sym.name)
            if sym["st_info"]["type"] == "STT_FUNC":
                functions[key] = sym["st_value"] // 8
            if sym["st_info"]["type"] != "STT_OBJECT":
                continue
            symbols[key] = sym["st_value"]
            if sym["st_other"]["visibility"] in ("STV_HIDDEN", "STV_INTERNAL"):
                hidden.add(key)
    return Obj(path, datas[".BTF"], datas.get(".BTF.ext", b""), sizes, datas, symbols,
               frozenset(hidden), functions)


def fixed_btf(obj: Obj) -> Btf:
    return fixup_datasecs(Btf.parse(obj.btf), obj.section_sizes, obj.symbols,
                          hidden_symbols=obj.hidden)


# --- a tiny bpf(2) through ctypes, enough for BTF_LOAD and PROG_LOAD

_BPF_NR = {"x86_64": 321, "aarch64": 280}
BPF_PROG_LOAD = 5
BPF_BTF_LOAD = 18
PROG_TYPE_SOCKET_FILTER = 1
PROG_TYPE_KPROBE = 2


def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    nr = _BPF_NR.get(platform.machine())
    if nr is None:
        pytest.skip(f"bpf(2) number unknown for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(ctypes.c_long(nr), ctypes.c_long(cmd), attr, ctypes.c_long(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        if err == errno.EPERM:
            pytest.skip("bpf() returned EPERM: need root / CAP_BPF")
        raise OSError(err, os.strerror(err))
    return int(ret)


def addr(buf: ctypes.Array[ctypes.c_char]) -> int:
    return ctypes.addressof(buf)


def btf_load(raw: bytes) -> tuple[int, str]:
    """(fd or -errno, verifier log)."""
    data = ctypes.create_string_buffer(raw, len(raw))
    log = ctypes.create_string_buffer(1 << 16)
    attr = ctypes.create_string_buffer(
        struct.pack("<QQIIIIIi", addr(data), addr(log), len(raw), len(log), 1, 0, 0, 0)
    )
    try:
        fd = bpf(BPF_BTF_LOAD, attr)
    except OSError as e:
        return -(e.errno or 1), log.value.decode(errors="replace")
    return fd, log.value.decode(errors="replace")


def prog_load(
    prog_type: int,
    insns: bytes,
    btf_fd: int,
    func_info: bytes,
    line_info: bytes,
) -> tuple[int, str]:
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 20)
    fi = ctypes.create_string_buffer(func_info, max(len(func_info), 1))
    li = ctypes.create_string_buffer(line_info, max(len(line_info), 1))
    attr = struct.pack(
        "<IIQQIIQII16sIIIIQIIQII",
        prog_type, len(insns) // 8, addr(code), addr(lic),
        1, len(log), addr(log),
        0, 0, b"epass_test", 0, 0,
        btf_fd, 8, addr(fi), len(func_info) // 8,
        16, addr(li), len(line_info) // 16,
        0,
    )
    buf = ctypes.create_string_buffer(attr + bytes(128 - len(attr)))
    try:
        fd = bpf(BPF_PROG_LOAD, buf)
    except OSError as e:
        return -(e.errno or 1), log.value.decode(errors="replace")
    return fd, log.value.decode(errors="replace")


def bpftool_raw_vmlinux() -> str:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed")
    return subprocess.run(
        ["bpftool", "btf", "dump", "file", str(VMLINUX), "format", "raw"],
        check=True, capture_output=True, text=True,
    ).stdout


def bpftool_block(dump: str, header_re: str) -> list[str]:
    """The lines of the first `[id] KIND 'name' ...` entry matching header_re."""
    lines = dump.splitlines()
    for i, line in enumerate(lines):
        if re.match(header_re, line):
            block = [line]
            for nxt in lines[i + 1 :]:
                if nxt.startswith("["):
                    break
                block.append(nxt)
            return block
    raise AssertionError(f"{header_re} not in bpftool output")


# ------------------------------------------------------------ BPF sources

STRUCTS_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

typedef unsigned int u32_t;
enum color { RED = 1, GREEN = 2, BLUE = -1 };

struct sample {
    char c;
    int i;
    long long ll;
    unsigned int f1 : 3, f2 : 5;
    short arr[3];
    union {
        int u1;
        char u2;
    };
    struct sample *next;
    enum color col;
    u32_t tail[0];
};

struct sample g_sample;
"""

GLOBALS_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct pair { int a; char b; long long c; };
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, int);
    __type(value, struct pair);
} m SEC(".maps");

int counter = 1;
static volatile int scounter = 3;
long zero_var;
const volatile int ro = 7;
char buf[16];
__attribute__((visibility("hidden"))) int hidden_var;

SEC("socket")
int prog(struct __sk_buff *skb)
{
    int k = 0;
    struct pair *p = bpf_map_lookup_elem(&m, &k);
    if (!p)
        return 0;
    counter += p->a + scounter + ro;
    zero_var++;
    hidden_var++;
    buf[1] = 2;
    return p->b;
}

char LICENSE[] SEC("license") = "GPL";
"""

LINES_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__attribute__((noinline)) int helper_fn(int x)
{
    return x * 3 + 1; /* L_HELPER */
}

static __attribute__((noinline)) int other_fn(int y)
{
    return y ^ 0x55; /* L_OTHER */
}

SEC("socket")
int entry(struct __sk_buff *skb) /* L_ENTRY */
{
    int len = skb->len; /* L_LEN */
    if (len > 100) /* L_IF */
        return helper_fn(len) + other_fn(len);
    return 0;
}

SEC("socket")
int plain(struct __sk_buff *skb)
{
    __u32 a = skb->len; /* L_A */
    __u32 b = skb->protocol; /* L_B */
    if (a > b) /* L_CMP */
        return 1;
    return a & 7; /* L_RET */
}

char LICENSE[] SEC("license") = "GPL";
"""

CORE_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct {
    int pid;
    int tgid;
    int epass_no_such_field;
} __attribute__((preserve_access_index));

enum pid_type___local { PIDTYPE_PID___x, PIDTYPE_TGID___y };

SEC("kprobe/do_nanosleep")
int probe(void *ctx)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    int pid = BPF_CORE_READ(t, pid);
    int tgid = BPF_CORE_READ(t, tgid);
    int has = bpf_core_field_exists(t->epass_no_such_field);
    int sz = bpf_core_type_size(struct task_struct);
    int ex = bpf_core_type_exists(struct task_struct);
    long ev = bpf_core_enum_value(enum pid_type___local, PIDTYPE_TGID___y);
    return pid + tgid + has + sz + ex + ev;
}

SEC("kprobe/do_nanosleep")
int missing(void *ctx)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    return BPF_CORE_READ(t, epass_no_such_field);
}

SEC("kprobe/do_nanosleep")
int matches(void *ctx)
{
    return bpf_core_type_matches(struct task_struct);
}

char LICENSE[] SEC("license") = "GPL";
"""


EXTERNS_SRC = r"""
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern struct task_struct *bpf_task_acquire(struct task_struct *) __ksym;
extern const void bpf_prog_active __ksym;
extern int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig __weak;
extern char CONFIG_LOCALVERSION[16] __kconfig __weak;
extern unsigned long long CONFIG_HZ __kconfig __weak;

SEC("tp_btf/sys_enter")
int p(void *ctx)
{
    bpf_rcu_read_lock();
    bpf_rcu_read_unlock();
    bpf_task_acquire(0);
    return LINUX_KERNEL_VERSION + CONFIG_BPF_SYSCALL + CONFIG_LOCALVERSION[0] + CONFIG_HZ
           + (long)&bpf_prog_active;
}

char LICENSE[] SEC("license") = "GPL";
"""

EXTERN_CALL_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int other_obj_fn(int);

SEC("socket")
int p(void *ctx) { return other_obj_fn(3); }
"""


CORE_TARGET_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct foo { int a; unsigned int x : 3, y : 7; signed char arr[4]; long long z; };
struct bar { int a; int b; };
struct bar___v2 { int b; };
enum e { E_A = 5, E_B = -3 };

struct foo g_foo;
struct bar g_bar;
struct bar___v2 g_bar2;
enum e g_e;
"""

CORE_LOCAL_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct foo {
    unsigned int y : 7;
    long long z;
    signed char arr[4];
} __attribute__((preserve_access_index));

struct bar { int b; } __attribute__((preserve_access_index));
enum e___l { E_B = 7, E_Z = 9 };

SEC("kprobe/x")
long fields(struct foo *s)
{
    long r = BPF_CORE_READ_BITFIELD_PROBED(s, y);
    r += BPF_CORE_READ(s, z);
    signed char c = 0;
    bpf_core_read(&c, 1, &s->arr[2]);
    r += c + bpf_core_field_exists(s->z);
    r += bpf_core_type_id_kernel(struct foo);
    r += bpf_core_enum_value(enum e___l, E_B) + bpf_core_enum_value_exists(enum e___l, E_Z);
    return r;
}

SEC("kprobe/x")
long ambiguous(struct bar *b)
{
    return BPF_CORE_READ(b, b);
}
"""


@pytest.fixture(scope="module")
def objs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Obj]:
    if shutil.which(CLANG) is None:
        pytest.skip(f"{CLANG} not installed")
    tmp = tmp_path_factory.mktemp("btf")
    return {
        "structs": compile_bpf(tmp, "structs", STRUCTS_SRC),
        "globals": compile_bpf(tmp, "globals", GLOBALS_SRC),
        "lines": compile_bpf(tmp, "lines", LINES_SRC),
        "core": compile_bpf(tmp, "core", CORE_SRC),
        "externs": compile_bpf(tmp, "externs", EXTERNS_SRC),
        "extern_call": compile_bpf(tmp, "extern_call", EXTERN_CALL_SRC),
        "core_target": compile_bpf(tmp, "core_target", CORE_TARGET_SRC),
        "core_local": compile_bpf(tmp, "core_local", CORE_LOCAL_SRC),
    }


# ------------------------------------------------------------- the reader


def test_struct_layout_exact(objs: dict[str, Obj]) -> None:
    btf = Btf.parse(objs["structs"].btf)
    (sid,) = btf.find(BtfKind.STRUCT, "sample")
    t = btf.type(sid)
    assert isinstance(t, BtfStruct)
    assert t.size == 48 and t.kind_flag  # kind_flag: bitfield sizes in member offsets
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in t.members] == [
        ("c", 0, 0), ("i", 32, 0), ("ll", 64, 0), ("f1", 128, 3), ("f2", 131, 5),
        ("arr", 144, 0), ("", 192, 0), ("next", 256, 0), ("col", 320, 0), ("tail", 352, 0),
    ]
    names = {m.name: m for m in t.members}
    assert btf.name_of(names["c"].type_id) == "char"
    assert btf.size_of(names["ll"].type_id) == 8
    arr = btf.type(names["arr"].type_id)
    assert isinstance(arr, BtfArray) and arr.nelems == 3
    assert btf.size_of(names["arr"].type_id) == 6
    anon = btf.type(names[""].type_id)
    assert isinstance(anon, BtfStruct) and anon.kind == BtfKind.UNION
    assert [(m.name, btf.name_of(m.type_id)) for m in anon.members] == [
        ("u1", "int"), ("u2", "char")]
    ptr = btf.type(names["next"].type_id)
    assert isinstance(ptr, BtfRef) and ptr.kind == BtfKind.PTR and ptr.type_id == sid
    assert btf.size_of(names["next"].type_id) == 8
    col = btf.type(names["col"].type_id)
    assert isinstance(col, BtfEnum) and col.is_signed and col.size == 4
    assert [(v.name, v.value) for v in col.values] == [("RED", 1), ("GREEN", 2), ("BLUE", -1)]
    tail = btf.type(names["tail"].type_id)
    assert isinstance(tail, BtfArray) and tail.nelems == 0
    assert btf.size_of(names["tail"].type_id) == 0
    (td,) = btf.find(BtfKind.TYPEDEF, "u32_t")
    uint = btf.type(btf.resolve(td))
    assert isinstance(uint, BtfInt) and uint.name == "unsigned int" and not uint.is_signed
    assert btf.size_of(td) == 4
    assert btf.size_of(sid) == 48
    (var,) = btf.find(BtfKind.VAR, "g_sample")
    assert btf.size_of(var) == 48
    assert btf.type(0).kind == BtfKind.UNKN and btf.name_of(0) == ""
    assert btf.string_at(t.name_off) == "sample"
    assert btf.find(BtfKind.STRUCT, "nope") == []


def test_size_of_without_size_is_an_error(objs: dict[str, Obj]) -> None:
    btf = Btf.parse(objs["lines"].btf)
    (fid,) = btf.find(BtfKind.FUNC, "entry")
    with pytest.raises(BTFError) as e:
        btf.size_of(fid)
    assert e.value.message == f"BTF type {fid}: FUNC has no size"
    with pytest.raises(BTFError) as e:
        btf.type(btf.type_count)
    assert e.value.message == (
        f"BTF type id {btf.type_count} is out of range (last is {btf.type_count - 1})"
    )


@pytest.mark.parametrize("name", ["structs", "globals", "lines", "core", "externs"])
def test_encode_round_trip_is_byte_identical(objs: dict[str, Obj], name: str) -> None:
    raw = objs[name].btf
    assert Btf.parse(raw).encode() == raw


@needs_vmlinux
def test_vmlinux_round_trip_and_parse_time() -> None:
    raw = VMLINUX.read_bytes()
    start = time.perf_counter()
    btf = Btf.parse(raw)
    elapsed = time.perf_counter() - start
    assert btf.type_count > 10_000
    assert btf.encode() == raw
    # docs/btf.md records ~0.6-0.9 s; this only guards against a pathology.
    assert elapsed < 10, f"parsing vmlinux BTF took {elapsed:.2f} s"
    assert load_vmlinux_btf() is load_vmlinux_btf()


@needs_vmlinux
def test_vmlinux_task_struct_matches_bpftool() -> None:
    dump = bpftool_raw_vmlinux()
    block = bpftool_block(dump, r"\[\d+\] STRUCT 'task_struct' ")
    tid, size = re.match(r"\[(\d+)\] STRUCT 'task_struct' size=(\d+)", block[0]).groups()
    members = [
        re.match(r"\s+'([^']*)' type_id=(\d+) bits_offset=(\d+)", line).groups()
        for line in block[1:]
    ]
    btf = load_vmlinux_btf()
    assert btf.find(BtfKind.STRUCT, "task_struct") == [int(tid)]
    t = btf.type(int(tid))
    assert isinstance(t, BtfStruct) and t.size == int(size)
    ours = [(m.name or "(anon)", m.type_id, m.bit_offset) for m in t.members]
    assert ours == [(n, int(ty), int(off)) for n, ty, off in members]


# ------------------------------------------------------------ datasec fixup


def test_datasec_fixup_exact(objs: dict[str, Obj]) -> None:
    obj = objs["globals"]
    btf = Btf.parse(obj.btf)

    def secs(b: Btf) -> dict[str, tuple[int, list[tuple[str, int, int]]]]:
        out = {}
        for _, t in b.own_types():
            if isinstance(t, BtfDatasec):
                out[t.name] = (t.size, [(b.name_of(v.type_id), v.offset, v.size) for v in t.vars])
        return out

    # clang leaves sizes and global offsets at 0; only the static is placed.
    before = secs(btf)
    assert before[".bss"] == (0, [("zero_var", 0, 8), ("hidden_var", 0, 4), ("buf", 0, 16)])
    assert before[".data"] == (0, [("counter", 0, 4), ("scounter", 4, 4)])

    warnings: list[str] = []
    fixed = fixup_datasecs(btf, obj.section_sizes, obj.symbols, hidden_symbols=obj.hidden,
                           warnings=warnings)
    assert warnings == []
    assert secs(fixed) == {
        ".bss": (28, [("zero_var", 0, 8), ("hidden_var", 8, 4), ("buf", 12, 16)]),
        ".data": (8, [("counter", 0, 4), ("scounter", 4, 4)]),
        ".maps": (32, [("m", 0, 32)]),
        ".rodata": (4, [("ro", 0, 4)]),
        "license": (4, [("LICENSE", 0, 4)]),
    }
    # a hidden global becomes static, as libbpf does
    (hv,) = fixed.find(BtfKind.VAR, "hidden_var")
    assert fixed.type(hv) == BtfVar(name_off=fixed.type(hv).name_off, name="hidden_var",
                                     type_id=fixed.type(hv).type_id,
                                     linkage=VarLinkage.STATIC)
    (cv,) = fixed.find(BtfKind.VAR, "counter")
    assert fixed.type(cv).linkage == VarLinkage.GLOBAL_ALLOCATED
    # the input is untouched, and fixing twice changes nothing
    assert secs(Btf.parse(obj.btf)) == before
    assert fixup_datasecs(fixed, obj.section_sizes, obj.symbols).encode() == fixed.encode()


def test_datasec_fixup_sorts_by_offset() -> None:
    strings = b"\0int\0a\0b\0.data\0"
    types = [
        BtfInt(name_off=1, name="int", size=4, encoding=1, bit_offset=0, bits=32),
        BtfVar(name_off=5, name="a", type_id=1, linkage=1),
        BtfVar(name_off=7, name="b", type_id=1, linkage=1),
        BtfDatasec(name_off=9, name=".data", size=0,
                   vars=(VarSecinfo(2, 0, 4), VarSecinfo(3, 0, 4))),
    ]
    btf = Btf(types, strings)
    fixed = fixup_datasecs(btf, {".data": 8}, {(".data", "a"): 4, (".data", "b"): 0})
    assert fixed.type(4) == BtfDatasec(
        name_off=9, name=".data", size=8, vars=(VarSecinfo(3, 0, 4), VarSecinfo(2, 4, 4))
    )


def test_datasec_fixup_reports_missing_section_and_symbol(objs: dict[str, Obj]) -> None:
    obj = objs["globals"]
    btf = Btf.parse(obj.btf)
    sizes = {k: v for k, v in obj.section_sizes.items() if k != ".rodata"}
    symbols = {k: v for k, v in obj.symbols.items() if k != (".bss", "buf")}
    warnings: list[str] = []
    fixed = fixup_datasecs(btf, sizes, symbols, warnings=warnings)
    (rodata,) = fixed.find(BtfKind.DATASEC, ".rodata")
    assert warnings == [
        "DATASEC '.bss': no ELF symbol for VAR 'buf'; offset left at 0",
        f"DATASEC '.rodata' (type {rodata}): no ELF section of that name with a size; "
        "left with size 0",
    ]
    assert fixed.type(rodata) == btf.type(rodata)


@needs_clang
def test_kernel_accepts_fixed_btf_and_rejects_unfixed(objs: dict[str, Obj]) -> None:
    obj = objs["globals"]
    fd, log = btf_load(fixed_btf(obj).encode())
    assert fd >= 0, log
    os.close(fd)
    # what clang emits (DATASEC size 0) is what the kernel refuses
    fd, log = btf_load(obj.btf)
    assert fd == -errno.EINVAL
    assert re.search(r"\] DATASEC \.bss size=0 vlen=3 size == 0$", log.rstrip()), log


def test_extern_fixup_like_libbpf(objs: dict[str, Obj]) -> None:
    obj = objs["externs"]
    btf = Btf.parse(obj.btf)
    warnings: list[str] = []
    fixed = fixup_datasecs(btf, obj.section_sizes, obj.symbols, warnings=warnings)
    assert warnings == []

    def layout(name: str) -> tuple[int, list[tuple[str, int, int]]]:
        (sid,) = fixed.find(BtfKind.DATASEC, name)
        t = fixed.type(sid)
        return t.size, [(fixed.name_of(v.type_id), v.offset, v.size) for v in t.vars]

    # libbpf's .kconfig map: alignment descending, then size, then name
    assert layout(".kconfig") == (29, [
        ("CONFIG_HZ", 0, 8), ("LINUX_KERNEL_VERSION", 8, 4),
        ("CONFIG_BPF_SYSCALL", 12, 1), ("CONFIG_LOCALVERSION", 13, 16),
    ])
    for name in ("CONFIG_HZ", "LINUX_KERNEL_VERSION"):
        (vid,) = fixed.find(BtfKind.VAR, name)
        assert fixed.type(vid).linkage == VarLinkage.GLOBAL_ALLOCATED
    # .ksyms: one 4-byte int slot per entry; functions point at a dummy VAR
    assert layout(".ksyms") == (16, [
        ("dummy_ksym", 0, 4), ("dummy_ksym", 4, 4), ("dummy_ksym", 8, 4),
        ("bpf_prog_active", 12, 4),
    ])
    (acquire,) = fixed.find(BtfKind.FUNC, "bpf_task_acquire")
    func = fixed.type(acquire)
    assert func.linkage == 1  # global
    assert [p.name for p in fixed.type(func.type_id).params] == ["dummy_ksym"]
    (dummy,) = fixed.find(BtfKind.VAR, "dummy_ksym")
    assert fixed.name_of(fixed.type(dummy).type_id) == "int"
    assert dummy == btf.type_count  # appended after clang's types
    # idempotent
    assert fixup_datasecs(fixed, obj.section_sizes, obj.symbols).encode() == fixed.encode()

    fd, log = btf_load(fixed.encode())
    assert fd >= 0, log
    os.close(fd)


def test_extern_function_outside_ksyms_is_reported(objs: dict[str, Obj]) -> None:
    obj = objs["extern_call"]
    btf = Btf.parse(obj.btf)
    warnings: list[str] = []
    fixed = fixup_datasecs(btf, obj.section_sizes, obj.symbols, warnings=warnings)
    (fid,) = btf.find(BtfKind.FUNC, "other_obj_fn")
    assert warnings == [
        f"FUNC 'other_obj_fn' (type {fid}) has extern linkage, which the kernel rejects"
    ]
    fd, log = btf_load(fixed.encode())
    assert fd == -errno.EINVAL
    assert log.rstrip().endswith("FUNC other_obj_fn type_id=5 Invalid func linkage"), log


# ------------------------------------------------------------------ BTF.ext


def marker_line(source: str, marker: str) -> int:
    (num,) = [i for i, line in enumerate(source.splitlines(), 1) if marker in line]
    return num


def test_func_info_and_line_info_match_source(objs: dict[str, Obj]) -> None:
    obj = objs["lines"]
    btf = Btf.parse(obj.btf)
    ext = BtfExt.parse(obj.btf_ext, btf)
    assert (ext.func_info_rec_size, ext.line_info_rec_size) == (8, 16)
    assert ext.core_relos == {}

    # one FUNC per function, at the instruction index of its ELF symbol
    funcs = {sec: [(f.insn, btf.name_of(f.type_id)) for f in recs]
             for sec, recs in ext.func_info.items()}
    fn = obj.functions
    assert funcs == {
        ".text": [(0, "helper_fn"), (fn[".text", "other_fn"], "other_fn")],
        "socket": [(0, "entry"), (fn["socket", "plain"], "plain")],
    }
    assert fn[".text", "other_fn"] > 0 and fn["socket", "plain"] > 0
    for recs in ext.func_info.values():
        for f in recs:
            assert isinstance(btf.type(f.type_id), BtfFunc)

    # every line record names this file and carries the exact source line
    src_lines = LINES_SRC.splitlines()
    for sec, recs in ext.line_info.items():
        assert [r.insn for r in recs] == sorted(r.insn for r in recs), sec
        assert recs[0].insn == 0
        for r in recs:
            assert r.file_name == str(obj.path.with_suffix(".bpf.c"))
            assert r.line == src_lines[r.line_num - 1]
            assert btf.string_at(r.line_off) == r.line
            assert btf.string_at(r.file_name_off) == r.file_name
            assert 0 <= r.line_col < 1024
    lines = {sec: {r.line_num for r in recs} for sec, recs in ext.line_info.items()}
    for marker in ("L_HELPER", "L_OTHER"):
        assert marker_line(LINES_SRC, marker) in lines[".text"]
    for marker in ("L_ENTRY", "L_LEN", "L_IF", "L_A", "L_B", "L_CMP"):
        assert marker_line(LINES_SRC, marker) in lines["socket"]
    # the function's first record is the line of its opening, as clang emits
    first = ext.line_info["socket"][0]
    assert first.line_num == marker_line(LINES_SRC, "L_ENTRY")


def test_encode_func_and_line_info() -> None:
    fi = [FuncInfo(0, 7), FuncInfo(12, 9)]
    li = [LineInfo(0, 1, 2, 10, 5, "f.c", "x"), LineInfo(3, 1, 20, 1023, 1023, "f.c", "y")]
    assert encode_func_info(fi) == struct.pack("<IIII", 0, 7, 12, 9)
    assert encode_line_info(li) == struct.pack(
        "<8I", 0, 1, 2, 10 << 10 | 5, 3, 1, 20, 1023 << 10 | 1023
    )
    assert li[0].packed_line_col == 10 << 10 | 5


@needs_clang
def test_kernel_accepts_func_and_line_info(objs: dict[str, Obj]) -> None:
    """Load `plain` (no relocations) with BTF, func_info and line_info."""
    obj = objs["lines"]
    btf = fixed_btf(obj)
    ext = BtfExt.parse(obj.btf_ext, btf)
    start = [f for f in ext.func_info["socket"] if btf.name_of(f.type_id) == "plain"][0].insn
    insns = obj.section_data["socket"][start * 8 :]
    funcs = [FuncInfo(f.insn - start, f.type_id) for f in ext.func_info["socket"]
             if f.insn >= start]
    lines = [LineInfo(r.insn - start, r.file_name_off, r.line_off, r.line_num, r.line_col,
                      r.file_name, r.line)
             for r in ext.line_info["socket"] if r.insn >= start]
    btf_fd, log = btf_load(btf.encode())
    assert btf_fd >= 0, log
    try:
        fd, log = prog_load(PROG_TYPE_SOCKET_FILTER, insns, btf_fd,
                            encode_func_info(funcs), encode_line_info(lines))
        assert fd >= 0, log
        os.close(fd)
    finally:
        os.close(btf_fd)


# --------------------------------------------------------------------- CO-RE


def core_relos(obj: Obj) -> tuple[Btf, dict[str, list[CoreRelo]]]:
    btf = Btf.parse(obj.btf)
    return btf, BtfExt.parse(obj.btf_ext, btf).core_relos


@needs_vmlinux
def test_core_relocations_against_vmlinux(objs: dict[str, Obj]) -> None:
    local, relos = core_relos(objs["core"])
    sec = "kprobe/do_nanosleep"
    by_access = {(r.kind, r.access_str): r for r in relos[sec]}
    # from bpftool, independently of our reader
    dump = bpftool_raw_vmlinux()
    block = bpftool_block(dump, r"\[\d+\] STRUCT 'task_struct' ")
    task_size = int(re.search(r"size=(\d+)", block[0]).group(1))
    offs = {m.group(1): int(m.group(2))
            for m in (re.match(r"\s+'(\w+)' type_id=\d+ bits_offset=(\d+)", ln)
                      for ln in block[1:]) if m}
    enum_block = bpftool_block(dump, r"\[\d+\] ENUM 'pid_type' ")
    tgid_val = int(next(re.search(r"val=(-?\d+)", ln).group(1) for ln in enum_block
                        if "'PIDTYPE_TGID'" in ln))

    target = load_vmlinux_btf()
    pid = resolve_core_relo(by_access[(CoreReloKind.FIELD_BYTE_OFFSET, "0:0")], local, target)
    assert (pid.local_value, pid.target_value) == (0, offs["pid"] // 8)
    assert pid.target_exists and pid.validate
    assert (pid.local_size, pid.target_size, pid.resize_ok) == (4, 4, True)
    tgid = resolve_core_relo(by_access[(CoreReloKind.FIELD_BYTE_OFFSET, "0:1")], local, target)
    assert (tgid.local_value, tgid.target_value) == (4, offs["tgid"] // 8)

    exists = resolve_core_relo(by_access[(CoreReloKind.FIELD_EXISTS, "0:2")], local, target)
    assert (exists.local_value, exists.target_value, exists.target_exists) == (1, 0, False)

    size = resolve_core_relo(by_access[(CoreReloKind.TYPE_SIZE, "0")], local, target)
    assert (size.local_value, size.target_value) == (12, task_size)
    texists = resolve_core_relo(by_access[(CoreReloKind.TYPE_EXISTS, "0")], local, target)
    assert (texists.local_value, texists.target_value) == (1, 1)

    ev = resolve_core_relo(by_access[(CoreReloKind.ENUMVAL_VALUE, "1")], local, target)
    assert (ev.local_value, ev.target_value, ev.target_exists) == (1, tgid_val, True)


@needs_vmlinux
def test_core_missing_field_and_unsupported_kind(objs: dict[str, Obj]) -> None:
    local, relos = core_relos(objs["core"])
    target = load_vmlinux_btf()
    (task,) = local.find(BtfKind.STRUCT, "task_struct")
    missing = [r for r in relos["kprobe/do_nanosleep"]
               if r.kind == CoreReloKind.FIELD_BYTE_OFFSET and r.access_str == "0:2"]
    assert len(missing) == 1
    with pytest.raises(BTFError) as e:
        resolve_core_relo(missing[0], local, target)
    assert e.value.message == (
        "CO-RE relocation FIELD_BYTE_OFFSET of task_struct.epass_no_such_field (0:2): "
        "not found in the target BTF"
    )
    assert e.value.index == missing[0].insn
    poisoned = resolve_core_relo(missing[0], local, target, poison_missing=True)
    assert poisoned.poison and not poisoned.target_exists and poisoned.local_value == 8

    (matches,) = [r for r in relos["kprobe/do_nanosleep"]
                  if r.kind == CoreReloKind.TYPE_MATCHES]
    assert matches.type_id == task
    with pytest.raises(BTFError) as e:
        resolve_core_relo(matches, local, target)
    assert e.value.message == "CO-RE relocation kind TYPE_MATCHES is not supported"


def test_core_type_id_local_and_flavors(objs: dict[str, Obj]) -> None:
    local, _ = core_relos(objs["core"])
    (task,) = local.find(BtfKind.STRUCT, "task_struct")
    res = resolve_core_relo(CoreRelo(0, task, "0", CoreReloKind.TYPE_ID_LOCAL), local, local)
    assert (res.local_value, res.target_value, res.validate) == (task, task, False)
    # a relocation against itself finds itself, by flavor-stripped name too
    res = resolve_core_relo(CoreRelo(0, task, "0", CoreReloKind.TYPE_ID_TARGET), local, local)
    assert res.target_value == task
    assert essential_name("pid_type___local") == "pid_type"
    assert essential_name("a___b___c") == "a___b"
    assert essential_name("__u32") == "__u32"
    assert essential_name("a____b") == "a____b"


def test_core_bitfields_arrays_enums_and_ambiguity(objs: dict[str, Obj]) -> None:
    """Against a target BTF of our own, with values worked out by hand."""
    target = Btf.parse(objs["core_target"].btf)
    local, relos = core_relos(objs["core_local"])
    K = CoreReloKind
    got = {}
    for relo in relos["kprobe/x"]:
        if local.name_of(relo.type_id) == "bar":
            continue
        r = resolve_core_relo(relo, local, target)
        got.setdefault((relo.kind, relo.access_str), set()).add(
            (r.local_value, r.target_value, r.target_exists, r.validate,
             r.local_size, r.target_size))
    (foo,) = target.find(BtfKind.STRUCT, "foo")
    # target y: bits 35..41, read as a u32 at byte 4; local y: bits 0..6
    assert got == {
        (K.FIELD_BYTE_OFFSET, "0:0"): {(0, 4, True, False, 0, 0)},
        (K.FIELD_BYTE_SIZE, "0:0"): {(4, 4, True, False, 0, 0)},
        (K.FIELD_LSHIFT_U64, "0:0"): {(57, 64 - (35 + 7 - 32), True, False, 0, 0)},
        (K.FIELD_RSHIFT_U64, "0:0"): {(57, 57, True, True, 0, 0)},
        (K.FIELD_SIGNED, "0:0"): {(0, 0, True, True, 0, 0)},
        (K.FIELD_BYTE_OFFSET, "0:1"): {(8, 16, True, True, 8, 8)},  # z
        (K.FIELD_BYTE_OFFSET, "0:2:2"): {(18, 6 + 2, True, True, 1, 1)},  # arr[2]
        (K.FIELD_EXISTS, "0:1"): {(1, 1, True, True, 0, 0)},
        (K.TYPE_ID_TARGET, "0"): {(local.find(BtfKind.STRUCT, "foo")[0], foo, True, False,
                                   0, 0)},
        # enum e's E_B = -3 is an s32, sign-extended to 64 bits like libbpf
        (K.ENUMVAL_VALUE, "0"): {(7, (1 << 64) - 3, True, True, 0, 0)},
        (K.ENUMVAL_EXISTS, "1"): {(1, 0, False, True, 0, 0)},
    }
    (amb,) = [r for r in relos["kprobe/x"] if local.name_of(r.type_id) == "bar"]
    with pytest.raises(BTFError) as e:
        resolve_core_relo(amb, local, target)
    (bar,) = target.find(BtfKind.STRUCT, "bar")
    (bar2,) = target.find(BtfKind.STRUCT, "bar___v2")
    assert e.value.message == (
        "CO-RE relocation FIELD_BYTE_OFFSET of bar.b (0:0): ambiguous target field offset "
        f"(32 bits in type {bar} vs 0 in type {bar2})"
    )


def _patch(insns: bytearray, relo: CoreRelo, res: object) -> None:
    """What a loader does: check the local value is there, put the target in."""
    from epass.obj.core import CoreResult

    assert isinstance(res, CoreResult) and not res.poison
    at = relo.insn * 8
    code = insns[at]
    cls = code & 0x07
    if cls in (0x04, 0x07):  # ALU / ALU64 with an immediate
        (imm,) = struct.unpack_from("<i", insns, at + 4)
        assert not res.validate or imm == res.local_value
        struct.pack_into("<i", insns, at + 4, res.target_value)
    elif cls in (0x01, 0x02, 0x03):  # LDX / ST / STX
        (off,) = struct.unpack_from("<h", insns, at + 2)
        assert not res.validate or off == res.local_value
        struct.pack_into("<h", insns, at + 2, res.target_value)
    elif code == 0x18:  # ldimm64
        lo, hi = struct.unpack_from("<I", insns, at + 4)[0], struct.unpack_from(
            "<I", insns, at + 12)[0]
        assert not res.validate or (hi << 32 | lo) == res.local_value
        struct.pack_into("<I", insns, at + 4, res.target_value & 0xFFFFFFFF)
        struct.pack_into("<I", insns, at + 12, res.target_value >> 32)
    else:
        raise AssertionError(f"unexpected insn {code:#x} for {relo}")


@needs_vmlinux
def test_core_relocated_program_loads(objs: dict[str, Obj]) -> None:
    """End to end: patch `probe` with our results; the verifier accepts it."""
    obj = objs["core"]
    local, relos = core_relos(obj)
    btf = fixed_btf(obj)
    ext = BtfExt.parse(obj.btf_ext, btf)
    sec = "kprobe/do_nanosleep"
    (probe_fi,) = [f for f in ext.func_info[sec] if btf.name_of(f.type_id) == "probe"]
    assert probe_fi.insn == 0
    end = min([f.insn for f in ext.func_info[sec] if f.insn > 0])
    insns = bytearray(obj.section_data[sec][: end * 8])
    target = load_vmlinux_btf()
    for relo in relos[sec]:
        if relo.insn < end:
            _patch(insns, relo, resolve_core_relo(relo, local, target))
    lines = [r for r in ext.line_info[sec] if r.insn < end]
    btf_fd, log = btf_load(btf.encode())
    assert btf_fd >= 0, log
    try:
        fd, log = prog_load(PROG_TYPE_KPROBE, bytes(insns), btf_fd,
                            encode_func_info([probe_fi]), encode_line_info(lines))
        assert fd >= 0, log
        os.close(fd)
    finally:
        os.close(btf_fd)


# ------------------------------------------------------------ split BTF


def test_split_btf(objs: dict[str, Obj]) -> None:
    base = Btf.parse(objs["structs"].btf)
    (int_id,) = base.find(BtfKind.INT, "int")
    (sample,) = base.find(BtfKind.STRUCT, "sample")
    off = len(base.strings)
    strings = b"holder\0x\0s\0"
    types = [
        BtfRef(kind=BtfKind.PTR, type_id=sample),
        BtfStruct(name_off=off, name="holder", size=16, members=(
            Member(off + 7, "x", int_id, 0),
            Member(off + 9, "s", base.type_count, 64),
        )),
        BtfRef(kind=BtfKind.TYPEDEF, name_off=base.type(sample).name_off, name="sample",
               type_id=base.type_count + 1),
    ]
    raw = Btf(types, strings, base=base).encode()
    split = Btf.parse(raw, base=base)
    assert split.start_id == base.type_count
    assert split.encode() == raw
    holder = base.type_count + 1
    assert split.find(BtfKind.STRUCT, "holder") == [holder]
    assert split.find(BtfKind.STRUCT, "sample") == [sample]  # base types are searched too
    assert [(m.name, m.type_id) for m in split.type(holder).members] == [
        ("x", int_id), ("s", base.type_count)]
    assert split.name_of(holder + 1) == "sample"  # a base string
    assert split.size_of(split.type_count - 1) == 16
    assert split.size_of(base.type_count) == 8
    assert split.type(int_id) == base.type(int_id)


# ------------------------------------------------------------- malformed

def header(type_len: int, str_len: int, *, magic: int = 0xEB9F, hdr_len: int = 24) -> bytes:
    return struct.pack("<HBBIIIII", magic, 1, 0, hdr_len, 0, type_len, type_len, str_len)


def one_type(name_off: int, info: int, size_or_type: int, extra: bytes = b"",
             strings: bytes = b"\0int\0") -> bytes:
    body = struct.pack("<III", name_off, info, size_or_type) + extra
    return header(len(body), len(strings)) + body + strings


INT_INFO = 1 << 24


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x9f\xeb\x01\x00", "BTF header is truncated: 4 bytes, need 24"),
        (header(0, 1, magic=0x1234) + b"\0", "bad BTF magic 0x1234 (expected 0xeb9f)"),
        (b"\xeb\x9f" + header(0, 1)[2:] + b"\0", "big-endian BTF is not supported"),
        (header(1000, 1) + b"\0" * 8,
         "BTF type section (offset 0, length 1000) is past the end of the data "
         "(8 bytes after the header)"),
        (header(0, 8) + b"\0abc",
         "BTF string section (offset 0, length 8) is past the end of the data "
         "(4 bytes after the header)"),
        (one_type(0x9999, INT_INFO, 4, struct.pack("<I", 32)),
         "BTF type 1: name offset 0x9999 is past the string section"),
        (one_type(5, INT_INFO, 4, struct.pack("<I", 32)),
         "BTF type 1: name offset 0x5 is past the string section"),
        (one_type(1, 25 << 24, 4), "BTF type 1: unknown kind 25"),
        (one_type(1, 0, 4), "BTF type 1: unknown kind 0"),
        (one_type(1, 4 << 24 | 2, 8),
         "BTF type 1 (STRUCT) is truncated: needs 36 bytes at type section offset 0x0, 12 left"),
        (one_type(0, 2 << 24, 5), "BTF type 1: refers to type 5, past the last type 1"),
        (one_type(1, INT_INFO | 1 << 16, 4, struct.pack("<I", 32)),
         "BTF type 1: reserved info bits set (0x01010000)"),
        (one_type(1, INT_INFO, 4, struct.pack("<I", 32), strings=b"x\0int\0"),
         "BTF string section does not start with an empty string"),
        (one_type(1, INT_INFO, 4, struct.pack("<I", 32), strings=b"\0int"),
         "BTF string section is not NUL-terminated"),
        (header(0, 1, hdr_len=16) + b"\0" * 9,
         "BTF header length 16 is invalid (33 bytes of data)"),
    ],
)
def test_malformed_btf(data: bytes, message: str) -> None:
    with pytest.raises(BTFError) as e:
        Btf.parse(data)
    assert e.value.message == message
    assert e.value.section == ".BTF"


def test_bad_string_offset_in_string_at() -> None:
    btf = Btf.parse(one_type(1, INT_INFO, 4, struct.pack("<I", 32)))
    assert btf.string_at(1) == "int"
    assert btf.string_at(2) == "nt"  # offsets into the middle of a string are fine
    with pytest.raises(BTFError) as e:
        btf.string_at(0x40)
    assert e.value.message == "string offset 0x40 is past the string section"
    with pytest.raises(BTFError) as e:
        btf.string_at(5)  # just past the final NUL
    assert e.value.message == "string offset 0x5 is past the string section"


def ext_header(fi: bytes, li: bytes, cr: bytes = b"") -> bytes:
    hdr = struct.pack("<HBBIIIIIII", 0xEB9F, 1, 0, 32, 0, len(fi), len(fi), len(li),
                      len(fi) + len(li), len(cr))
    return hdr + fi + li + cr


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x9f\xeb\x01\x00\x18\x00", "BTF.ext header is truncated: 6 bytes, need 24"),
        (struct.pack("<HBBIIIII", 0xABCD, 1, 0, 24, 0, 0, 0, 0),
         "bad BTF.ext magic 0xabcd (expected 0xeb9f)"),
        (ext_header(struct.pack("<I", 4), b""),
         "BTF.ext func_info record size 4 is invalid (need >= 8)"),
        (ext_header(struct.pack("<IIIII", 8, 0x999, 1, 0, 1), b""),
         "BTF.ext func_info section name offset 0x999 is past the BTF string section"),
        (ext_header(struct.pack("<IIIII", 8, 1, 2, 0, 1), b""),
         "BTF.ext func_info for section 'int' is truncated: 2 records of 8 bytes need 16, "
         "8 left"),
        (ext_header(struct.pack("<III", 8, 1, 0), b""),
         "BTF.ext func_info for section 'int' has no records"),
        (ext_header(struct.pack("<IIIII", 8, 1, 1, 3, 1), b""),
         "BTF.ext func_info for section 'int': insn_off 3 is not a multiple of 8"),
        (ext_header(b"", struct.pack("<IIIIIII", 16, 1, 1, 0, 1, 0x777, 1 << 10)),
         "line_info line offset 0x777 is past the BTF string section"),
        (ext_header(b"", b"", struct.pack("<IIIIIII", 16, 1, 1, 0, 1, 1, 42)),
         "CO-RE relocation at insn 0: unknown kind 42"),
        (ext_header(b"", b"", struct.pack("<IIII", 16, 1, 1, 0)),
         "BTF.ext core_relo for section 'int' is truncated: 1 records of 16 bytes need 16, "
         "4 left"),
    ],
)
def test_malformed_btf_ext(data: bytes, message: str) -> None:
    btf = Btf.parse(one_type(1, INT_INFO, 4, struct.pack("<I", 32)))
    with pytest.raises(BTFError) as e:
        BtfExt.parse(data, btf)
    assert e.value.message == message
    assert e.value.section == ".BTF.ext"


def test_load_vmlinux_btf_errors(tmp_path: Path) -> None:
    with pytest.raises(KernelError) as e:
        load_vmlinux_btf(str(tmp_path / "missing"))
    assert e.value.message == "cannot read kernel BTF: No such file or directory"
    bad = tmp_path / "bad"
    bad.write_bytes(b"\0" * 30)
    with pytest.raises(BTFError) as e2:
        load_vmlinux_btf(str(bad))
    assert (e2.value.file, e2.value.message) == (str(bad), "bad BTF magic 0x0000 (expected 0xeb9f)")


def test_mangled_inputs_only_raise_btf_error(objs: dict[str, Obj]) -> None:
    """Truncations and random byte flips never leak struct.error & co."""
    obj = objs["lines"]
    rng = random.Random(1234)
    raw, ext_raw = obj.btf, obj.btf_ext
    btf = Btf.parse(raw)
    cases = [raw[:n] for n in range(0, len(raw), 7)]
    for _ in range(300):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cases.append(bytes(data))
    for data in cases:
        try:
            Btf.parse(data)
        except BTFError:
            pass
    ext_cases = [ext_raw[:n] for n in range(0, len(ext_raw), 5)]
    for _ in range(300):
        data = bytearray(ext_raw)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        ext_cases.append(bytes(data))
    for data in ext_cases:
        try:
            BtfExt.parse(data, btf)
        except BTFError:
            pass


def test_encode_rejects_unencodable_types() -> None:
    bad = BtfStruct(name_off=0, size=4, members=(Member(0, "", 1, 0, bitfield_size=3),))
    with pytest.raises(BTFError) as e:
        Btf([BtfInt(size=4, encoding=0, bit_offset=0, bits=32), bad], b"\0").encode()
    assert e.value.message == "BTF type 2: member '' is a bitfield but kind_flag is clear"


def test_enum64_round_trip() -> None:
    strings = b"\0e\0A\0B\0"
    types = [
        BtfEnum(kind=BtfKind.ENUM64, name_off=1, name="e", size=8, kind_flag=False,
                values=(EnumValue(3, "A", 1 << 40), EnumValue(5, "B", 0xFFFFFFFFFFFFFFFF))),
        BtfEnum(kind=BtfKind.ENUM64, name_off=1, name="e", size=8, kind_flag=True,
                values=(EnumValue(3, "A", -2),)),
    ]
    raw = Btf(types, strings).encode()
    back = Btf.parse(raw)
    assert [back.type(1), back.type(2)] == types
    assert back.size_of(1) == 8
