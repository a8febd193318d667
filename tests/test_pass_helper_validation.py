"""helper_validation: which calls get checks (IR), where a check fires and where behaviour
is unchanged (in the kernel under BPF_PROG_TEST_RUN and on the interpreter), and what the
kernel and `epass prove` say about every accepted test program."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
from kernel_run import run_in_kernel
from test_builder import load_and_run

from epass.codegen import compile_module
from epass.commands.run import interpreter_inputs
from epass.errors import EpassError
from epass.ir import model as ir
from epass.ir.lift import lift_program
from epass.ir.text import parse_module
from epass.isa import HELPER_IDS, Call
from epass.isa.opcodes import JmpOp
from epass.kernel.syscall import close, map_create
from epass.obj.model import Program
from epass.obj.reader import read_object
from epass.passes import parse_passes, run_passes
from epass.passes.helper_validation import plan
from epass.semantics.interp import Environment, run
from epass.uapi import MapType, ProgType

import progs
from cli import epass

CODE = 42
DISCARD = HELPER_IDS["bpf_ringbuf_discard"]


def _transform(module: ir.Module, spec: str) -> Program:
    run_passes(module, parse_passes(spec), check=True)
    return compile_module(module)


def _both(program: Program, maps: list, packet: bytes) -> tuple[int | None, dict]:
    """r0 and maps from the interpreter and from the kernel, which must agree."""
    insns, specs = interpreter_inputs(SimpleNamespace(maps=maps), program)
    got = run(insns, Environment(prog_type=ProgType.XDP, packet=packet, maps=specs))
    kernel = run_in_kernel(insns, specs, packet)
    assert kernel.accepted, kernel.reason
    assert (got.r0, got.maps) == (kernel.retval, kernel.maps), packet[:2].hex()
    return got.r0, got.maps


def _plan(module: ir.Module, lock: bool = False) -> list[tuple[JmpOp, int, int | None]]:
    return [(c.op, c.limit, c.mask) for f in module.functions for c in plan(f, lock)]


# --- the test program: bpf_map_update_elem's flags come from byte 1 ----------------------

# flags -> the original's result: BPF_ANY and BPF_EXIST store (XDP_PASS), BPF_NOEXIST
# fails with -EEXIST on an array (XDP_TX), the rest fail with -EINVAL (XDP_DROP) but for 5
# (BPF_F_LOCK | BPF_NOEXIST: the array checks NOEXIST before the lock, -EEXIST)
ORIGINAL = {0: progs.XDP_PASS, 1: progs.XDP_TX, 2: progs.XDP_PASS, 3: progs.XDP_DROP,
            4: progs.XDP_DROP, 5: progs.XDP_TX, 6: progs.XDP_DROP, 255: progs.XDP_DROP}


def test_bad_flags_abort_good_flags_keep_result_and_map(built_progs, bpf_permitted):
    obj = read_object(str(built_progs["helper_flags", "v3"]))
    (program,) = obj.programs
    module = lift_program(program, obj.maps)
    assert _plan(module) == [(JmpOp.GT, 2, None)]
    checked = _transform(module, f"helper_validation(code={CODE})")
    assert len(checked.aborts) == 1
    assert len(checked.insns) == len(program.insns) + 3  # the test, `r0 = 42`, exit
    for flags, plain in ORIGINAL.items():
        packet = bytes([0x0B, flags]) + bytes(62)  # slot 0x0b & 7 = 3 gets the length 64
        stored = {k: bytes(8) for k in range(8)} | ({3: (64).to_bytes(8, "little")}
                                                     if flags in (0, 2) else {})
        want = {"last_len": {k.to_bytes(4, "little"): v for k, v in stored.items()}}
        assert _both(program, obj.maps, packet) == (plain, want), flags
        r0, maps = _both(checked, obj.maps, packet)
        if flags <= 2:
            assert (r0, maps) == (plain, want), flags
        else:  # aborted before the call: nothing stored
            assert (r0, maps) == (CODE, {"last_len": {k.to_bytes(4, "little"): bytes(8)
                                                      for k in range(8)}}), flags


# --- ring buffers: reserve's flags (byte 0) must be 0, submit's (byte 1) at most 2 -------

RINGBUF = """
module @rb section "xdp"
map @events type 27 key 0 value 0 max 4096
func @rb args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0]
  %2:r3 = load u32 [%0 + 4]
  %3:r4 = mov %1
  %4:r4 = add %3, 2
  br jgt %4, %2, bb3, bb1
