"""`epass prove`: the round trip is proven equivalent; broken transformations are caught
with a counterexample the interpreter confirms."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from irutil import DIVIDE, round_trip

from epass.commands.run import interpreter_inputs
from epass.isa import AluOp, Goto, JmpOp, parse_program
from epass.isa import insn as isa
from epass.obj.reader import read_object
from epass.obj.writer import write_object
from epass.semantics.interp import MapSpec
from epass.smt import ProofInputs, Verdict, prove
from epass.uapi import MapType, ProgType

import progs
from cli import epass

NEGATE = {JmpOp.EQ: JmpOp.NE, JmpOp.NE: JmpOp.EQ, JmpOp.GT: JmpOp.LE, JmpOp.LE: JmpOp.GT,
          JmpOp.GE: JmpOp.LT, JmpOp.LT: JmpOp.GE, JmpOp.SGT: JmpOp.SLE, JmpOp.SLE: JmpOp.SGT,
          JmpOp.SGE: JmpOp.SLT, JmpOp.SLT: JmpOp.SGE}


def mutate(insns: list[isa.Insn], kind: str) -> list[isa.Insn]:
    """The first place a mutation of this kind applies, changed."""
    out = list(insns)
    for k, i in enumerate(insns):
        if kind == "branch" and isinstance(i, isa.Jump) and i.op in NEGATE:
            out[k] = replace(i, op=NEGATE[i.op])
        elif kind == "drop_store" and isinstance(i, isa.Store):
            out[k] = Goto(0)
        elif kind == "width" and isinstance(i, isa.Store) and i.size < 8:
            out[k] = replace(i, size=i.size * 2)
        elif kind == "const" and isinstance(i, isa.Alu) and i.src is None and \
                i.op in (AluOp.ADD, AluOp.AND, AluOp.MOV, AluOp.LSH):
            out[k] = replace(i, imm=i.imm + 1)
        else:
            continue
        return out
    raise AssertionError(f"no place for a {kind} mutation")


MUTATIONS = [
    ("atomics", "atomics", "const", "maps"), ("atomics", "atomics", "width", "fault"),
    ("atomics", "atomics", "branch", "maps"),
    ("subprog_calls", "subprog_calls", "const", "r0"),
    ("subprog_calls", "subprog_calls", "branch", "r0"),
    ("two_sections", "xdp_count", "const", "maps"), ("two_sections", "xdp_count", "width", "fault"),
    ("two_sections", "xdp_count", "branch", "maps"),
    ("two_sections", "xdp_count", "drop_store", "maps"),
    ("two_sections", "tc_count", "const", "maps"), ("two_sections", "tc_count", "width", "fault"),
    ("two_sections", "tc_count", "branch", "maps"),
    ("two_sections", "tc_count", "drop_store", "maps"),
    ("xdp_parse_drop", "xdp_parse_drop", "branch", "r0"),
    ("xdp_rewrite", "xdp_rewrite", "branch", "r0"),
    ("xdp_rewrite", "xdp_rewrite", "drop_store", "packet"),
    ("xdp_map_counter", "xdp_map_counter", "width", "fault"),
    ("global_data", "global_data", "const", "maps"),
    ("global_data", "global_data", "drop_store", "maps"),
    ("global_data", "global_data", "branch", "r0"),
    ("socket_len", "socket_len", "branch", "r0"), ("socket_len", "socket_len", "const", "r0"),
    ("tc_skb_fields", "tc_skb_fields", "branch", "r0"),
    ("tc_skb_fields", "tc_skb_fields", "const", "r0"),
    ("tc_skb_fields", "tc_skb_fields", "drop_store", "ctx"),
    ("tc_skb_fields", "tc_skb_fields", "width", "fault"),  # Z3: ctx; the replay faults
    ("socket_ld_abs", "socket_ld_abs", "branch", "r0"),
    ("socket_ld_abs", "socket_ld_abs", "const", "r0"),
    # hash maps, ring buffers, probe_read_str, get_current_comm
    ("kprobe_openat2", "kprobe_openat2", "const", "maps"),
    ("kprobe_openat2", "kprobe_openat2", "drop_store", "maps"),
    ("kprobe_openat2", "kprobe_openat2", "branch", "fault"),
    ("maps_btf", "maps_btf", "const", "maps"), ("maps_btf", "maps_btf", "branch", "maps"),
    ("maps_btf", "maps_btf", "width", "fault"),
    ("tc_classifier", "tc_classifier", "branch", "r0"),
    ("tc_classifier", "tc_classifier", "drop_store", "ctx"),
    ("tracepoint_openat", "tracepoint_openat", "const", "calls"),
    ("tracepoint_openat", "tracepoint_openat", "drop_store", "calls"),
    ("tracepoint_openat", "tracepoint_openat", "branch", "calls"),
]


@pytest.mark.parametrize(("name", "function", "kind", "prop"), MUTATIONS,
                         ids=[f"{n}-{f}-{k}" for n, f, k, _ in MUTATIONS])
def test_a_broken_transformation_is_caught(built_progs, name, function, kind, prop):
    obj = read_object(str(built_progs[name, "v3"]))
    program = obj.program(function)
    insns, maps = interpreter_inputs(obj, program)
    result = prove(insns, mutate(insns, kind), ProofInputs(program.kind.prog_type, maps))
    assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, prop), result.reason
    cex = result.counterexample
    assert cex is not None and cex.confirmed
    assert cex.original != cex.transformed
    assert len(cex.packet) <= 64  # short: the search starts at 14 bytes


@pytest.mark.parametrize(("change", "seen"), [("add", "10000000"), ("stop", "01000000")])
def test_a_broken_for_each_callback_is_caught(built_progs, change, seen):
    """bpf_loop_cb's elem_cb, the bpf_for_each_map_elem callback over `weights`: counting
    each element twice (c->mul += 2), or stopping the walk after the first element (return
    1), is NOT_EQUIVALENT; the replay on the interpreter shows elem_seen (.bss+16) at 16 or
    1 instead of 8."""
    obj = read_object(str(built_progs["bpf_loop_cb", "v3"]))
    program = obj.program("bpf_loop_cb")
    insns, maps = interpreter_inputs(obj, program)
    (cb,) = [f for f in program.functions if f.name == "elem_cb"]
    body = [k for k, slot in enumerate(isa.slot_indices(insns))
            if cb.start <= slot < cb.start + cb.slots]
    op, dst, imm = (AluOp.ADD, 1, 2) if change == "add" else (AluOp.MOV, 0, 1)
    (k,) = [k for k in body if isinstance(insns[k], isa.Alu) and insns[k].op == op
            and insns[k].dst == dst and insns[k].src is None]
    broken = list(insns)
    broken[k] = replace(insns[k], imm=imm)
    result = prove(insns, broken, ProofInputs(program.kind.prog_type, maps))
    assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, "maps"), result.reason
    cex = result.counterexample
    assert cex is not None and cex.confirmed
    assert cex.original["maps"][".bss"]["00000000"][32:40] == "08000000"
    assert cex.transformed["maps"][".bss"]["00000000"][32:40] == seen


UPDATES = """
    *(u32 *)(r10 -4) = 0
    *(u64 *)(r10 -16) = 1
    *(u64 *)(r10 -24) = 2
    r1 = map[idx:0] ll
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += {first}
    r4 = 0
    call bpf_map_update_elem#2
    r1 = map[idx:0] ll
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += {second}
    r4 = 0
    call bpf_map_update_elem#2
    r0 = 2
    exit
