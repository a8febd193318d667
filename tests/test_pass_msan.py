"""The msan pass: what the static part proves, what the runtime checks catch, in the
interpreter, in the kernel and under `epass prove`."""

from __future__ import annotations

import pytest
from test_builder import load_and_run

from epass.codegen import compile_module
from epass.errors import EpassError
from epass.ir import model as ir
from epass.ir.lift import lift_program
from epass.ir.text import parse_module
from epass.obj.reader import read_object
from epass.passes import parse_passes, run_passes
from epass.passes.msan import unproven
from epass.semantics.interp import Environment, run
from epass.uapi import ProgType

import progs
from cli import epass

INIT = bytes([2]) + bytes(63)  # the first byte 2: the program writes v before reading it
UNINIT = bytes(64)  # any other: v is read uninitialized


def _lift(built_progs, name: str) -> ir.Module:
    obj = read_object(str(built_progs[name, "v3"]))
    (program,) = obj.programs
    return lift_program(program, obj.maps)


def _run(program, packet: bytes):
    return run(program.insns, Environment(prog_type=ProgType.XDP, packet=packet))


def test_msan_aborts_only_on_the_uninitialized_read(built_progs, bpf_permitted):
    original = compile_module(_lift(built_progs, "uninit_read"))
    module = _lift(built_progs, "uninit_read")
    (load,) = [inst for inst, _ in unproven(module.main)]
    assert (load.size, load.off, load.origin) == (8, -8, 12)  # v; `base` is proven
    run_passes(module, parse_passes("msan(code=42)"), check=True)
    checked = compile_module(module)
    assert _run(original, INIT).r0 == progs.XDP_PASS
    assert [e.offset for e in _run(original, UNINIT).uninit_reads] == [504]
    for packet, want in ((INIT, progs.XDP_PASS), (UNINIT, 42)):
        got = _run(checked, packet)
        assert (got.r0, got.uninit_reads) == (want, []), packet[:1].hex()
        assert load_and_run(checked, {}, packet) == want, packet[:1].hex()
    assert load_and_run(original, {}, INIT) == progs.XDP_PASS
    assert len(checked.aborts) == 1
    # zero the shadow, set v's 8 bits after its store, test them before its load
    assert len(checked.insns) == len(original.insns) + 6


def test_statically_initialized_programs_cost_nothing(built_progs):
    module = _lift(built_progs, "xdp_parse_drop")
    before = compile_module(_lift(built_progs, "xdp_parse_drop"))
    run_passes(module, parse_passes("msan"), check=True)
    after = compile_module(module)
    assert after.insns == before.insns and after.aborts == []


PARTIAL = """
module @m section "xdp"
func @m args 1 {{
bb0:
  %0:r1 = arg 1
  %14:r2 = load u32 [%0]
  %1:r2 = load u8 [%14]
  store u32 [fp - 8], 1
  %2:r3 = mov fp
  %3:r3 = add %2, -16
  store u16 [%3 + 2], 5
  br jeq %1, 0, bb2, bb1
bb1:
  store u32 [fp - 4], 2
  %4:r1 = mov fp
  %5:r1 = add %4, -32
  %6:r2 = mov 16
  %7:r0 = call {helper}(%5, %6)
  jump bb2
bb2:
  %8:r0 = load u32 [fp - 8]
  %9:r0 = load u16 [fp - 14]
  %10:r0 = load u64 [fp - 8]
  %11:r0 = load u64 [fp - 8]
  %12:r0 = load u64 [fp - 32]
  %13:r0 = load u8 [fp - {low}]
  ret %13
}}
"""


@pytest.mark.parametrize(("helper", "flagged"), [
    ("bpf_get_current_comm", [-8, -32]),  # its contract: it writes [fp - 32, fp - 16)
    ("bpf_trace_printk", [-8, -32]),  # no contract known: writes nothing it is given
])
def test_what_the_static_part_proves(helper, flagged):
    module = parse_module(PARTIAL.format(helper=helper, low=13))
    # fp-8 (4 bytes) and fp-14 (through a derived pointer) are written on every path; the
    # 8-byte read of fp-8 is not (fp-4 only on one path), and once checked the next one
    # needs no check; fp-32 only on one path (and not at all by an unknown helper)
    found = unproven(module.main)
    assert [(i.operands[0] is ir.FP, acc[0]) for i, acc in found] == \
        [(True, off) for off in flagged]


def test_msan_on_ir_sets_shadow_bits_and_reports_a_full_frame():
    module = parse_module(PARTIAL.format(helper="bpf_get_current_comm", low=13))
    run_passes(module, parse_passes("msan(code=7)"), check=True)
    program = compile_module(module)
    assert len(program.aborts) == 2
    # first byte 0: fp-4 and the helper's buffer are never written, the check aborts;
    # else every byte read was written: the original's result (byte fp-13 of the 5 stored)
    for first, want in ((0, 7), (1, 0)):
        got = run(program.insns, Environment(prog_type=ProgType.XDP,
                                             packet=bytes([first]) + bytes(63)))
        assert (got.r0, got.uninit_reads) == (want, [])
    full = parse_module(PARTIAL.format(helper="bpf_get_current_comm", low=508))
    with pytest.raises(EpassError, match="msan: function m uses 512 bytes of stack, no room "
                                         "for its 64-byte shadow below the frame"):
        run_passes(full, parse_passes("msan"))


# what `epass prove` says about msan's output, by program: nothing changes where every
# stack read is proven (the same instructions: syntax), checks where one is not
REFINES = {"uninit_read"}
ACCEPTED = [p.name for p in progs.PROGS if p.verdict == "accept" and
            progs.CPUS.index(p.min_cpu) <= 1]


@pytest.mark.parametrize("name", ACCEPTED)
def test_msan_refines_every_accepted_test_program(built_progs, bpf_permitted, name, tmp_path):
    src = str(built_progs[name, "v3"])
    out = str(tmp_path / "out.o")
    run = epass("compile", src, "-o", out, "-p", "msan", "--check")
    assert run.code == 0, run.err
    verify = epass("verify", out, "--json")
    doc = verify.json()
    if name == "fentry_unlinkat" and doc["programs"][0]["errno"] == 1:
        pytest.skip("this kernel refuses fentry loads with EPERM (tests/progs/README.md)")
    assert verify.code == 0 and doc["rejected"] == 0, verify.out
    run = epass("prove", src, out, "--json", "--unroll", "8")
    doc = run.json()
    got = {(p["name"], p["verdict"], p["property"]) for p in doc["programs"]}
    if name in REFINES:
        (p,) = doc["programs"]
        assert got == {(name, "refines", "all")}, p["reason"]
        assert [(a["fires"], a["original_unsafe"]) for a in p["aborts"]] == [(True, "never")]
    else:
        assert got == {(f, "equivalent", "syntax") for f, _ in progs.get(name).programs}
    assert run.code == 0