bb1:
  %5:r7 = load u8 [%1]
  %6:r8 = load u8 [%1 + 1]
  %7:r1 = map @events
  %8:r0 = call bpf_ringbuf_reserve(%7, 8, %5)
  br jeq %8, 0, bb3, bb2
bb2:
  store u64 [%8], 7
  %9:r0 = call bpf_ringbuf_submit(%8, %6)
  ret 2
bb3:
  ret 1
}
"""


def test_ringbuf_flags_abort_and_release_the_record(bpf_permitted):
    assert _plan(parse_module(RINGBUF)) == [(JmpOp.GT, 0, None), (JmpOp.GT, 2, None)]
    original = compile_module(parse_module(RINGBUF))
    checked = _transform(parse_module(RINGBUF), f"helper_validation(code={CODE})")
    # the abort before submit holds the record: it discards it (the verifier insists)
    assert len([i for i in checked.insns if isinstance(i, Call) and i.imm == DISCARD]) == 1
    fd = map_create(MapType.RINGBUF, 0, 0, 4096, name="events")
    maps = SimpleNamespace(maps=parse_module(RINGBUF).maps)
    try:
        # (reserve flags, submit flags) -> original (reserve fails: 1), transformed
        for (rf, sf), (plain, want) in {(0, 0): (2, 2), (0, 2): (2, 2), (0, 3): (2, CODE),
                                        (1, 0): (1, CODE), (9, 9): (1, CODE)}.items():
            packet = bytes([rf, sf]) + bytes(62)
            for program, r0 in ((original, plain), (checked, want)):
                insns, specs = interpreter_inputs(maps, program)
                got = run(insns, Environment(prog_type=ProgType.XDP, packet=packet,
                                             maps=specs))
                assert got.r0 == r0 and load_and_run(program, {"events": fd}, packet) == r0
                # a record goes out exactly when the original submits it and no check fired
                assert len(got.output) == (r0 == 2), (rf, sf)
    finally:
        close(fd)


# --- probe_read: a NULL source (byte 1 == 0), a size (byte 0) past the stack buffer ------

PROBE = """
module @pr section "xdp"
func @pr args 1 {{
bb0:
  %0:r1 = arg 1
  %1:r6 = load u32 [%0]
  %2:r3 = load u32 [%0 + 4]
  %3:r4 = mov %1
  %4:r4 = add %3, 32
  %20:r5 = mov 0
  br jgt %4, %2, bb4, bb1
bb1:
  %5:r2 = load u8 [%1 + 1]
  br jeq %5, 0, bb2(%20), bb2(%1)
bb2(%6:r3):
  %7:r2 = load u8 [%1]
  %8:r2 = {size}
  {guard}
bb3:
  %9:r1 = mov fp
  %10:r1 = add %9, -16
  %11:r0 = call bpf_probe_read_kernel(%10, %8, %6)
  br jeq %11, 0, bb4, bb5
bb4:
  ret 2
bb5:
  ret 1
}}
"""
NULLABLE = PROBE.format(size="and %7, 15", guard="jump bb3")


def test_a_null_source_aborts(bpf_permitted):
    assert _plan(parse_module(NULLABLE)) == [(JmpOp.EQ, 0, None)]
    original = compile_module(parse_module(NULLABLE))
    checked = _transform(parse_module(NULLABLE), f"helper_validation(code={CODE})")
    # byte 1 == 0: the source is NULL, the original's read fails (-EFAULT): 1
    for packet, plain, want in ((bytes([8, 0]), 1, CODE), (bytes([8, 1]), 2, 2),
                                (bytes([15, 0]), 1, CODE), (bytes([0, 1]), 2, 2)):
        packet += bytes(62)
        assert _both(original, [], packet)[0] == plain, packet[:2].hex()
        assert _both(checked, [], packet)[0] == want, packet[:2].hex()


def test_a_size_past_the_buffer_aborts(bpf_permitted):
    text = PROBE.format(size="mov %7", guard="jump bb3")
    assert _plan(parse_module(text)) == [(JmpOp.EQ, 0, None), (JmpOp.GT, 16, None)]
    # the verifier refuses the original: up to 255 bytes into 16
    refused = run_in_kernel(compile_module(parse_module(text)).insns, [], bytes(64))
    assert refused.reason == "invalid write to stack R1 off=-16 size=255"
    checked = _transform(parse_module(text), f"helper_validation(code={CODE})")
    for size, want in ((16, 2), (17, CODE), (255, CODE)):
        assert _both(checked, [], bytes([size, 1]) + bytes(62))[0] == want, size
    # on the interpreter the original writes past the frame
    got = run(compile_module(parse_module(text)).insns,
              Environment(prog_type=ProgType.XDP, packet=bytes([17, 1]) + bytes(62)))
    assert got.r0 is None and got.fault is not None


@pytest.mark.parametrize("text", [
    # the program tests the source itself on the way to the call
    PROBE.format(size="and %7, 15", guard="br jne %6, 0, bb3, bb4"),
    # a stack source is never NULL, and at most 16 bytes fit the 16 at fp-16
    PROBE.format(size="and %7, 16", guard="jump bb3").replace("%8, %6)", "%8, %10)"),
])
def test_what_needs_no_check(text):
    assert _plan(parse_module(text)) == []


# --- the contract table, one helper at a time --------------------------------------------

CALL = """
module @m section "xdp"
func @m args 1 {{
bb0:
  %0:r1 = arg 1
  %1:r2 = load u8 [%0]
  %2:r2 = {flags}
  %3:r0 = call {helper}({args})
  ret 0
}}
"""
FLAGS_AT = {"bpf_map_update_elem": (4, 2), "bpf_ringbuf_reserve": (3, 0),
            "bpf_ringbuf_submit": (2, 2), "bpf_ringbuf_discard": (2, 2),
            "bpf_ringbuf_output": (4, 2), "bpf_loop": (4, 0), "bpf_for_each_map_elem": (4, 0)}


def _call(helper: str, flags: str) -> ir.Module:
    n, _ = FLAGS_AT[helper]
    args = ", ".join("%2" if k == n else "8" for k in range(1, n + 1))  # the rest: no matter
    return parse_module(CALL.format(helper=helper, flags=flags, args=args))


@pytest.mark.parametrize("helper", sorted(FLAGS_AT))
def test_flags_from_the_packet_are_checked_constants_are_not(helper):
    limit = FLAGS_AT[helper][1]
    assert _plan(_call(helper, "mov %1")) == [(JmpOp.GT, limit, None)]
    assert _plan(_call(helper, f"mov {limit}")) == []  # a valid constant
    assert _plan(_call(helper, f"and %1, {limit}")) == []  # masked to the limit
    assert _plan(_call(helper, "and.32 %1, 1")) == ([] if limit else [(JmpOp.GT, 0, None)])
    with pytest.raises(EpassError) as e:
        run_passes(_call(helper, "mov 8"), parse_passes("helper_validation"))
    assert e.value.line().startswith(f"helper_validation: function m: {helper}: flags 0x8 "
                                     "are never valid (valid: ")


def test_lock_allows_bpf_f_lock_in_update_flags(built_progs, bpf_permitted):
    assert _plan(_call("bpf_map_update_elem", "mov %1"), lock=True) == \
        [(JmpOp.GT, 2, 2**64 - 1 - 4)]
    assert _plan(_call("bpf_map_update_elem", "mov 6"), lock=True) == []  # EXIST | LOCK
    obj = read_object(str(built_progs["helper_flags", "v3"]))
    (program,) = obj.programs
    checked = _transform(lift_program(program, obj.maps),
                         f"helper_validation(code={CODE} lock=1)")
    # the flags and-ed with ~BPF_F_LOCK, then compared: 4 and 6 pass the check and fail
    # in the helper (the array's value has no spin lock), as in the original
    assert len(checked.insns) == len(program.insns) + 5  # a copy to and, the and, as before
    for flags in (0, 1, 2, 3, 4, 5, 6, 7, 8, 255):
        packet = bytes([0x0B, flags]) + bytes(62)
        want = CODE if flags & ~4 > 2 else ORIGINAL.get(flags, progs.XDP_DROP)
        assert _both(checked, obj.maps, packet)[0] == want, flags
    with pytest.raises(EpassError) as e:
        run_passes(_call("bpf_map_update_elem", "mov 8"),
                   parse_passes("helper_validation(lock=1)"))
    assert e.value.line() == ("helper_validation: function m: bpf_map_update_elem: flags 0x8 "
                              "are never valid (valid: BPF_ANY, BPF_NOEXIST or BPF_EXIST, "
                              "with or without BPF_F_LOCK)")


@pytest.mark.parametrize(("text", "message"), [
    (PROBE.format(size="mov 32", guard="jump bb3").replace("%6)", "%10)"),
     "bpf_probe_read_kernel: size 32 does not fit the 16 bytes at fp-16"),
    (NULLABLE.replace("(%10, %8, %6)", "(%10, %8, %20)"),
     "bpf_probe_read_kernel: argument 3 is NULL"),
])
def test_constants_that_never_fit_are_errors(text, message):
    with pytest.raises(EpassError) as e:
        run_passes(parse_module(text), parse_passes("helper_validation"))
    assert e.value.line() == f"helper_validation: function pr: {message}"


# --- the command line ----------------------------------------------------------------------

BAD_FLAGS_C = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } m SEC(".maps");
SEC("xdp") int bad(struct xdp_md *ctx)
{
	__u32 k = 0; __u64 v = 1;
	return bpf_map_update_elem(&m, &k, &v, 8) ? XDP_DROP : XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def bad_flags_object(tmp_path_factory, requires_clang) -> str:
    src = tmp_path_factory.mktemp("bad") / "bad.bpf.c"
    src.write_text(BAD_FLAGS_C)
    obj = src.with_suffix(".o")
    cmd = progs.build_command("helper_flags", "v3", obj)[:-4]  # without -c SRC -o OUT
    subprocess.run([*cmd, "-c", str(src), "-o", str(obj)], check=True)
    return str(obj)


@pytest.mark.parametrize(("spec", "message"), [
    ("helper_validation(lock=2)", "helper_validation: lock must be 0 or 1, got 2"),
    ("helper_validation(code=0x80000000)",
     "helper_validation: code must fit in 32 signed bits, got 2147483648"),
    ("helper_validation(cod=1)", "-p: pass helper_validation has no option 'cod' "
                                 "(options: code, lock)"),
    ("helper_validation", "bad.bpf.o: section xdp: insn 11: helper_validation: function bad: "
                          "bpf_map_update_elem: flags 0x8 are never valid (valid: BPF_ANY, "
                          "BPF_NOEXIST or BPF_EXIST)"),
])
def test_bad_input_is_one_line_and_exit_2(bad_flags_object, tmp_path, spec, message):
    bad = epass("compile", bad_flags_object, "-o", str(tmp_path / "out.o"), "-p", spec)
    assert bad.code == 2
    assert bad.err.splitlines() == [bad.err.rstrip("\n")]
    assert bad.err.endswith(f"{message}\n"), bad.err


# --- every accepted test program ------------------------------------------------------------

# checks the pass inserts, by program: helper_flags' flags; a NULL check of the user
# pointer probe_read_user_str reads in kprobe_openat2 and tracepoint_openat (the latter's
# abort discards its record: 7 instructions); rv_maybe_null's probe_read_kernel source
CHECKS = {"helper_flags": 1, "kprobe_openat2": 1, "tracepoint_openat": 1, "rv_maybe_null": 1}
ACCEPTED = [p.name for p in progs.PROGS if p.verdict == "accept" and
            progs.CPUS.index(p.min_cpu) <= 1]


@pytest.mark.parametrize("name", ACCEPTED)
def test_every_accepted_program_stays_accepted_and_refines(built_progs, bpf_permitted, name,
                                                           tmp_path):
    src = str(built_progs[name, "v3"])
    obj = read_object(src)
    assert sum(len(plan(f, False)) for p in obj.programs
               for f in lift_program(p, obj.maps).functions) == CHECKS.get(name, 0)
    out = str(tmp_path / "out.o")
    compiled = epass("compile", src, "-o", out, "-p", "helper_validation", "--check")
    assert compiled.code == 0, compiled.err
    doc = epass("verify", out, "--json").json()
    if name == "fentry_unlinkat" and doc["programs"][0]["errno"] == 1:
        pytest.skip("this kernel refuses fentry loads with EPERM (tests/progs/README.md)")
    assert doc["rejected"] == 0, doc
    proved = epass("prove", src, out, "--json", "--unroll", "8")
    assert proved.code == 0, proved.out
    got = {(p["name"], p["verdict"], p["property"]) for p in proved.json()["programs"]}
    if name in CHECKS:
        (p,) = proved.json()["programs"]
        assert got == {(name, "refines", "all")}, p["reason"]
        assert [(a["fires"], a["original_unsafe"]) for a in p["aborts"]] == [(True, "never")]
    else:
        assert got == {(f, "equivalent", "syntax") for f, _ in progs.get(name).programs}