"""


def test_reordered_helper_calls_are_caught():
    maps = [MapSpec("m", MapType.ARRAY, 4, 8, 1)]
    a = parse_program(UPDATES.format(first=-16, second=-24))
    b = parse_program(UPDATES.format(first=-24, second=-16))
    result = prove(a, b, ProofInputs(ProgType.XDP, maps))
    assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, "maps")
    cex = result.counterexample
    assert cex.original["maps"] == {"m": {"00000000": "0200000000000000"}}
    assert cex.transformed["maps"] == {"m": {"00000000": "0100000000000000"}}
    same = prove(a, list(a), ProofInputs(ProgType.XDP, maps))
    assert (same.verdict, same.property) == (Verdict.EQUIVALENT, "syntax")


HASH_UPDATE = """
    r1 = map[idx:0] ll
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += -16
    r4 = 0
    call bpf_map_update_elem#2
"""
HASH_DELETE = """
    r1 = map[idx:0] ll
    r2 = r10
    r2 += -8
    call bpf_map_delete_elem#3
"""


@pytest.mark.parametrize(("key2", "verdict"), [(7, Verdict.EQUIVALENT),
                                               (5, Verdict.NOT_EQUIVALENT)])
def test_hash_map_keys_are_told_apart(key2, verdict):
    """Update key 5 then delete key2, against the other order: the maps end the same when
    key2 is another key, not when it is the same one (the entry survives in one program)."""
    maps = [MapSpec("h", MapType.HASH, 4, 8, 16)]
    start = f"*(u32 *)(r10 -4) = 5\n*(u32 *)(r10 -8) = {key2}\n*(u64 *)(r10 -16) = 1\n"
    end = "r0 = 2\nexit\n"
    a = parse_program(start + HASH_UPDATE + HASH_DELETE + end)
    b = parse_program(start + HASH_DELETE + HASH_UPDATE + end)
    result = prove(a, b, ProofInputs(ProgType.XDP, maps))
    cex = result.counterexample
    if verdict == Verdict.EQUIVALENT:  # the calls still come in another order
        assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, "calls")
        assert cex.original["maps"] == cex.transformed["maps"]
    else:
        assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, "maps")
        assert (cex.original["maps"], cex.transformed["maps"]) == (
            {"h": {}}, {"h": {"05000000": "0100000000000000"}})


# what the Z3 encoding cannot decide yet, by program (docs/prove.md)
V3 = [p.name for p in progs.PROGS if progs.CPUS.index(p.min_cpu) <= 1]


@pytest.mark.parametrize("name", V3)
def test_the_round_trip_is_proven_equivalent(built_progs, name):
    """The allocator on its own (no hints) must give programs Z3 proves equivalent: the
    loops of loop_bounded and reject_loop_states run past the unroll bound, and loop pairing
    proves them with the registers the allocator renamed related by inference."""
    obj = read_object(str(built_progs[name, "v3"]))
    for program in obj.programs:
        new = round_trip(program, hints=False, maps=obj.maps)
        a, maps = interpreter_inputs(obj, program)
        b, _ = interpreter_inputs(obj, new)
        kind = program.kind.prog_type if program.kind else None
        result = prove(a, b, ProofInputs(kind, maps), unroll=8)
        assert result.verdict == Verdict.EQUIVALENT, (program.name, result.reason)
        if name in ("loop_bounded", "reject_loop_states"):
            assert "loop(s) paired" in result.reason and "at header 1 r" in result.reason


def _mutated_object(obj, function: str, kind: str, path) -> str:
    program = obj.program(function)
    programs = {p.name: p for p in obj.programs}
    programs[function] = replace(program, insns=mutate(program.insns, kind))
    path.write_bytes(write_object(obj, programs))
    return str(path)


def test_cli_exit_codes_and_json(built_progs, tmp_path):
    src = str(built_progs["xdp_rewrite", "v3"])
    same = epass("prove", src, src)
    assert same.code == 0
    # the time is a whole number of milliseconds (0 or 1: a loaded machine may take one)
    assert re.fullmatch(re.escape(f"{src}: xdp/xdp_rewrite: EQUIVALENT (syntax): the "
                                  "instructions are identical [") + r"[01] ms\]\n", same.out)
    obj = read_object(src)
    bad = _mutated_object(obj, "xdp_rewrite", "branch", tmp_path / "bad.o")
    run = epass("prove", src, bad, "--json")
    assert run.code == 1, run.err
    doc = run.json()
    (p,) = doc["programs"]
    assert (doc["verdict"], p["verdict"], p["property"]) == ("not_equivalent",
                                                             "not_equivalent", "r0")
    assert p["counterexample"]["confirmed"] is True
    assert p["counterexample"]["original"]["r0"] != p["counterexample"]["transformed"]["r0"]
    kernel = p["counterexample"]["kernel"]  # the negated branch makes an unsafe access
    assert kernel == {"ran": False, "reason": "the kernel rejects the transformed program"}
    text = epass("prove", src, bad)
    assert text.code == 1
    assert text.out.splitlines()[0].startswith(f"{bad}: xdp/xdp_rewrite: NOT EQUIVALENT (r0)")
    assert text.out.splitlines()[1].startswith("  input packet (14 bytes): ")
    dropped = _mutated_object(obj, "xdp_rewrite", "drop_store", tmp_path / "dropped.o")
    (p,) = epass("prove", src, dropped, "--json").json()["programs"]
    cex = p["counterexample"]
    kernel = cex["kernel"]
    assert (p["property"], kernel["ran"], kernel["confirmed"]) == ("packet", True, True)
    # the original as on the interpreter; the transformed one reads the stack slot whose
    # store was dropped, which holds other garbage in the kernel: a difference all the same
    assert kernel["original"]["packet"] == cex["original"]["packet"]
    assert kernel["original"]["packet"] != kernel["transformed"]["packet"]
    loops = str(built_progs["bpf_loop_cb", "v3"])
    run = epass("prove", loops, _mutated_object(read_object(loops), "bpf_loop_cb", "const",
                                                tmp_path / "k.o"))
    # lc.mul = 4 instead of 3: loop_sum in .bss differs (bpf_loop and for_each modelled)
    assert run.code == 1 and "NOT EQUIVALENT (maps): the maps check fails (confirmed on " \
        "the interpreter)" in run.out
    other = str(built_progs["xdp_parse_drop", "v3"])
    run = epass("prove", src, other)
    assert (run.code, run.err) == (2, f"epass: error: {other}: no program named xdp_rewrite in "
                                      "the transformed object\n")


def test_inserted_checks_refine_the_original():
    from epass.codegen import compile_module
    from epass.ir.text import parse_module
    from epass.passes import parse_passes, run_passes

    original = compile_module(parse_module(DIVIDE))
    module = parse_module(DIVIDE)
    run_passes(module, parse_passes("div_by_zero(code=42)"), check=True)
    checked = compile_module(module)
    assert len(checked.aborts) == 2
    inputs = ProofInputs(ProgType.XDP)
    result = prove(original.insns, checked.insns, inputs, aborts=checked.aborts)
    assert result.verdict == Verdict.REFINES, result.reason
    assert [(s.fires, s.original_unsafe) for s in result.aborts] == [(True, "always")] * 2
    first, second = result.aborts
    assert first.packet[0] == 0 and second.packet[0] != 0 and second.packet[1] == 0
    # without the abort sites the difference is a plain one
    plain = prove(original.insns, checked.insns, inputs)
    assert (plain.verdict, plain.property) == (Verdict.NOT_EQUIVALENT, "r0")
    # an abort that hides another change is still caught
    broken = list(checked.insns)
    k = next(i for i, insn in enumerate(broken) if isinstance(insn, isa.Alu) and
             insn.op == AluOp.MOV and insn.imm == 100)
    broken[k] = replace(broken[k], imm=101)
    wrong = prove(original.insns, broken, inputs, aborts=checked.aborts)
    assert (wrong.verdict, wrong.property) == (Verdict.NOT_EQUIVALENT, "r0")


@pytest.mark.parametrize("name", V3)
def test_div_by_zero_refines_every_test_program(built_progs, name, tmp_path):
    obj = read_object(str(built_progs[name, "v3"]))
    out = tmp_path / "out.o"
    run = epass("compile", str(built_progs[name, "v3"]), "-o", str(out), "-p", "div_by_zero",
                "--check")
    assert run.code == 0, run.err
    run = epass("prove", obj.path, str(out), "--json", "--unroll", "8")
    doc = run.json()
    for p in doc["programs"]:
        if p["property"] == "syntax":  # nothing to check: the pass changed nothing
            assert p["verdict"] == "equivalent"
        else:
            assert p["verdict"] in ("equivalent", "refines"), p["reason"]
    assert run.code == {"unknown": 3}.get(doc["verdict"], 0)


def test_can_a_condition_hold_at_an_instruction():
    import z3

    from epass.codegen import compile_module
    from epass.ir.text import parse_module
    from epass.smt import UnknownAnswer, can_hold

    program = compile_module(parse_module(DIVIDE))
    divs = [k for k, i in enumerate(program.insns) if isinstance(i, isa.Alu) and
            i.op in (AluOp.DIV, AluOp.MOD)]
    slot = divs[0]  # no lddw before it: index == slot
    div = program.insns[slot]
    inputs = ProofInputs(ProgType.XDP)
    zero = can_hold(program.insns, inputs, slot,
                    lambda s: z3.Extract(31, 0, s.reg(div.src)) == 0)
    assert zero is not None and zero.packet[0] == 0 and len(zero.packet) == 14
    # the divisor is one packet byte: it never exceeds 255
    assert can_hold(program.insns, inputs, slot, lambda s: z3.UGT(s.reg(div.src), 255)) \
        is None
    with pytest.raises(UnknownAnswer, match="r9 is not initialized"):
        can_hold(program.insns, inputs, slot, lambda s: s.reg(9) == 0)


# --- what review found: each of these once came out EQUIVALENT or was never confirmed --


def _xdp(text: str) -> list[isa.Insn]:
    return parse_program(text)


def test_helpers_that_may_touch_memory_are_unknown_not_equivalent():
    prog = """
        *(u64 *)(r10 -8) = {v}
        r1 = r10
        r1 += -8
        r2 = 8
        r3 = 0
        r4 = 0
        r5 = 0
        call bpf_csum_diff#28
        exit
    """
    result = prove(_xdp(prog.format(v=1)), _xdp(prog.format(v=2)), ProofInputs(ProgType.XDP))
    assert result.verdict == Verdict.UNKNOWN
    assert "bpf_csum_diff may read or write memory" in result.reason
    tail = """
        r6 = r1
        r1 = r6
        r2 = map[idx:0] ll
        r3 = 0
        call bpf_tail_call#12
        r0 = {v}
        exit
    """
    maps = [MapSpec("progs", MapType.PROG_ARRAY, 4, 4, 1)]
    result = prove(_xdp(tail.format(v=1)), _xdp(tail.format(v=2)), ProofInputs(ProgType.XDP,
                                                                               maps))
    assert result.verdict == Verdict.UNKNOWN and "bpf_tail_call" in result.reason


def test_a_fault_before_an_abort_is_still_a_difference():
    original = _xdp("""
        r2 = *(u32 *)(r1 +0)
        r0 = *(u8 *)(r2 +100)
        exit
    """)
    guarded = _xdp("""
        r2 = *(u32 *)(r1 +0)
        r3 = *(u32 *)(r1 +4)
        r4 = r2
        r4 += 101
        if r4 > r3 goto pc+2
        r0 = *(u8 *)(r2 +100)
        exit
        r0 = 0
        exit
    """)
    ok = prove(original, guarded, ProofInputs(ProgType.XDP), aborts=[8])
    assert ok.verdict == Verdict.REFINES  # the guard comes before the access
    assert [(s.fires, s.original_unsafe) for s in ok.aborts] == [(True, "always")]
    late = _xdp("""
        r2 = *(u32 *)(r1 +0)
        r3 = *(u32 *)(r1 +4)
        r0 = *(u8 *)(r2 +100)
        r4 = r2
        r4 += 101
        if r4 > r3 goto pc+1
        exit
        r0 = 0
        exit
    """)  # the access before the guard: it faults where `guarded` returns 0
    result = prove(guarded, late, ProofInputs(ProgType.XDP), aborts=[8])
    assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, "fault"), result.reason


def test_a_different_order_of_helper_calls_is_confirmed():
    a = _xdp("""
        call bpf_get_prandom_u32#7
        call bpf_ktime_get_ns#5
        r0 = 0
        exit
    """)
    b = [a[1], a[0], a[2], a[3]]
    result = prove(a, b, ProofInputs(ProgType.XDP))
    assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, "calls")
    assert [c[0] for c in result.counterexample.original["calls"]] == \
        ["bpf_get_prandom_u32", "bpf_ktime_get_ns"]


def test_can_hold_finds_the_access_out_of_bounds():
    import z3

    from epass.smt import can_hold

    insns = _xdp("""
        r2 = *(u32 *)(r1 +0)
        r3 = *(u32 *)(r1 +4)
        r0 = *(u8 *)(r2 +100)
        exit
    """)
    w = can_hold(insns, ProofInputs(ProgType.XDP), 2,
                 lambda s: z3.UGT(s.reg(2) + 101, s.reg(3)))
    assert w is not None and len(w.packet) == 14
    always = can_hold(insns, ProofInputs(ProgType.XDP), 2, lambda s: z3.BoolVal(True))
    assert always is not None and len(always.packet) == 14


def test_objects_whose_global_data_differs_are_not_equivalent(built_progs, tmp_path):
    from elftools.elf.elffile import ELFFile

    src = built_progs["global_data", "v3"]
    data = bytearray(src.read_bytes())
    with open(src, "rb") as f:
        rodata = ELFFile(f).get_section_by_name(".rodata")
        at = rodata["sh_offset"]
    data[at] ^= 0x10
    (tmp_path / "patched.o").write_bytes(bytes(data))
    run = epass("prove", str(src), str(tmp_path / "patched.o"), "--json")
    assert run.code == 1
    (p,) = run.json()["programs"]
    assert (p["verdict"], p["property"], p["reason"]) == (
        "not_equivalent", "map definitions",
        "map '.rodata' has another initial contents in the transformed object")


LOOP_DIVIDE = """
    r2 = *(u32 *)(r1 +4)
    r1 = *(u32 *)(r1 +0)
    r3 = r1
    r3 += 2
    r0 = 0
    if r3 > r2 goto pc+8
    r4 = *(u8 *)(r1 +0)
    r5 = *(u8 *)(r1 +1)
    r0 = 1000
    if r4 == 0 goto pc+4
    r0 /= r5
    r0 += {step}
    r4 -= 1
    goto pc-5
    exit
