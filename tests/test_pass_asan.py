"""The asan pass: which accesses get a check and against which object (IR), an out-of-range
index aborts in the kernel and on the interpreter while in-range ones keep the original's
result, and every accepted test program stays accepted and proven by `epass prove`."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from epass.codegen import compile_module
from epass.commands.run import interpret, on_kernel
from epass.ir import model as ir
from epass.ir.lift import lift_program
from epass.ir.text import format_module, parse_module
from epass.obj.model import DataVar, MapOrigin
from epass.obj.reader import read_object
from epass.passes import parse_passes, run_passes
from epass.passes.asan import plan
from epass.semantics.interp import Environment, run
from epass.uapi import ProgType

import progs
from cli import epass

CODE = 42


def _checks(module: ir.Module, func: ir.Function | None = None) -> list[tuple]:
    """(origin of the access, variable part's id, added constant, limit) of each check."""
    return [(c.access.origin, c.var.id, c.add, c.limit)
            for c in plan(module, func or module.main)]


# --- oob_index on the kernel and the interpreter ------------------------------------

TABLE = (10, 20, 30, 40, 100, 120, 140, 160)  # .data: table[4], then tail[4]


def expected(packet: bytes) -> int:
    """What oob_index returns (tests/progs/oob_index.bpf.c), out-of-range indices included:
    i >= 4 reads tail, j >= 4 stores into canary (above buf: buf[4] is canary[3])."""
    i, j, k = packet[0] & 7, packet[1] & 7, packet[3] & 15
    canary = [1, 2, 3, 4]
    if j >= 4:
        canary[7 - j] = packet[2]
    total = TABLE[i] + packet[2] + canary[0] + canary[3]
    total += packet[k] if k < len(packet) else 0
    return total & 0xFF


def frame(i: int, j: int, k: int, length: int = 64) -> bytes:
    body = bytes(range(0x40, 0x40 + length))  # data[k] tells k apart
    return bytes([i, j, 9, k]) + body[4:length]


FRAMES = [frame(i, j, k, n) for i, j in itertools.product((0, 3, 4, 7), (0, 3, 4, 7))
          for k, n in ((5, 64), (15, 14))]  # data[15] is read from 64 bytes, not from 14


@pytest.fixture(scope="module")
def oob(built_progs):
    obj = read_object(str(built_progs["oob_index", "v3"]))
    (program,) = obj.programs
    module = lift_program(program, obj.maps)
    checks = _checks(module)
    run_passes(module, parse_passes(f"asan(code={CODE})"), check=True)
    return obj, program, compile_module(module), checks


def test_the_three_variable_offset_accesses_are_checked(oob):
    obj, original, checked, checks = oob
    # buf[j] stored (slot 22) and loaded: buf is [fp-32, fp-16), canary starts at fp-16;
    # table[i] (slot 28): table is 16 bytes at .data+4; data[k] (slot 40): against data_end
    data = obj.map(".data")
    assert data.vars == (DataVar("head", 0, 4), DataVar("table", 4, 16),
                         DataVar("tail", 20, 16))
    assert [(origin, add, limit) for origin, _, add, limit in checks] == \
        [(22, 0, 12), (28, 0, 12), (40, 1, None)]
    assert len(checked.aborts) == 3
    assert len(checked.insns) == len(original.insns) + 11  # 1 + 1 + 3 (packet), 2 per abort


def test_out_of_range_aborts_in_range_keeps_the_result(oob, bpf_permitted):
    obj, original, checked, _ = oob
    for packet in FRAMES:
        i, j = packet[0], packet[1]
        want = expected(packet)
        assert interpret(obj, original, packet, None).r0 == want, packet[:4].hex()
        assert on_kernel(obj, original, packet, None)["r0"] == want, packet[:4].hex()
        if i >= 4 or j >= 4:
            want = CODE
        got = interpret(obj, checked, packet, None)
        assert (got.r0, got.fault) == (want, None), packet[:4].hex()
        assert on_kernel(obj, checked, packet, None)["r0"] == want, packet[:4].hex()


def test_prove_shows_which_checks_fire(built_progs, tmp_path):
    src = str(built_progs["oob_index", "v3"])
    out = str(tmp_path / "out.o")
    assert epass("compile", src, "-o", out, "-p", f"asan(code={CODE})").code == 0
    proved = epass("prove", src, out, "--json")
    assert proved.code == 0, proved.out
    (p,) = proved.json()["programs"]
    assert (p["verdict"], p["property"]) == ("refines", "all"), p["reason"]
    # the abort blocks sit at the end in the order of the checks: buf[j], table[i], data[k].
    # To the prover the original never faults there: it stays inside the frame and the
    # .data value, as the verifier saw; the packet check cannot fire.
    stack, table, packet = p["aborts"]
    assert [(a["fires"], a["original_unsafe"]) for a in p["aborts"]] == \
        [(True, "never"), (True, "never"), (False, "never")]
    assert bytes.fromhex(stack["packet"])[1] & 7 >= 4
    assert bytes.fromhex(table["packet"])[0] & 7 >= 4
    assert packet["packet"] is None


# --- which accesses get which check (IR) --------------------------------------------

GLOBAL = """
module @g section "xdp"
map @.data type 2 key 4 value 40 max 1
func @g args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0]
  %2:r3 = load u8 [%1]
  %3:r4 = load u8 [%1 + 1]
  %4:r5 = map_value @.data + 4
  %5:r5 = add %4, %2
  %6:r0 = load u32 [%5 + 8]
  %7:r0 = load u32 [%5]
  %8:r0 = load u32 [%4 + 8]
  %9:r5 = map_value @.data + 20
  %10:r5 = add %9, %3
  %11:r0 = load u16 [%10 - 2]
  %12:r5 = map_value @.data + 24
  %13:r5 = add %12, %3
  store u8 [%13], 1
  %14:r5 = map_value @.data + 30
  %15:r5 = add %14, 2
  %16:r5 = add %2, %15
  atomic add u64 [%16], %3
  ret 0
}
"""
DATA_VARS = (DataVar("a", 0, 4), DataVar("arr", 4, 16), DataVar("b", 20, 4),
             DataVar("c", 32, 8))  # 24..32: padding


def test_global_data_is_checked_against_its_variable():
    module = parse_module(GLOBAL)
    module.maps[0] = replace(module.maps[0], origin=MapOrigin.DATA, vars=DATA_VARS)
    # arr[i + 2]: 16 - 4 - 8 = 4; arr[i] then passes on the first check's account;
    # [arr + 8] is a constant offset; b at [.data + 20 + j - 2]: j - 2 in [0, 2] takes
    # `t = j - 2` first; in the padding: no object; c at .data + 30 + 2 + i, as `i + ptr`
    assert _checks(module) == [(None, 2, 0, 4), (None, 3, -2, 2), (None, 2, 0, 0)]
    run_passes(module, parse_passes("asan(code=5)"), check=True)
    text = format_module(module)
    assert "br jgt %2, 4, bb" in text and "br jgt %2, 0, bb" in text
    assert "= add %3, -2\n  br jgt %" in text
    assert text.count("abort 5") == 3
    # a .data map without DATASEC variables: no object is known, nothing checked
    module = parse_module(GLOBAL)
    module.maps[0] = replace(module.maps[0], origin=MapOrigin.DATA)
    assert _checks(module) == []


LOOKUP = """
module @m section "xdp"
map @vals type 1 key 4 value 24 max 8
map @outer type 12 key 4 value 4 max 1
map @one type 2 key 4 value 16 max 1
func @m args 1 {
bb0:
  %0:r1 = arg 1
  %1:r6 = load u32 [%0]
  %2:r6 = load u8 [%1]
  store u32 [fp - 4], 0
  %3:r1 = map @vals
  %4:r2 = mov fp
  %5:r2 = add %4, -4
  %6:r0 = call bpf_map_lookup_elem(%3, %5)
  br jeq %6, 0, bb2, bb1
bb1:
  %7:r0 = add %6, %2
  store u64 [%7 + 8], 1
  %8:r1 = map @outer
  %9:r2 = mov fp
  %10:r2 = add %9, -4
  %11:r0 = call bpf_map_lookup_elem(%8, %10)
  %12:r0 = add %11, %2
  %13:r0 = load u32 [%12]
  %14:r0 = map_value @one + 4
  %15:r0 = add %14, %2
  %16:r0 = load u64 [%15]
  ret 0
bb2:
  ret 1
}
"""


def test_a_looked_up_value_is_checked_against_the_value_size():
    module = parse_module(LOOKUP)
    # [8 + i, 16 + i) inside the 24-byte value: i <= 8. The outer map's lookup gives an
    # inner map, not a value: not followed. A map_value lddw of a map that is not global
    # data has the whole value as its object: [4 + i, 12 + i) inside 16 bytes, i <= 4.
    assert _checks(module) == [(None, 2, 0, 8), (None, 2, 0, 4)]


STACK = """
module @s section "xdp"
func @s args 1 {{
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0]
  %2:r3 = load u32 [%0 + 4]
  store u64 [fp - 8], 7
  %3:r4 = mov %1
  %4:r4 = add %3, 1
  br jgt %4, %2, bb2, bb1
bb1:
  %5:r5 = load u8 [%1]
  %6:r5 = and %5, 3
  %7:r5 = lsh %6, 2
  %8:r0 = mov fp
  %9:r0 = add %8, -16
  %10:r0 = add %9, %7
  store u32 [%10], 5
  %11:r0 = load u32 [%10]
  %12:r1 = load u64 [fp - 8]
  %13:r0 = add %11, %12
  {extra}
  ret %13
bb2:
  ret 1
}}
"""


@pytest.mark.parametrize(("extra", "limit"), [
    ("", 4),  # [fp-16, fp-8): up to the u64 at fp-8
    ("store u8 [fp - 12], 0", 0),  # a byte at fp-12 ends the object there (see the docs)
    ("%14:r1 = add %8, -10", 2),  # so does a pointer made at fp-10, even unused
    ("store u8 [%10 + 6], 0", 4),  # an access through the checked pointer is the object's
])
def test_a_stack_object_ends_at_the_next_offset_the_function_uses(extra, limit):
    module = parse_module(STACK.format(extra=extra))
    checks = _checks(module)
    assert [(c[1], c[2], c[3]) for c in checks] == [(7, 0, limit)] + \
        ([(7, 0, 1)] if extra.startswith("store u8 [%10") else [])  # [6, 7) of [0, 8)


def test_an_index_into_the_next_stack_variable_aborts_on_the_interpreter():
    original = compile_module(parse_module(STACK.format(extra="")))
    module = parse_module(STACK.format(extra=""))
    run_passes(module, parse_passes(f"asan(code={CODE})"), check=True)
    checked = compile_module(module)
    for index, plain in ((0, 12), (1, 12), (2, 10), (3, 12 + (5 << 32))):
        packet = bytes([index]) + bytes(63)
        assert run(original.insns, Environment(prog_type=ProgType.XDP, packet=packet)).r0 \
            == plain, index
        got = run(checked.insns, Environment(prog_type=ProgType.XDP, packet=packet)).r0
        assert got == (plain if index < 2 else CODE), index


PACKET = """
module @p section "{section}"
func @p args 1 {{
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0 + {data}]
  %2:r3 = load u8 [%0]
  br jeq %2, 0, bb1, bb2
bb1:
  %3:r4 = load u32 [%0 + {end}]
  %4:r5 = mov %1
  %5:r5 = add %4, 20
  br jgt %5, %3, bb4, bb2
bb2:
  %6:r5 = load u8 [%1 + 3]
  {end_here}
  %7:r5 = and %6, 15
  %8:r4 = add %1, %7
  %9:r0 = load u16 [%8 + 2]
  %10:r0 = load u8 [%8 + 3]
  ret %9
bb4:
  ret 1
}}
"""


@pytest.mark.parametrize(("section", "data", "end"), [("xdp", 0, 4), ("tc", 76, 80)])
def test_packet_accesses_are_checked_against_data_end(section, data, end):
    # data_end is loaded only on one path to the access: the check loads it again
    fields = {"section": section, "data": data, "end": end}
    module = parse_module(PACKET.format(end_here="", **fields))
    assert _checks(module) == [(None, 8, 4, None)]  # the u8 at +3 ends where the u16 does
    run_passes(module, parse_passes("asan"), check=True)
    text = format_module(module)
    assert f"%11 = add %8, 4\n  %12 = load u32 [%0 + {end}]\n  br jgt %11, %12, bb" in text
    # with a load of data_end before the access on every path, the check uses it
    module = parse_module(PACKET.format(end_here=f"%11:r0 = load u32 [%0 + {end}]", **fields))
    run_passes(module, parse_passes("asan"), check=True)
    text = format_module(module)
    assert text.count(f"= load u32 [%0 + {end}]") == 2
    assert "%12 = add %8, 4\n  br jgt %12, %11, bb" in text


UNKNOWN = """
module @u section "xdp"
map @.data type 2 key 4 value 40 max 1
func @u args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0]
  %2:r6 = load u8 [%1]
  %3:r7 = load u8 [%1 + 1]
  br jeq %2, 0, bb1, bb2
bb1:
  %4:r1 = map_value @.data + 4
  jump bb3(%4)
bb2:
  %5:r1 = mov fp
  %6:r1 = add %5, -16
  jump bb3(%6)
bb3(%7:r1):
  %8:r1 = add %7, %2
  %9:r0 = load u32 [%8]
  %10:r0 = call bpf_get_current_task()
  %11:r0 = add %10, %2
  %12:r0 = load u32 [%11]
  %13:r1 = mov fp
  %14:r1 = add %13, -32
  %15:r1 = add %14, %2
  %16:r1 = add %15, %3
  %17:r0 = load u32 [%16]
  %18:r1 = mov fp
  %19:r1 = add %18, -32
  %20:r0 = call @sub(%19, %3)
  ret 0
}
func @sub args 2 {
bb0:
  %0:r1 = arg 1
  %1:r2 = arg 2
  %2:r1 = add %0, %1
  %3:r0 = load u32 [%2]
  ret %3
}
"""


def test_pointers_of_unknown_origin_are_left_alone():
    # merged at a join from two objects, returned by a helper, with two variable parts,
    # or passed in by the caller: nothing is known about the object, nothing is checked
    module = parse_module(UNKNOWN)
    module.maps[0] = replace(module.maps[0], origin=MapOrigin.DATA, vars=DATA_VARS)
    before = format_module(module)
    assert [_checks(module, f) for f in module.functions] == [[], []]
    run_passes(module, parse_passes("asan"), check=True)
    assert format_module(module) == before


# --- options -------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "message"), [
    ("asan(code=x)", "-p: asan(code=...) needs an integer, got 'x'"),
    ("asan(limit=5)", "-p: pass asan has no option 'limit' (options: code)"),
    ("asan(code=0x80000000)", "asan: code must fit in 32 signed bits, got 2147483648"),
])
def test_bad_options_are_one_line_and_exit_2(built_progs, tmp_path, spec, message):
    src = str(built_progs["oob_index", "v3"])
    bad = epass("compile", src, "-o", str(tmp_path / "o.o"), "-p", spec)
    assert bad.code == 2
    assert bad.err.splitlines() == [bad.err.rstrip("\n")]
    assert message in bad.err


