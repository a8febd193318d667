"""`epass compile` and `epass read --ir` as users run them: written objects load with
epass and bpftool like the originals; errors are one line and exit 2."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from epass.isa import format_insn
from epass.obj.reader import read_object

import progs
from cli import epass

BUILDS = list(progs.builds())
BPFTOOL = shutil.which("bpftool")


def _same_programs(a: str, b: str) -> None:
    old, new = read_object(a), read_object(b)
    assert [p.name for p in new.programs] == [p.name for p in old.programs]
    assert [m.name for m in new.maps] == [m.name for m in old.maps]
    for p, q in zip(old.programs, new.programs, strict=True):
        assert [format_insn(i) for i in q.insns] == [format_insn(i) for i in p.insns]
        assert (q.map_refs, q.func_info, q.line_info) == (p.map_refs, p.func_info, p.line_info)


@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=[f"{n}.{c}" for n, c in BUILDS])
def test_compiled_objects_load_like_the_original(built_progs, bpf_permitted, bpffs, tmp_path,
                                                 name, cpu):
    src = str(built_progs[name, cpu])
    out = str(tmp_path / "out.o")
    run = epass("compile", src, "-o", out, "--check")
    assert run.code == 0, run.err
    _same_programs(src, out)
    before, after = epass("verify", src, "--json"), epass("verify", out, "--json")
    assert after.code == before.code
    verdicts = [(p["name"], p["accepted"]) for p in before.json()["programs"]]
    assert [(p["name"], p["accepted"]) for p in after.json()["programs"]] == verdicts
    if BPFTOOL is None:
        pytest.skip("bpftool is not installed")
    prog = progs.get(name)
    (bpffs / "a").mkdir()
    (bpffs / "b").mkdir()
    a = subprocess.run([BPFTOOL, "prog", "loadall", src, str(bpffs / "a")],
                       capture_output=True, text=True, check=False)
    b = subprocess.run([BPFTOOL, "prog", "loadall", out, str(bpffs / "b")],
                       capture_output=True, text=True, check=False)
    assert b.returncode == a.returncode, b.stderr[-2000:]
    if prog.bpftool == "load" and a.returncode == 0:
        assert sorted(p.name for p in (bpffs / "b").iterdir()) == \
            sorted(f for f, _ in prog.programs)


def test_compile_reports_and_json(built_progs, tmp_path):
    src = str(built_progs["two_sections", "v3"])
    out = tmp_path / "o.o"
    run = epass("compile", src, "-o", str(out))
    assert run.code == 0
    assert run.out.splitlines() == [
        f"{src}: xdp/xdp_count: 17 -> 17 insns (no passes)",
        f"{src}: tc/tc_count: 15 -> 15 insns (no passes)",
        f"wrote {out}",
    ]
    run = epass("compile", src, "-o", str(out), "-p", "div_by_zero", "--check", "--json",
                "--section", "tc")
    assert run.code == 0, run.err
    doc = run.json()
    assert doc["passes"] == ["div_by_zero(code=0)"] and doc["checked"] is True
    assert [(p["name"], p["insns_before"], p["insns_after"]) for p in doc["programs"]] == \
        [("tc_count", 15, 15)]
    assert doc["output"] == str(out) and doc["file"] == src


def test_read_ir(built_progs):
    src = str(built_progs["subprog_calls", "v3"])
    run = epass("read", src, "--ir")
    assert run.code == 0
    lines = run.out.splitlines()
    assert lines[0] == 'module @subprog_calls section "xdp"'
    assert "func @frame_too_short args 1 type 9 {" in lines
    assert any(ln.startswith("  %2:r0 = call @frame_too_short(%0)") for ln in lines)
    assert any("; insn 1: if (frame_too_short(ctx))" in ln for ln in lines)
    doc = epass("read", src, "--ir", "--json").json()
    (prog,) = doc["programs"]
    assert prog["functions"] == ["subprog_calls", "frame_too_short", "ipv4_proto",
                                 "proto_verdict", "ttl_ok"]  # in the order first reached
    assert prog["ir"].startswith('module @subprog_calls section "xdp"\n')


def test_compile_errors_are_one_line(built_progs, tmp_path):
    src = str(built_progs["xdp_rewrite", "v3"])
    run = epass("compile", src, "-o", str(tmp_path / "x.o"), "-p", "frobnicate")
    assert (run.code, run.err) == (2, "epass: error: -p: unknown pass 'frobnicate' (passes: "
                                      "asan, const_fold, dce, div_by_zero, helper_validation, "
                                      "insn_counter, msan, rce, runtime_validation, zext)\n")
    missing = tmp_path / "no" / "such" / "dir.o"
    run = epass("compile", src, "-o", str(missing))
    assert (run.code, run.err) == (2, f"epass: error: cannot write {missing}: No such file or "
                                      "directory\n")
    run = epass("compile", str(tmp_path / "none.o"), "-o", str(tmp_path / "y.o"))
    assert (run.code, run.err) == (2, f"epass: error: {tmp_path / 'none.o'}: cannot read: No "
                                      "such file or directory\n")
    assert not Path(tmp_path / "y.o").exists()
    run = epass("compile", src)
    assert run.code == 2 and "Missing option '--output'" in run.err


def test_objects_with_pass_created_maps_are_refused(built_progs):
    from epass.codegen import compile_module
    from epass.errors import ObjectError
    from epass.ir.builder import Builder
    from epass.ir.lift import lift_program
    from epass.obj.model import MapDef
    from epass.obj.writer import write_object

    obj = read_object(str(built_progs["xdp_parse_drop", "v3"]))
    (program,) = obj.programs
    module = lift_program(program, obj.maps)
    name = module.add_map(MapDef("epass_state", 2, 4, 8, 1))
    first = next(module.main.instructions())
    Builder.after(first).map_ptr(name)
    with pytest.raises(ObjectError) as e:
        write_object(obj, {program.name: compile_module(module)})
    assert e.value.line() == (f"{obj.path}: section xdp: map 'epass_state' was added by a "
                              "pass; objects with pass-created maps cannot be written yet")


SHARED = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __noinline int scale(int a) { return a * 5 + 1; }
static __noinline int outer(int a) { return scale(a) + 2; }
static __noinline unsigned ratio(unsigned a, unsigned b) { return a / b + 1; }
static __noinline int flip(int a) { return a ^ 7; }

SEC("xdp") int first(struct xdp_md *ctx)
{
	int x = ctx->ingress_ifindex;
	return (outer(x) + flip(x) + ratio(ctx->data_end - ctx->data, x)) & 3;
}

SEC("tc") int second(struct __sk_buff *skb) { return (outer(skb->len) + flip(3)) & 1; }

char LICENSE[] SEC("license") = "GPL";
"""


@progs.skip_without_clang
def test_shared_subprograms_and_one_section_at_a_time(bpf_permitted, tmp_path):
    """Programs lay out shared .text functions in different orders, and with --section the
    others keep their code while .text moves under them (calls relocated against the .text
    section symbol)."""
    src = tmp_path / "shared.bpf.c"
    src.write_text(SHARED)
    obj = tmp_path / "shared.o"
    subprocess.run([progs.CLANG, *progs.CFLAGS, "-mcpu=v3", *progs.INCLUDES, "-c", str(src),
                    "-o", str(obj)], check=True)
    for args in ([], ["--section", "xdp", "-p", "div_by_zero(code=1)"]):
        out = tmp_path / "out.o"
        run = epass("compile", str(obj), "-o", str(out), *args)
        assert run.code == 0, run.err
        verify = epass("verify", str(out), "--json")
        assert verify.code == 0, verify.out
        assert [p["accepted"] for p in verify.json()["programs"]] == [True, True]
    second = read_object(str(tmp_path / "out.o")).program("second")
    assert [f.name for f in second.functions] == ["second", "outer", "flip", "scale"]