"""


def test_loop_pairing_proves_a_pass_inside_a_loop():
    """packet[0] iterations (up to 255) of a division by packet[1]: unrolling gives up,
    pairing the loop headers proves div_by_zero's guard REFINES; a changed constant in
    the loop body is not proven (and pairing never claims a counterexample)."""
    from irutil import program_from_insns

    from epass.codegen import compile_module
    from epass.ir.lift import lift_program
    from epass.passes import parse_passes, run_passes

    original = parse_program(LOOP_DIVIDE.format(step=1000))
    module = lift_program(program_from_insns(original), [])
    run_passes(module, parse_passes("div_by_zero(code=7)"), check=True)
    guarded = compile_module(module)
    inputs = ProofInputs(ProgType.XDP)
    result = prove(original, guarded.insns, inputs, aborts=guarded.aborts, unroll=8)
    assert (result.verdict, result.property) == (Verdict.REFINES, "all")
    assert result.reason.startswith("1 loop(s) paired, 2 segments proven")
    unrolled = prove(original, guarded.insns, inputs, aborts=guarded.aborts, unroll=8,
                     loops="unroll")
    assert (unrolled.verdict, unrolled.property) == (Verdict.UNKNOWN, "bound")
    changed = parse_program(LOOP_DIVIDE.format(step=1001))
    result = prove(original, changed, inputs, unroll=8)
    assert (result.verdict, result.property) == (Verdict.UNKNOWN, "bound")
    assert "loop pairing: the segment from loop header 1 (insn 9 and 9): the r0 check " \
        "fails from some state" in result.reason
    paired = prove(original, changed, inputs, loops="pair")
    assert paired.verdict == Verdict.UNKNOWN and paired.counterexample is None


# a for_each_map_elem callback with a loop (a countdown from its key); the program then
# returns {x}
CALLBACK_LOOP = """
    r1 = map[idx:0] ll
    r2 = func[pc+6] ll
    r3 = 0
    r4 = 0
    call bpf_for_each_map_elem#164
    r0 = {x}
    exit
    r6 = *(u32 *)(r2 +0)
    if r6 == 0 goto pc+2
    r6 -= 1
    goto pc-3
    r0 = 0
    exit
