"""The optimization passes const_fold, dce and zext: each transformation on IR text, what
they must leave alone, the kernel running folded code, insn_counter's updates removed again
by dce, and every accepted test program kept accepted, proven equivalent and not longer."""

from __future__ import annotations

import pytest
from test_builder import load_and_run

from epass.codegen import compile_module
from epass.ir import model as ir
from epass.ir.analysis import replace
from epass.ir.lift import lift_program
from epass.ir.model import Module
from epass.ir.text import format_module, parse_module
from epass.isa import slot_count
from epass.obj.reader import read_object
from epass.passes import parse_passes, run_passes
from epass.passes.const_fold import propagate

import progs
from cli import epass

MASK = (1 << 64) - 1


def optimized(text: str, spec: str) -> str:
    module = parse_module(text)
    run_passes(module, parse_passes(spec), check=True)
    return format_module(module)


def body(text: str) -> list[str]:
    """The lines between `func ... {` and `}` of the first function, comments stripped."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("func "))
    end = lines.index("}", start)
    return [line.split(";")[0].rstrip() for line in lines[start + 1:end]]


# --- const_fold -------------------------------------------------------------------

ALU = """
module @alu section "xdp"
func @alu args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = mov 5
  %2:r2 = add %1, 3
  %3:r3 = mov.32 -1
  %4:r3 = add.32 %3, 2
  %5:r4 = lsh %1, 62
  %6:r5 = mov 0
  %7:r5 = div %2, %6
  %8:r5 = mod.32 %2, %6
  %19:r6 = mov 33
  %9:r4 = arsh.32 %3, %19
  %10:r4 = be16 %1
  %11:r4 = sub %6, %1
  %12:r4 = sdiv %11, 2
  %13:r4 = lddw 0xfffffffe
  %14:r4 = rsh %13, %1
  %15:r4 = mul %3, %3
  %16:r4 = movsx8 %3
  %35:r6 = mov 36
  %17:r4 = lsh.32 %3, %35
  %18:r4 = neg.32 %1
  %20:r0 = xor %2, %4
  %21:r0 = xor %20, %5
  %22:r0 = xor %21, %7
  %23:r0 = xor %22, %8
  %24:r0 = xor %23, %9
  %25:r0 = xor %24, %10
  %26:r0 = xor %25, %12
  %27:r0 = xor %26, %13
  %28:r0 = xor %27, %14
  %29:r0 = xor %28, %15
  %30:r0 = xor %29, %16
  %31:r0 = xor %30, %17
  %32:r0 = xor %31, %18
  %33:r1 = rsh %32, 32
  %34:r0 = xor.32 %32, %33
  ret %34
}
"""


def test_const_fold_evaluates_every_width_as_ebpf_does():
    module = parse_module(ALU)
    vals, _ = propagate(module.main)
    got = {f"%{v.id}": c for v, c in vals.items()}
    # computed by hand: 64-bit ops wrap, 32-bit ops zero-extend, shift amounts are masked to
    # the width, x/0 == 0 and x%0 == x, sdiv truncates toward zero
    assert {k: got[k] for k in ("%0", "%1", "%2", "%4", "%5", "%7", "%8", "%9", "%10")} == {
        "%0": "over", "%1": 5, "%2": 8, "%4": 1, "%5": 1 << 62, "%7": 0, "%8": 8,
        "%9": 0xFFFF_FFFF,  # 0xffffffff s>> (33 & 31) on 32 bits, zero-extended
        "%10": 0x500}
    assert {k: got[k] for k in ("%12", "%13", "%14", "%15", "%16", "%17", "%18")} == {
        "%12": MASK - 1, "%13": 0xFFFF_FFFE, "%14": 0x7FF_FFFF, "%15": 0xFFFF_FFFE_0000_0001,
        "%16": MASK, "%17": 0xFFFF_FFF0, "%18": 0xFFFF_FFFB}
    assert got["%34"] == 0xB800_050A
    # the whole program is one constant; 0xb800050a is no sign-extended immediate: mov.32
    run_passes(module, parse_passes("const_fold"), check=True)
    assert body(format_module(module)) == [
        "bb0:", "  %0:r1 = arg 1", "  %34:r0 = mov.32 -1207958262", "  ret %34"]


def test_folded_code_returns_what_the_kernel_computes(bpf_permitted):
    # the kernel runs the original's ALU operations (shifts past the width by a register:
    # as immediates the verifier rejects them); the folded program is one constant
    original = compile_module(parse_module(ALU))
    module = parse_module(ALU)
    run_passes(module, parse_passes("const_fold"), check=True)
    folded = compile_module(module)
    assert len(folded.insns) < len(original.insns)
    got = load_and_run(original, {}, bytes(64))
    assert got == load_and_run(folded, {}, bytes(64)) == 0xB800_050A


BRANCHES = """
module @br section "xdp"
func @br args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = mov 4
  %2:r3 = load u32 [%0]
  br jeq %1, 4, bb1, bb2