def test_asan_is_listed():
    rows = {p["name"]: p for p in epass("passes", "--json").json()["passes"]}
    assert rows["asan"] == {
        "name": "asan", "kind": "safety", "round": "final",
        "description": "abort when a variable-offset access leaves the object it is based on",
        "options": [{"name": "code", "default": 0,
                     "help": "the return value when the check fires"}]}


# --- every accepted test program ---------------------------------------------------------

# programs asan changes: (instructions before, after) and what `epass prove` says
CHANGED = {
    "oob_index": (44, 55, "refines"),  # tested above: two of its three checks can fire
    "global_data": (58, 61, "equivalent"),  # proto_weight[tos & 3]: the check cannot fire
    "insn_loop": (28, 33, "equivalent"),  # a packet byte at a variable offset: cannot fire
    "loop_bounded": (45, 50, "equivalent"),  # the same, in a loop (proven by loop pairing)
    "rv_maybe_null": (33, 36, "equivalent"),  # slots[data[1] & 7] in a lookup's value
}
# no variable-offset access with a known object: instruction for instruction. Programs added
# to the table later are held to the kernel's verdict and the proof only.
UNCHANGED = {"xdp_parse_drop", "xdp_rewrite", "xdp_map_counter", "subprog_calls",
             "bpf_loop_cb", "atomics", "maps_btf", "same_section", "two_sections",
             "uninit_read", "helper_flags", "tc_skb_fields", "tc_classifier", "socket_len",
             "socket_ld_abs", "legacy_map_def", "kprobe_openat2", "tracepoint_openat",
             "raw_tp_sys_enter", "tp_btf_sys_enter", "fentry_unlinkat"}