"""


def test_loop_pairing_leaves_callbacks_to_unrolling():
    """A segment from a header inside a callback would take the callback's return for the
    program's exit, and never compare what follows the for_each call: r0 = 1 against
    r0 = 2 once came out EQUIVALENT. Pairing refuses callbacks; unrolling finds the
    difference."""
    maps = [MapSpec("arr", MapType.ARRAY, 4, 8, 4)]
    a, b = (parse_program(CALLBACK_LOOP.format(x=x)) for x in (1, 2))
    paired = prove(a, b, ProofInputs(ProgType.XDP, maps), loops="pair")
    assert (paired.verdict, paired.reason) == (
        Verdict.UNKNOWN, "loop pairing does not handle bpf-to-bpf calls or callbacks")
    result = prove(a, b, ProofInputs(ProgType.XDP, maps))
    assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, "r0")
    assert result.counterexample.confirmed
    assert (result.counterexample.original["r0"], result.counterexample.transformed["r0"]) \
        == (1, 2)


def test_loop_pairing_needs_the_same_loops():
    one = parse_program(LOOP_DIVIDE.format(step=1000))
    straight = parse_program("r0 = 1000\nexit\n")
    result = prove(one, straight, ProofInputs(ProgType.XDP), loops="pair")
    assert (result.verdict, result.reason) == (
        Verdict.UNKNOWN, "the programs have 1 and 0 loop headers")


LOOP_STORE = """
    r2 = *(u32 *)(r1 +4)
    r1 = *(u32 *)(r1 +0)
    r3 = r1
    r3 += 1
    r0 = 0
    if r3 > r2 goto pc+7
    r4 = *(u8 *)(r1 +0)
    *(u8 *)(r10 -1) = 0
    if r4 == 0 goto pc+3
    *(u8 *)(r10 -1) = {value}
    r4 -= 1
    goto pc-4
    r0 = *(u8 *)(r10 -1)
    exit
