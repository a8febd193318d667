"""rce: checks the VI map or Z3 proves never fire go, the others stay; the program after
`X,rce` returns in the kernel what the program after `X` returns; every accepted test
program stays accepted and proven after div_by_zero, msan, insn_counter and rce."""

from __future__ import annotations

import subprocess

import pytest
from irutil import program_from_insns
from test_builder import load_and_run

from epass.codegen import compile_module
from epass.commands.compile import compile_program, verifier_facts
from epass.ir import model as ir
from epass.ir.check import check_module
from epass.ir.lift import lift_program
from epass.ir.text import parse_module
from epass.isa import encode, parse_program
from epass.kernel.syscall import prog_load
from epass.kernel.vimap import build_vimap
from epass.obj.model import Program
from epass.obj.reader import read_object
from epass.passes import parse_passes, run_passes
from epass.passes.rce import checks, unique_path
from epass.uapi import ProgType

import progs
from cli import epass

# x | 1 and z (past `if (z == 0) return`) are never zero, and the verifier knows it; y may be
DIVIDE_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int divide(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *data_end = (void *)(long)ctx->data_end;
	__u32 x, y, z;

	if (data + 3 > data_end)
		return XDP_ABORTED;
	x = data[0];
	y = data[1];
	z = data[2];
	if (z == 0)
		return XDP_PASS;
	return (1000 / (x | 1) + 1000 / z + 1000 / y) & 3;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def divide(tmp_path_factory: pytest.TempPathFactory, requires_clang: None) -> str:
    src = tmp_path_factory.mktemp("rce") / "divide.bpf.c"
    src.write_text(DIVIDE_C)
    out = src.with_suffix(".o")
    subprocess.run([progs.CLANG, *progs.CFLAGS, "-mcpu=v3", *progs.INCLUDES, "-c", str(src),
                    "-o", str(out)], check=True)
    return str(out)


def compiled(path: str, spec: str) -> Program:
    obj = read_object(path)
    (program,) = obj.programs
    return compile_program(obj, program, parse_passes(spec), check=True)


def lifted(path: str, vimap: bool) -> ir.Module:
    obj = read_object(path)
    (program,) = obj.programs
    module = lift_program(program, obj.maps)
    if vimap:
        module.vimap = verifier_facts(obj, program)
    return module


def same_in_kernel(before: Program, after: Program, want: dict[bytes, int]) -> None:
    """Both programs return `want[packet]` under BPF_PROG_TEST_RUN."""
    for packet, r0 in want.items():
        assert (load_and_run(before, {}, packet), load_and_run(after, {}, packet)) == (r0, r0), \
            packet[:4].hex()


DIVIDE_RUNS = {bytes([4, 0, 5]) + bytes(61): 9,  # y = 0: the kept check fires
               bytes([4, 7, 5]) + bytes(61): (200 + 200 + 142) & 3,
               bytes([4, 7, 0]) + bytes(61): progs.XDP_PASS}


@pytest.mark.parametrize("how", ["vimap", "z3"])
def test_divisions_the_verifier_knows_are_safe_lose_their_checks(divide, bpf_permitted, how):
    module = lifted(divide, vimap=how == "vimap")
    # z3=0: the VI map alone decides; without a VI map Z3 alone
    spec = "div_by_zero(code=9),rce(z3=0)" if how == "vimap" else "div_by_zero(code=9),rce"
    run_passes(module, parse_passes(spec), check=True)
    (left,) = checks(module.main)
    divisor = left[0].operands[0]
    assert isinstance(divisor.definition, ir.Load) and divisor.definition.origin == 18  # y
    assert check_module(module) == []
    after = compile_module(module)
    before = compiled(divide, "div_by_zero(code=9)")
    assert (len(before.aborts), len(after.aborts)) == (3, 1)
    assert len(after.insns) == len(before.insns) - 6  # two compares, two abort exits + movs
    same_in_kernel(before, after, DIVIDE_RUNS)
    assert compiled(divide, "div_by_zero(code=9),rce").insns == after.insns


# r6 is 1 or 0 at the division (by the first packet byte); the verifier walks the r6 = 1
# path first and prunes the r6 = 0 one at insn 10 (r6 is not precise): its VI map shows r6 = 1
# on every visit of the division, which is not true of every run
PRUNED = """
r2 = *(u32 *)(r1 +0)
r3 = *(u32 *)(r1 +4)
r4 = r2
r4 += 1
if r4 > r3 goto pc+8
r5 = *(u8 *)(r2 +0)
r6 = 1
if r5 == 0x0 goto pc+1
goto pc+1
r6 = 0
r0 = 100
r0 /= r6
exit
r0 = 0
exit
"""


def test_the_vi_map_is_not_trusted_past_a_join(bpf_permitted):
    program = program_from_insns(parse_program(PRUNED))
    load = prog_load(ProgType.XDP, encode(program.insns), license="GPL", log_level=2)
    assert load.ok and "10: safe" in load.log
    vimap = build_vimap(load.log)
    assert [(r.umin, r.umax) for r in vimap.reg_at(11, 6)] == [(1, 1)]  # the trap
    assert unique_path(program) == set(range(10)) | {13, 14}  # 10 joins two paths
    before = after = None
    for spec in ("div_by_zero(code=7)", "div_by_zero(code=7),rce(z3=0)",
                 "div_by_zero(code=7),rce"):
        module = lift_program(program)
        module.vimap = vimap
        run_passes(module, parse_passes(spec), check=True)
        assert len(checks(module.main)) == 1, spec  # kept: it fires on a zero byte
        after = compile_module(module)
        before = before or after
    assert after is not None and before is not None
    same_in_kernel(before, after, {bytes(64): 7, bytes([1]) + bytes(63): 100})


# v is written when the first byte is 2, and read when it is {read}: msan's static part cannot
# see that both branches agree for 2 and checks the read; Z3 sees it
CORRELATED = """
module @m section "{section}"
func @m args 1 {{
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0 + {data}]
  %2:r3 = load u32 [%0 + {data_end}]
  %3:r4 = mov %1
  %4:r4 = add %3, 1
  br jgt %4, %2, bb4, bb1
bb1:
  %5:r5 = load u8 [%1]
  br jne %5, 2, bb3, bb2
bb2:
  store u64 [fp - 8], 3
  jump bb3
bb3:
  br jne %5, {read}, bb4, bb5
bb5:
  %6:r0 = load u64 [fp - 8]
  ret %6
bb4:
  ret 1
}}
"""


@pytest.mark.parametrize(("read", "left", "runs"), [
    (2, 0, {bytes([2]) + bytes(63): 3, bytes([3]) + bytes(63): 1}),
    (3, 1, {bytes([2]) + bytes(63): 1, bytes([3]) + bytes(63): 42}),  # 3: v never written
])
def test_z3_removes_msan_checks_that_always_pass(bpf_permitted, read, left, runs):
    text = CORRELATED.format(read=read, section="xdp", data=0, data_end=4)
    module = parse_module(text)
    run_passes(module, parse_passes("msan(code=42)"), check=True)
    assert len(checks(module.main)) == 1
    before = compile_module(module)
    module = parse_module(text)
    run_passes(module, parse_passes("msan(code=42),rce"), check=True)
    assert len(checks(module.main)) == left
    after = compile_module(module)
    assert (len(before.aborts), len(after.aborts)) == (1, left)
    same_in_kernel(before, after, runs)


def test_z3_is_not_asked_about_skb_programs():
    # the same program as a tc classifier (__sk_buff's data and data_end): an skb's data may
    # be longer than the 4096 bytes Z3's packets have, so Z3's answer would not cover it
    module = parse_module(CORRELATED.format(read=2, section="tc", data=76, data_end=80))
    run_passes(module, parse_passes("msan,rce"), check=True)
    assert len(checks(module.main)) == 1


def loop_packet(trips: int) -> bytes:
    return bytes([trips]) + bytes([200]) * 63  # insn_loop: byte 0 the trips (at most 6)


@pytest.mark.parametrize(("spec", "left", "fires_from"), [
    ("insn_counter(code=7)", 0, None),  # 6 trips at most: far below 1000000
    ("insn_counter(limit=20 code=7)", 1, 1),
])
def test_insn_counter_checks_on_a_bounded_loop(built_progs, bpf_permitted, spec, left,
                                               fires_from):
    path = str(built_progs["insn_loop", "v3"])
    before, after = compiled(path, spec), compiled(path, spec + ",rce")
    assert (len(before.aborts), len(after.aborts)) == (1, left)
    want = {}
    for trips in (0, 1, 3, 4, 6, 200):
        plain = progs.XDP_DROP if trips >= 4 else progs.XDP_PASS  # over 600 from 4 trips
        want[loop_packet(trips)] = 7 if fires_from is not None and trips >= fires_from \
            else plain
    same_in_kernel(before, after, want)


@pytest.mark.parametrize("spec", ["rce(unroll=0)", "rce(timeout=0)", "rce(z3=2)"])
def test_bad_options_are_one_line(divide, tmp_path, spec):
    run = epass("compile", divide, "-o", str(tmp_path / "o.o"), "-p", spec)
    assert run.code == 2
    got = {"rce(unroll=0)": "timeout=5 unroll=0 steps=10000 z3=1",
           "rce(timeout=0)": "timeout=0 unroll=4 steps=10000 z3=1",
           "rce(z3=2)": "timeout=5 unroll=4 steps=10000 z3=2"}[spec]
    assert run.err.splitlines() == [f"epass: error: {divide}: section xdp: rce: timeout, unroll "
                                    f"and steps must be at least 1, z3 0 or 1; got {got}"]


# checks the safety passes insert into each program, and how many rce removes (v3 builds)
REMOVED = {"insn_loop": (1, 1), "maps_btf": (1, 1), "loop_bounded": (2, 0),
           "uninit_read": (1, 0)}
SLOW = {"legacy_map_def", "xdp_map_counter", "maps_btf"}  # Z3 may pass the 30 s timeout
ACCEPTED = [p.name for p in progs.PROGS if p.verdict == "accept" and
            progs.CPUS.index(p.min_cpu) <= 1]
SAFETY = "div_by_zero,msan,insn_counter"


@pytest.mark.parametrize("name", ACCEPTED)
def test_every_accepted_program_stays_accepted_and_proven(built_progs, bpf_permitted, name,
                                                          tmp_path):
    src = str(built_progs[name, "v3"])
    plain, out = str(tmp_path / "plain.o"), str(tmp_path / "out.o")
    run = epass("compile", src, "-o", out, "-p", f"{SAFETY},rce", "--check")
    if "trampoline" in progs.get(name).requires and "EPERM" in run.err:
        pytest.skip("this kernel refuses fentry loads with EPERM (tests/progs/README.md)")
    assert run.code == 0, run.err
    assert epass("compile", src, "-o", plain, "-p", SAFETY).code == 0
    counts = [(len(a.aborts), len(a.aborts) - len(b.aborts)) for a, b in
              zip(read_object(plain).programs, read_object(out).programs, strict=True)]
    assert counts == [REMOVED.get(name, (0, 0))] * len(counts)
    verify = epass("verify", out, "--json")
    assert verify.code == 0 and verify.json()["rejected"] == 0, verify.out
    proved = epass("prove", src, out, "--json", "--unroll", "2" if name == "loop_bounded"
                   else "8")
    for p in proved.json()["programs"]:
        if name == "loop_bounded":  # past the bound: loop pairing proves it
            assert p["verdict"] == "refines" and "loop(s) paired" in p["reason"], p["reason"]
        elif name in SLOW and p["verdict"] == "unknown":
            assert "timeout" in p["reason"]
        else:
            assert p["verdict"] in ("equivalent", "refines"), (p["verdict"], p["reason"])