ACCEPTED = [p.name for p in progs.PROGS if p.verdict == "accept" and
            progs.CPUS.index(p.min_cpu) <= 1]


@pytest.mark.parametrize("name", ACCEPTED)
def test_asan_keeps_every_accepted_program_accepted_and_proven(built_progs, bpf_permitted,
                                                               name, tmp_path):
    src = str(built_progs[name, "v3"])
    out = str(tmp_path / "out.o")
    compiled = epass("compile", src, "-o", out, "-p", "asan", "--check", "--json")
    assert compiled.code == 0, compiled.err
    sizes = [(p["insns_before"], p["insns_after"]) for p in compiled.json()["programs"]]
    if name in CHANGED:
        assert sizes == [CHANGED[name][:2]]
    elif name in UNCHANGED:
        assert all(before == after for before, after in sizes)
    verify = epass("verify", out, "--json")
    doc = verify.json()
    if name == "fentry_unlinkat" and doc["programs"][0]["errno"] == 1:
        pytest.skip("this kernel refuses fentry loads with EPERM (tests/progs/README.md)")
    assert verify.code == 0 and doc["rejected"] == 0, verify.out
    unroll = "2" if name == "loop_bounded" else "8"  # loop_bounded: pairing, not unrolling
    proved = epass("prove", src, out, "--json", "--unroll", unroll)
    assert proved.code == 0, proved.out
    for p, (before, after) in zip(proved.json()["programs"], sizes, strict=True):
        if before == after:
            assert (p["verdict"], p["property"]) == ("equivalent", "syntax")
        elif name in CHANGED:
            assert (p["verdict"], p["property"]) == (CHANGED[name][2], "all"), p["reason"]
        else:
            assert p["verdict"] in ("equivalent", "refines"), p["reason"]