"""


def test_loop_pairing_compares_memory_at_loop_headers():
    """The loop leaves its mark only on the stack, read after the loop: registers agree at
    the header, so only the state check stands between this pair and a wrong EQUIVALENT."""
    a = parse_program(LOOP_STORE.format(value=1))
    b = parse_program(LOOP_STORE.format(value=2))
    result = prove(a, b, ProofInputs(ProgType.XDP), loops="pair")
    fails = "the segment from loop header 1 (insn 8 and 8): the state check fails from some " \
        "state"
    assert result.verdict == Verdict.UNKNOWN
    # the same check fails with registers equal by number and with the inferred relation
    assert result.reason.startswith(fails) and result.reason.endswith(fails), result.reason
    same = prove(a, parse_program(LOOP_STORE.format(value=1) + "r0 += 0\n"),
                 ProofInputs(ProgType.XDP), loops="pair")
    assert same.verdict == Verdict.EQUIVALENT


# clang's `proto == UDP && dport == 53` as an AND of two flags: r7 is written on one path
# only, and read on both (the verifier: "R7 !read_ok")
UNWRITTEN = """
    r2 = *(u32 *)(r1 +4)
    r1 = *(u32 *)(r1 +0)
    r3 = r1
    r3 += 14
    r0 = 0
    if r3 > r2 goto pc+7
    r6 = 0
    r3 = *(u8 *)(r1 +0)
    if r3 != 17 goto pc+2
    r6 = 1
    r7 = {flag}
    r6 &= r7
    r0 = r6
    exit