bb1:
  jump bb3(%1)
bb2:
  %3:r4 = load u8 [%2]
  jump bb3(%3)
bb3(%4:r5):
  %5:r0 = add %4, 1
  %6:r6 = lddw 0x100000000
  br.32 jeq %6, 0, bb4, bb5
bb4:
  %7:r0 = add %2, %5
  ret %7
bb5:
  ret %5
}
"""


def test_branches_with_known_outcomes_fold_and_unreached_blocks_go():
    # %4 is 4: bb2, the only other way into bb3, is never reached (conditional propagation);
    # the low half of 2^32 is 0, so the 32-bit jeq is taken
    assert body(optimized(BRANCHES, "const_fold")) == [
        "bb0:",
        "  %0:r1 = arg 1",
        "  %2:r3 = load u32 [%0]",
        "  jump bb1",
        "bb1:",
        "  jump bb3",
        "bb3:",
        "  jump bb4",
        "bb4:",
        "  %7:r0 = add %2, 5",
        "  ret %7",
    ]


KEPT = """
module @kept section "xdp"
func @kept args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0]
  %2:r3 = mov 0
  %3:r3 = div %1, %2
  %4:r4 = mov 64
  %5:r4 = lsh %3, %4
  %6:r5 = lddw 0x100000000
  %7:r5 = add %5, %6
  store u32 [%0], %2
  %8:r6 = mov fp
  %9:r6 = add %8, -8
  %10:r7 = mov %9
  %11:r8 = mov 5
  %12:r8 = lsh %11, 62
  store u64 [%0 + 8], %12
  store u64 [fp - 8], %6
  store u32 [fp - 16], %6
  br jgt %7, %6, bb1, bb2
bb1:
  ret %10
bb2:
  ret 0
}
"""


def test_what_const_fold_must_not_turn_into_immediates():
    lines = body(optimized(KEPT, "const_fold"))
    assert lines == [
        "bb0:",
        "  %0:r1 = arg 1",
        "  %1:r2 = load u32 [%0]",
        "  %2:r3 = mov 0",
        "  %3:r3 = div %1, %2",  # the kernel rejects a division by the immediate 0
        "  %4:r4 = mov 64",
        "  %5:r4 = lsh %3, %4",  # and a shift by 64 or more
        "  %6:r5 = lddw 0x100000000",
        "  %7:r5 = add %5, %6",  # 2^32 is no sign-extended 32-bit immediate
        "  store u32 [%0], %2",  # not the stack: the base may be the context
        "  %8:r6 = mov fp",  # pointers are never constants
        "  %9:r6 = add %8, -8",
        "  %10:r7 = mov %9",
        "  %11:r8 = mov 5",
        "  %12:r8 = lsh %11, 62",  # 2^62 needs an lddw (two slots): the shift stays
        "  store u64 [%0 + 8], %12",
        "  store u64 [fp - 8], %6",
        "  store u32 [fp - 16], 0",  # the low half of 2^32, in a 4-byte store
        "  br jgt %7, %6, bb1, bb2",
        "bb1:",
        "  ret %10",
        "bb2:",
        "  ret 0",
    ]


# --- dce ----------------------------------------------------------------------------

DEAD = """
module @d section "xdp"
func @d args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0]
  %2:r3 = load u32 [%0 + 4]
  %3:r4 = add %1, 1
  br jgt %1, 5, bb1(%3), bb1(%3)
