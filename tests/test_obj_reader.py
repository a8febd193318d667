"""The object reader on every test program: sections, maps, linking, byte identity."""

from __future__ import annotations

import pytest
from elftools.elf.elffile import ELFFile

from epass.isa import Call, CallKind, LoadImm64, PseudoKind, decode, encode, slot_indices
from epass.obj.model import MapOrigin
from epass.obj.reader import read_object

import progs

BUILDS = list(progs.builds())


@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=[f"{n}-{c}" for n, c in BUILDS])
def test_every_code_section_decodes_and_encodes_byte_identically(built_progs, name, cpu):
    with open(built_progs[name, cpu], "rb") as f:
        elf = ELFFile(f)
        sections = [s for s in elf.iter_sections() if s["sh_flags"] & 0x4 and s["sh_size"]]
        assert sections
        for sec in sections:
            raw = sec.data()
            assert encode(decode(raw)) == raw, sec.name


@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=[f"{n}-{c}" for n, c in BUILDS])
def test_programs_maps_and_license_match_the_table(built_progs, name, cpu):
    entry = progs.get(name)
    obj = read_object(str(built_progs[name, cpu]))
    assert [(p.name, p.section) for p in obj.programs] == list(entry.programs)
    declared = [m.name for m in obj.maps if m.origin != MapOrigin.DATA]
    assert sorted(declared) == sorted(entry.maps)
    data = {m.name for m in obj.maps if m.origin == MapOrigin.DATA}
    assert set(entry.data_sections) <= data
    assert obj.license == entry.license
    for prog in obj.programs:
        assert prog.kind is not None


@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=[f"{n}-{c}" for n, c in BUILDS])
def test_linked_calls_land_on_function_starts(built_progs, name, cpu):
    obj = read_object(str(built_progs[name, cpu]))
    for prog in obj.programs:
        starts = {p.start for p in prog.functions}
        slots = slot_indices(prog.insns)
        for at, insn in zip(slots, prog.insns, strict=True):
            local_call = isinstance(insn, Call) and insn.kind == CallKind.LOCAL
            func_ptr = isinstance(insn, LoadImm64) and insn.kind == PseudoKind.FUNC
            if local_call or func_ptr:
                assert at + insn.imm + 1 in starts, (prog.name, at)
        # one func_info per placed function, at its start (what the kernel demands)
        if prog.func_info:
            assert [f.insn for f in prog.func_info] == [p.start for p in prog.functions]
            assert [f.name for f in prog.func_info] == [p.name for p in prog.functions]


def test_subprograms_are_appended_once_in_call_order(built_progs):
    obj = read_object(str(built_progs["subprog_calls", "v3"]))
    (prog,) = obj.programs
    names = [p.name for p in prog.functions]
    assert names[0] == "subprog_calls"
    assert sorted(names[1:]) == ["frame_too_short", "ipv4_proto", "proto_verdict", "ttl_ok"]
    assert len(set(names)) == len(names)
    assert sum(p.slots for p in prog.functions) == len(slot_indices(prog.insns)) + sum(
        1 for i in prog.insns if isinstance(i, LoadImm64)
    )


def test_callback_pointer_becomes_a_func_lddw(built_progs):
    obj = read_object(str(built_progs["bpf_loop_cb", "v3"]))
    (prog,) = obj.programs
    funcs = [i for i in prog.insns if isinstance(i, LoadImm64) and i.kind == PseudoKind.FUNC]
    assert len(funcs) == 2  # loop_cb for bpf_loop, elem_cb for bpf_for_each_map_elem
    assert {p.name for p in prog.functions} == {"bpf_loop_cb", "loop_cb", "elem_cb"}


def test_map_and_global_data_references(built_progs):
    obj = read_object(str(built_progs["global_data", "v3"]))
    (prog,) = obj.programs
    refs = {(r.map, r.value) for r in prog.map_refs}
    assert {(".rodata", True), (".data", True), (".bss", True)} <= refs
    slots = dict(zip(slot_indices(prog.insns), prog.insns, strict=True))
    for ref in prog.map_refs:
        assert isinstance(slots[ref.insn], LoadImm64)
    rodata = obj.map(".rodata")
    assert rodata.readonly and rodata.initial is not None
    assert obj.map(".bss").initial is None

    obj = read_object(str(built_progs["xdp_map_counter", "v3"]))
    assert [(r.map, r.value) for r in obj.programs[0].map_refs] == [("proto_count", False)]
    m = obj.map("proto_count")
    # BPF_MAP_TYPE_ARRAY of struct proto_stats { __u64 packets; __u64 bytes; }
    assert (m.type, m.key_size, m.value_size, m.max_entries) == (2, 4, 16, 256)


def test_legacy_map_definitions(built_progs):
    obj = read_object(str(built_progs["legacy_map_def", "v3"]))
    legacy = [m for m in obj.maps if m.origin == MapOrigin.LEGACY]
    assert [m.name for m in legacy] == ["legacy_counts", "legacy_last"]
    assert all(m.section == "maps" for m in legacy)


def test_line_info_maps_to_source_lines(built_progs):
    obj = read_object(str(built_progs["xdp_parse_drop", "v3"]))
    (prog,) = obj.programs
    assert prog.line_info
    first = prog.line_at(0)
    assert first is not None and first.file_name.endswith("xdp_parse_drop.bpf.c")
    source = (progs.PROGS_DIR / "xdp_parse_drop.bpf.c").read_text().splitlines()
    for li in prog.line_info:
        assert source[li.line_num - 1].strip() == li.line.strip()


def _build(tmp_path, source: str):
    import subprocess

    src = tmp_path / "x.bpf.c"
    src.write_text(source)
    out = tmp_path / "x.o"
    subprocess.run([progs.CLANG, *progs.CFLAGS, *progs.INCLUDES, "-c", str(src), "-o", str(out)],
                   check=True)
    return read_object(str(out))


@progs.skip_without_clang
def test_kfunc_calls_resolve_to_vmlinux_btf_ids(tmp_path):
    from epass.obj.btf import BtfKind, load_vmlinux_btf

    obj = _build(tmp_path, """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
SEC("fentry/do_nanosleep") int f(void *ctx)
{ bpf_rcu_read_lock(); bpf_rcu_read_unlock(); return 0; }
char LICENSE[] SEC("license") = "GPL";
""")
    vmlinux = load_vmlinux_btf()
    lock, unlock = (vmlinux.find(BtfKind.FUNC, n)[0]
                    for n in ("bpf_rcu_read_lock", "bpf_rcu_read_unlock"))
    calls = [i for i in obj.programs[0].insns if isinstance(i, Call)]
    assert calls == [Call(CallKind.KFUNC, lock), Call(CallKind.KFUNC, unlock)]


@progs.skip_without_clang
def test_a_static_function_in_a_program_section_is_a_subprogram(tmp_path):
    obj = _build(tmp_path, """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
static __noinline SEC("xdp") int inner(int x) { return x ^ 5; }
SEC("xdp") int outer(struct xdp_md *ctx) { return inner(ctx->ingress_ifindex) & 3; }
char LICENSE[] SEC("license") = "GPL";
""")
    assert [p.name for p in obj.programs] == ["outer"]
    assert [f.name for f in obj.programs[0].functions] == ["outer", "inner"]