"""


@pytest.mark.parametrize(("flag", "verdict"), [(1, Verdict.EQUIVALENT),
                                               (2, Verdict.NOT_EQUIVALENT)])
def test_a_read_of_an_unwritten_register_is_any_value(flag, verdict):
    """Where the original reads r7 unwritten, the other AND operand is 0: writing r7 = 0 at
    the start keeps the behaviour. A transformation that changes what r7 holds when it is
    written does not, and the replay confirms it."""
    original = _xdp(UNWRITTEN.format(flag=1))
    repaired = _xdp("r7 = 0\n" + UNWRITTEN.format(flag=flag))
    result = prove(original, repaired, ProofInputs(ProgType.XDP))
    assert result.verdict == verdict, result.reason
    if verdict == Verdict.NOT_EQUIVALENT:
        assert result.property == "r0" and result.counterexample.confirmed
        assert (result.counterexample.original["r0"],
                result.counterexample.transformed["r0"]) == (1, 0)


def test_a_result_made_of_an_unwritten_register_is_confirmed_with_the_models_value():
    """`r0 = r7` with r7 never written returns whatever r7 held: not r0 = 0. The replay
    gives r7 the value Z3 chose, so the counterexample is confirmed."""
    result = prove(_xdp("r0 = r7\nexit"), _xdp("r0 = 0\nexit"), ProofInputs(ProgType.XDP))
    assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, "r0")
    cex = result.counterexample
    assert cex.confirmed and cex.original["r0"] != 0 and cex.transformed["r0"] == 0
    # two reads of one unwritten register see the same value
    same = prove(_xdp("r0 = r7\nr0 -= r7\nexit"), _xdp("r0 = 0\nexit"),
                 ProofInputs(ProgType.XDP))
    assert same.verdict == Verdict.EQUIVALENT


LOAD_BYTES = """
    r6 = r1
    r1 = r6
    r2 = 0
    r3 = r10
    r3 += {buf}
    r4 = 8
    call bpf_skb_load_bytes#26
    r0 = *(u8 *)(r10 {read})
    exit
"""


@pytest.mark.parametrize(("buf", "read", "verdict"), [(-16, -12, Verdict.EQUIVALENT),
                                                      (-16, -11, Verdict.NOT_EQUIVALENT)])
def test_a_write_only_buffer_may_move(buf, read, verdict):
    """skb_load_bytes into fp-8 and reading byte 4 back, against the same into another
    stack buffer: the buffer's address is not compared, what the program reads back is."""
    original = _xdp(LOAD_BYTES.format(buf=-8, read=-4))
    moved = _xdp(LOAD_BYTES.format(buf=buf, read=read))
    result = prove(original, moved, ProofInputs(ProgType.SCHED_CLS))
    assert result.verdict == verdict, result.reason
    if verdict == Verdict.NOT_EQUIVALENT:
        assert result.property == "r0" and result.counterexample.confirmed
    # a buffer the helper reads (a map key) is still compared by address
    lookup = """
        *(u32 *)(r10 {key}) = 0
        r1 = map[idx:0] ll
        r2 = r10
        r2 += {key}
        call bpf_map_lookup_elem#1
        r0 = 0
        exit
    """
    maps = [MapSpec("m", MapType.ARRAY, 4, 8, 1)]
    keys = prove(_xdp(lookup.format(key=-4)), _xdp(lookup.format(key=-8)),
                 ProofInputs(ProgType.XDP, maps))
    assert (keys.verdict, keys.property) == (Verdict.NOT_EQUIVALENT, "calls")