bb1(%4:r4):
  %5:r5 = mov 0
  jump bb2(%4, %5)
bb2(%6:r4, %7:r5):
  %8:r4 = add %6, 1
  %9:r5 = add %7, 1
  br jlt %9, 10, bb2(%8, %9), bb3
bb3:
  ret %9
bb4:
  ret 1
}
"""


def test_dce_removes_unused_values_parameters_and_unreachable_blocks():
    # the unused load goes; a branch to one block with the same arguments is a jump, after
    # which the loaded value is unused too; %6 only feeds itself around the loop (a dead
    # cycle through a parameter), and with it %3 and %4; bb4 is unreachable
    assert body(optimized(DEAD, "dce")) == [
        "bb0:",
        "  %0:r1 = arg 1",
        "  jump bb1",
        "bb1:",
        "  %5:r5 = mov 0",
        "  jump bb2(%5)",
        "bb2(%7:r5):",
        "  %9:r5 = add %7, 1",
        "  br jlt %9, 10, bb2(%9), bb3",
        "bb3:",
        "  ret %9",
    ]


STORES = """
module @s section "xdp"
map @m type 1 key 4 value 8 max 4
func @s args 1 {{
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0]
  store u64 [fp - 8], 0
  store u64 [fp - 8], %1
  store u32 [fp - 16], %1
  store u32 [fp - 24], 7
  %2:r3 = mov 1
  atomic add u64 [fp - 32], %2
  %3:r2 = mov fp
  %4:r2 = add %3, -16
  %5:r1 = map @m
  %6:r0 = call bpf_map_lookup_elem(%5, %4)
  store u64 [fp - 40], 1
  {extra}
  br jeq %6, 0, bb1, bb2
bb1:
  store u64 [fp - 8], 5
  ret 0
bb2:
  %7:r0 = load u64 [fp - 8]
  ret %7
}}
func @sub args 1 {{
bb0:
  %0:r1 = arg 1
  ret 0
}}
"""


def test_dce_removes_dead_stack_stores():
    # fp-8: the 0 is overwritten before anything reads it, the packet word is read (by the
    # helper, and on one path by the load), the 5 is never read (the function returns); the
    # helper reads its key at fp-16 and may read up to fp, not below: fp-24, the atomic add
    # to fp-32 and fp-40 are never read
    assert body(optimized(STORES.format(extra=""), "dce")) == [
        "bb0:",
        "  %0:r1 = arg 1",
        "  %1:r2 = load u32 [%0]",
        "  store u64 [fp - 8], %1",
        "  store u32 [fp - 16], %1",
        "  %3:r2 = mov fp",
        "  %4:r2 = add %3, -16",
        "  %5:r1 = map @m",
        "  %6:r0 = call bpf_map_lookup_elem(%5, %4)",
        "  br jeq %6, 0, bb1, bb2",
        "bb1:",
        "  ret 0",
        "bb2:",
        "  %7:r0 = load u64 [fp - 8]",
        "  ret %7",
    ]


@pytest.mark.parametrize("extra", [
    "store u64 [%0 + 8], %4",  # a frame pointer stored: whoever loads it may read anything
    "%8:r0 = call @sub(%4)",  # a subprogram may offset it anywhere in the frame
    "%8:r3 = func @sub\n  %9:r0 = call bpf_loop(%1, %8, %4, %1)",  # so may a callback
    "%8:r0 = call bpf_dynptr_from_mem(%4, %1, %1, %4)",  # a dynptr keeps pointing at it
    "%8:r0 = call helper#300(%4)",  # a helper this kernel does not know
    "%8:r3 = add %3, %1\n  %9:r3 = load u8 [%8]\n  store u8 [%0], %9",  # unknown offset
    "%8:r3 = call bpf_get_current_comm(%3, %1)",  # a helper handed fp itself reads anything
])
def test_dce_keeps_stores_when_a_frame_pointer_escapes(extra):
    out = optimized(STORES.format(extra=extra), "dce")
    stores = [line.strip() for line in body(out) if "[fp" in line]
    want = ["store u64 [fp - 8], 0", "store u64 [fp - 8], %1", "store u32 [fp - 16], %1",
            "store u32 [fp - 24], 7", "atomic add u64 [fp - 32], %2",
            "store u64 [fp - 40], 1", "store u64 [fp - 8], 5", "%7:r0 = load u64 [fp - 8]"]
    if "comm" in extra:  # fp itself may be read anywhere: only the overwritten 0, the 5
        want = [s for s in want if s not in ("store u64 [fp - 8], 0", "store u64 [fp - 8], 5")]
    assert stores == want


def _slots(program) -> int:
    return sum(slot_count(i) for i in program.insns)


def _lift_v3(built_progs, name: str) -> Module:
    obj = read_object(str(built_progs[name, "v3"]))
    (program,) = obj.programs
    return lift_program(program, obj.maps)


def test_dce_removes_a_counter_nothing_reads(built_progs):
    # insn_counter leaves a loop-free program alone; with dce after it, still the original
    original = compile_module(_lift_v3(built_progs, "xdp_parse_drop"))
    module = _lift_v3(built_progs, "xdp_parse_drop")
    run_passes(module, parse_passes("insn_counter,dce"), check=True)
    assert _slots(compile_module(module)) == _slots(original) == 25
    # in insn_loop the header's check reads the counter; remove the check, as redundant-check
    # elimination would: the counter is written and never read, and dce removes it all
    original = compile_module(_lift_v3(built_progs, "insn_loop"))
    module = _lift_v3(built_progs, "insn_loop")
    run_passes(module, parse_passes("insn_counter"), check=True)
    counted = compile_module(module)
    (check,) = [b.terminator for b in module.main.blocks if isinstance(b.terminator, ir.Branch)
                and getattr(b.terminator.then.target.terminator, "abort", False)]
    replace(check, ir.Jump(ir.Edge(check.orelse.target)))
    run_passes(module, parse_passes("dce"), check=True)
    cleaned = compile_module(module)
    # 8 slots: the start and its top byte at entry, the header's load, add, store and
    # check, the abort (two); the load/add/store only feeds the slot it reads: dead too
    assert (_slots(original), _slots(counted), _slots(cleaned)) == (28, 36, 28)
    assert cleaned.insns == original.insns


COUNTER = """
module @m section "xdp"
func @m args 1 {{
bb0:
  %0:r1 = arg 1
  store u64 [fp - 8], 3
  jump bb1
bb1:
  %1:r2 = load u64 [fp - 8]
  %2:r2 = add %1, 5
  store u64 [fp - 8], %2
  %3:r3 = load u32 [%0]
  br jgt %3, 7, bb1, bb2
bb2:
  {tail}
}}
"""


@pytest.mark.parametrize(("tail", "kept"), [
    ("ret 0", False),  # the slot only feeds itself: all of it goes
    ("%4:r0 = load u64 [fp - 8]\n  ret %4", True),  # read at the end: all of it stays
])
def test_dce_and_a_slot_that_feeds_itself(tail, kept):
    text = COUNTER.format(tail=tail)
    out = body(optimized(text, "dce"))
    assert ("  %1:r2 = load u64 [fp - 8]" in out) == kept
    assert ("  store u64 [fp - 8], 3" in out) == kept
    assert ("  store u64 [fp - 8], %2" in out) == kept
    assert "  %3:r3 = load u32 [%0]" in out


def test_dce_keeps_a_counter_that_is_checked(built_progs):
    module = _lift_v3(built_progs, "insn_loop")
    run_passes(module, parse_passes("insn_counter"), check=True)
    counted = compile_module(module)
    module = _lift_v3(built_progs, "insn_loop")
    run_passes(module, parse_passes("insn_counter,dce"), check=True)
    assert compile_module(module).insns == counted.insns  # the loop header loads it


# --- zext ---------------------------------------------------------------------------

PAIRS = """
module @z section "xdp"
func @z args 2 {
bb0:
  %0:r1 = arg 1
  %50:r2 = arg 2
  %1:r2 = load u32 [%0]
  %2:r2 = lsh %1, 32
  %3:r2 = rsh %2, 32
  %4:r3 = load u64 [%0 + 8]
  %5:r4 = mov %4
  %6:r4 = lsh %5, 32
  %7:r5 = mov %6
  %8:r5 = rsh %7, 32
  %9:r6 = lsh %4, 32
  %10:r6 = arsh %9, 32
  %11:r7 = load s32 [%0 + 16]
  %12:r7 = lsh %11, 32
  %13:r7 = arsh %12, 32
  %14:r8 = and %4, 255
  %15:r8 = lsh %14, 32
  %16:r8 = rsh %15, 32
  %17:r9 = lsh %1, 32
  %18:r9 = rsh %17, 31
  %19:r3 = rsh %4, 40
  %20:r3 = lsh %19, 32
  %21:r3 = rsh %20, 32
  %22:r4 = add.32 %4, 1
  %23:r4 = lsh %22, 32
  %24:r4 = rsh %23, 32
  %25:r5 = lsh %50, 32
  %26:r5 = rsh %25, 32
  %27:r6 = or %4, %1
  %28:r6 = lsh %27, 32
  %29:r6 = rsh %28, 32
  %30:r7 = mov.32 -1
  %31:r7 = lsh %30, 32
  %32:r7 = arsh %31, 32
  %33:r8 = mov -1
  %34:r8 = lsh %33, 32
  %35:r8 = arsh %34, 32
  store u64 [%0], %3
  store u64 [%0], %8
  store u64 [%0], %10
  store u64 [%0], %13
  store u64 [%0], %16
  store u64 [%0], %18
  store u64 [%0], %21
  store u64 [%0], %24
  store u64 [%0], %26
  store u64 [%0], %29
  store u64 [%0], %32
  store u64 [%0], %35
  ret 0
}
"""


def test_zext_removes_known_extensions_and_narrows_the_rest():
    assert body(optimized(PAIRS, "zext")) == [
        "bb0:",
        "  %0:r1 = arg 1",
        "  %50:r2 = arg 2",
        "  %1:r2 = load u32 [%0]",  # a u32 load is zero-extended: its pair goes
        "  %4:r3 = load u64 [%0 + 8]",
        "  %8:r5 = mov.32 %4",  # unknown upper half: one mov.32, copies looked through
        "  %9:r6 = lsh %4, 32",  # not known sign-extended: the arsh pair stays
        "  %10:r6 = arsh %9, 32",
        "  %11:r7 = load s32 [%0 + 16]",  # a sign-extending load: its arsh pair goes
        "  %14:r8 = and %4, 255",  # and with an immediate >= 0: known, the pair goes
        "  %17:r9 = lsh %1, 32",  # >> 31 is no zero-extension
        "  %18:r9 = rsh %17, 31",
        "  %19:r3 = rsh %4, 40",  # rsh by 32 or more: known
        "  %22:r4 = add.32 %4, 1",  # a 32-bit ALU result: known
        "  %26:r5 = mov.32 %50",  # an argument: unknown
        "  %27:r6 = or %4, %1",
        "  %29:r6 = mov.32 %27",  # or with an unknown operand: unknown
        "  %30:r7 = mov.32 -1",  # 0xffffffff: sign-extending it changes it
        "  %31:r7 = lsh %30, 32",
        "  %32:r7 = arsh %31, 32",
        "  %33:r8 = mov -1",  # a sign-extended immediate: the arsh pair goes
        "  store u64 [%0], %1",
        "  store u64 [%0], %8",
        "  store u64 [%0], %10",
        "  store u64 [%0], %11",
        "  store u64 [%0], %14",
        "  store u64 [%0], %18",
        "  store u64 [%0], %19",
        "  store u64 [%0], %22",
        "  store u64 [%0], %26",
        "  store u64 [%0], %29",
        "  store u64 [%0], %32",
        "  store u64 [%0], %33",
        "  ret 0",
    ]


# --- every accepted test program ---------------------------------------------------

BUILDS = [(p.name, cpu) for p in progs.PROGS if p.verdict == "accept" for cpu in p.cpus]
# each pass alone on the builds where it has work (zext: v2, which has no ALU32), the
# three together on every build: the gate's time stays a few minutes
SPEC_CPUS = {"const_fold": ("v3",), "dce": ("v3",), "zext": ("v2",),
             "const_fold,zext,dce": progs.CPUS}
CASES = [(spec, name, cpu) for spec, cpus in SPEC_CPUS.items() for name, cpu in BUILDS
         if cpu in cpus]


def _compiled(path: str, spec: str) -> list[tuple[list, list]]:
    """(round trip, after the passes) instructions of each program of an object."""
    obj = read_object(path)
    out = []
    for program in obj.programs:
        module = lift_program(program, obj.maps)
        run_passes(module, parse_passes(spec), check=True)
        out.append((compile_module(lift_program(program, obj.maps)).insns,
                    compile_module(module).insns))
    return out


@pytest.mark.parametrize(("spec", "name", "cpu"), CASES)
def test_every_accepted_program_stays_accepted_equivalent_and_no_longer(
        built_progs, bpf_permitted, name, cpu, spec, tmp_path):
    src = str(built_progs[name, cpu])
    pairs = _compiled(src, spec)
    assert all(sum(map(slot_count, after)) <= sum(map(slot_count, before))
               for before, after in pairs)
    if all(before == after for before, after in pairs):
        return  # the round trip's own code, which test_compile loads and test_prove proves
    out = str(tmp_path / "out.o")
    compiled = epass("compile", src, "-o", out, "-p", spec, "--check", "--json")
    assert compiled.code == 0, compiled.err
    assert all(p["insns_after"] <= p["insns_before"] for p in compiled.json()["programs"])
    verified = epass("verify", out, "--json")
    doc = verified.json()
    if name == "fentry_unlinkat" and doc["programs"][0]["errno"] == 1:
        pass  # this kernel refuses fentry loads with EPERM (tests/progs/README.md)
    else:
        assert verified.code == 0 and doc["rejected"] == 0, verified.out
    proved = epass("prove", src, out, "--json", "--unroll", "8", "--timeout", "120")
    for p in proved.json()["programs"]:
        assert p["verdict"] == "equivalent", (p["name"], p["verdict"], p["reason"])
    for function, _ in progs.get(name).programs if progs.get(name).test_run else ():
        # the kernel runs it on the sample packet as it runs the original: r0, packet, maps
        runs = [epass("run", path, "-s", function, "--kernel", "--json").json()["kernel"]
                for path in (src, out)]
        for run in runs:
            del run["duration_ns"]
        assert runs[0] == runs[1] and runs[0]["accepted"]


def test_listed_as_optimizations_and_bad_options_are_one_line(built_progs, tmp_path):
    rows = {p["name"]: p for p in epass("passes", "--json").json()["passes"]}
    assert {n: (rows[n]["kind"], rows[n]["round"], rows[n]["options"]) for n in
            ("const_fold", "dce", "zext")} == dict.fromkeys(
        ("const_fold", "dce", "zext"), ("optimization", "final", []))
    bad = epass("compile", str(built_progs["xdp_parse_drop", "v3"]), "-o",
                str(tmp_path / "o.o"), "-p", "const_fold,dce(level=2)")
    assert (bad.code, bad.err) == (2, "epass: error: -p: pass dce has no option 'level' "
                                      "(options: none)\n")