# sum packet[0] trips of packet[1] into {acc} (up to 255 trips: past the unroll bound)
LOOP_SUM = """
    r2 = *(u32 *)(r1 +4)
    r1 = *(u32 *)(r1 +0)
    r3 = r1
    r3 += 2
    r0 = 0
    if r3 > r2 goto pc+9
    r4 = *(u8 *)(r1 +0)
    r5 = *(u8 *)(r1 +1)
    {acc} = 0
    if r4 == 0 goto pc+4
    {acc} += r5
    {extra}
    r4 -= 1
    goto pc-5
    r0 = {acc}
    exit
"""


def _sum(acc: str = "r6", extra: str = "r4 += 0") -> list[isa.Insn]:
    return parse_program(LOOP_SUM.format(acc=acc, extra=extra))


@pytest.mark.parametrize(("acc", "extra", "verdict"), [
    ("r7", "r4 += 0", Verdict.EQUIVALENT),  # the sum in another register
    ("r7", "r7 += 1", Verdict.UNKNOWN),  # one more each trip: not proven
    # the same as the original from the first arrival (the sum is 0 there), not after: a
    # relation that kept "r6 is 0 at the header" would prove it
    ("r6", "r6 &= 255", Verdict.UNKNOWN),
])
def test_loop_pairing_relates_renamed_registers(acc, extra, verdict):
    """Registers equal by number do not hold at the header when a transformation renames
    the accumulator; the relation inferred (r6 of one is r7 of the other) does, and only
    where the programs really agree."""
    result = prove(_sum(), _sum(acc, extra), ProofInputs(ProgType.XDP), loops="pair")
    assert result.verdict == verdict, result.reason
    if verdict == Verdict.EQUIVALENT:
        assert "(at header 1 r6=r7)" in result.reason
    unrolled = prove(_sum(), _sum(acc, extra), ProofInputs(ProgType.XDP), loops="unroll",
                     unroll=8)
    assert unrolled.verdict == Verdict.UNKNOWN  # 255 trips are past the bound


# one more counter in the loop, kept in a stack slot the original never writes; `abort`
# ends the program when it passes 300 (never: at most 255 trips)
COUNTED = """
    *(u64 *)(r10 -16) = 0
    r2 = *(u32 *)(r1 +4)
    r1 = *(u32 *)(r1 +0)
    r3 = r1
    r3 += 2
    r0 = 0
    if r3 > r2 goto pc+13
    r4 = *(u8 *)(r1 +0)
    r5 = *(u8 *)(r1 +1)
    r6 = 0
    if r4 == 0 goto pc+8
    r8 = *(u64 *)(r10 -16)
    r8 += 1
    *(u64 *)(r10 -16) = r8
    if r8 > 300 goto pc+6
    r6 += r5
    {read}
    r4 -= 1
    goto pc-9
    r0 = r6
    exit
    r0 = 0
    exit
"""


def test_loop_pairing_gives_a_counter_slot_to_the_transformed_program():
    """The counter's slot is the transformed program's own at the header (each program its
    own bytes there): the loop is proven, REFINES with the abort. Were the original to
    read that slot, its bytes would be its own, and the proof fails instead of equating
    them."""
    counted = parse_program(COUNTED.format(read="r4 += 0"))
    abort = [s for s, i in zip(isa.slot_indices(counted), counted, strict=True)
             if isinstance(i, isa.Exit)][-1]
    result = prove(_sum(), counted, ProofInputs(ProgType.XDP), loops="pair", aborts=[abort])
    assert result.verdict == Verdict.REFINES, result.reason
    assert "8 stack byte(s) of the transformed program's own" in result.reason
    # the original reads the slot (never written: its initial bytes), the other its counter
    reads = _sum(extra="r6 = *(u8 *)(r10 -16)")
    counted_reads = parse_program(COUNTED.format(read="r6 = *(u8 *)(r10 -16)"))
    wrong = prove(reads, counted_reads, ProofInputs(ProgType.XDP), loops="pair",
                  aborts=[abort])
    assert wrong.verdict == Verdict.UNKNOWN, wrong.reason


# bpf_xdp_adjust_tail / _head: the packet each path leaves is compared (its place, length
# and bytes)
TRIM = """
    r6 = r1
    r8 = *(u32 *)(r6 +4)
    r1 = r6
    r2 = -4
    call bpf_xdp_adjust_tail#65
    if r0 != 0 goto pc+3
    r3 = *(u32 *)(r6 +4)
    {store}
    r0 = 2
    exit
"""


@pytest.mark.parametrize(("store", "verdict"), [
    ("r4 = 0", Verdict.NOT_EQUIVALENT),  # the last byte is not written
    ("*(u8 *)(r8 -5) = 171", Verdict.EQUIVALENT),  # the same byte: data_end moved by -4
    ("*(u8 *)(r8 -4) = 171", Verdict.NOT_EQUIVALENT),  # a trimmed byte: a fault
])
def test_a_store_after_adjust_tail(store, verdict):
    original = _xdp(TRIM.format(store="*(u8 *)(r3 -1) = 171"))
    result = prove(original, _xdp(TRIM.format(store=store)), ProofInputs(ProgType.XDP))
    assert result.verdict == verdict, result.reason
    if verdict == Verdict.NOT_EQUIVALENT:
        cex = result.counterexample
        assert cex is not None and cex.confirmed
        if store == "r4 = 0":
            assert result.property == "packet"
            # the replay: the packet trimmed by 4 bytes, its last one 0xab or not
            packet = bytes.fromhex(cex.original["packet"])
            assert len(packet) == len(cex.packet) - 4 and packet[-1] == 0xAB
            assert bytes.fromhex(cex.transformed["packet"]) == cex.packet[:-4]
        else:
            assert result.property == "fault"
            assert cex.transformed["fault"].startswith("insn 7: out-of-bounds write")


def test_a_different_adjust_head_is_a_different_packet():
    head = """
        r2 = {delta}
        call bpf_xdp_adjust_head#44
        r0 = 2
        exit
    """
    result = prove(_xdp(head.format(delta=1)), _xdp(head.format(delta=2)),
                   ProofInputs(ProgType.XDP))
    assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, "packet")
    cex = result.counterexample
    assert cex.confirmed and len(bytes.fromhex(cex.original["packet"])) == len(cex.packet) - 1
    same = prove(_xdp(head.format(delta=1)), _xdp(head.format(delta=1) + "r0 += 0\n"),
                 ProofInputs(ProgType.XDP))
    assert same.verdict == Verdict.EQUIVALENT, same.reason


# a tail grown by the packet's first byte (an offset Z3 does not know): the new bytes are
# zeros, so the last byte is 0 whenever the byte is not
GROW = """
    r6 = r1
    r2 = *(u32 *)(r6 +0)
    r7 = *(u8 *)(r2 +0)
    r1 = r6
    r2 = r7
    call bpf_xdp_adjust_tail#65
    if r0 != 0 goto pc+{fail}
    {shortcut}
    r3 = *(u32 *)(r6 +4)
    r0 = *(u8 *)(r3 -1)
    exit
    r0 = {zero}
    exit
    r0 = 1
    exit
"""


@pytest.mark.parametrize(("zero", "verdict"), [(0, Verdict.EQUIVALENT),
                                               (7, Verdict.NOT_EQUIVALENT)])
def test_a_grown_tail_is_zeros(zero, verdict):
    original = _xdp(GROW.format(fail=6, shortcut="r4 = 0", zero=0))
    shortcut = _xdp(GROW.format(fail=6, shortcut="if r7 != 0 goto pc+3", zero=zero))
    result = prove(original, shortcut, ProofInputs(ProgType.XDP))
    assert result.verdict == verdict, result.reason
    if verdict == Verdict.NOT_EQUIVALENT:
        cex = result.counterexample
        assert result.property == "r0" and cex.confirmed
        assert (cex.original["r0"], cex.transformed["r0"]) == (0, 7) and cex.packet[0] != 0


def test_headroom_uncovered_by_adjust_head_is_any_byte():
    """A driver's headroom holds whatever it held (the interpreter's and a test run's:
    zeros): a program that returns a byte bpf_xdp_adjust_head uncovered differs from one
    that returns 0, but no replay can show it."""
    read = """
        r6 = r1
        r2 = -4
        call bpf_xdp_adjust_head#44
        if r0 != 0 goto pc+2
        r2 = *(u32 *)(r6 +0)
        r0 = *(u8 *)(r2 +{at})
        exit
    """
    zero = read.replace("r0 = *(u8 *)(r2 +{at})", "r0 = 0")
    result = prove(_xdp(read.format(at=0)), _xdp(zero), ProofInputs(ProgType.XDP))
    assert (result.verdict, result.property) == (Verdict.UNKNOWN, "r0"), result.reason
    assert result.counterexample is not None and not result.counterexample.confirmed
    # the packet's own first byte, four bytes in: a confirmed difference
    result = prove(_xdp(read.format(at=4)), _xdp(zero), ProofInputs(ProgType.XDP))
    assert (result.verdict, result.property) == (Verdict.NOT_EQUIVALENT, "r0"), result.reason


def test_loop_pairing_refuses_a_moved_packet():
    """Segments after a loop header start from the packet as given: a path that reaches a
    header after an adjust stops loop pairing (UNKNOWN), and unrolling proves the loop."""
    text = """
        r6 = r1
        r2 = -4
        call bpf_xdp_adjust_tail#65
        r2 = *(u32 *)(r6 +0)
        r3 = *(u32 *)(r6 +4)
        r4 = 0
        r5 = r2
        r5 += 1
        if r5 > r3 goto pc+4
        r0 = *(u8 *)(r2 +0)
        r4 += r0
        r2 += 1
        goto pc-6
        r0 = r4
        exit
    """
    a, b = _xdp(text), _xdp(text + "r0 += 0\n")
    inputs = ProofInputs(ProgType.XDP, packet_len=20)
    paired = prove(a, b, inputs, loops="pair", unroll=40)
    assert paired.verdict == Verdict.UNKNOWN
    assert "loop pairing does not carry a packet moved by bpf_xdp_adjust" in paired.reason
    assert prove(a, b, inputs, unroll=40).verdict == Verdict.EQUIVALENT
