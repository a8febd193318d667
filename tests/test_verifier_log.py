"""Tests for epass.kernel.verifier_log and epass.kernel.vimap.

The fixtures in tests/data/verifier_logs/ are real logs from Linux 6.18
(regenerate them with regen.py there): `<stem>.L<level>.log` next to
`<stem>.bpf.c`.  The last test loads a program into the running kernel.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epass.kernel.verifier_log import (
    ERROR_PATTERNS,
    ErrorClass,
    LineKind,
    VerifierLog,
    classify_error,
    classify_line,
    parse_log,
)
from epass.kernel.vimap import (
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    U32_MAX,
    U64_MAX,
    RegState,
    StackSlot,
    VIMap,
    build_vimap,
    parse_reg_state,
    parse_stack_slot,
    parse_state,
)

DATA = Path(__file__).parent / "data" / "verifier_logs"
LOGS = sorted(DATA.glob("*.log"))
DOCS = Path(__file__).parent.parent / "docs" / "verifier-log.md"


def log_text(name: str) -> str:
    return (DATA / name).read_text()


def vimap(name: str) -> VIMap:
    return build_vimap(log_text(name))


def stem_of(path: Path) -> str:
    return path.name.split(".")[0]


# --- the fixtures themselves --------------------------------------------------------


def test_every_log_has_its_source() -> None:
    assert len(LOGS) >= 90
    for path in LOGS:
        assert (DATA / f"{stem_of(path)}.bpf.c").exists(), path.name


# --- verdicts, errors and statistics ---------------------------------------------------

E = ErrorClass

# stem -> (rejected insn, class, message line)
REJECTED: dict[str, tuple[int | None, ErrorClass, str]] = {
    "err_mem_access_scalar": (1, E.INVALID_MEM_ACCESS, "R1 invalid mem access 'scalar'"),
    "err_mem_access_null": (7, E.INVALID_MEM_ACCESS, "R0 invalid mem access 'map_value_or_null'"),
    "err_ctx_access": (0, E.INVALID_CTX_ACCESS, "invalid bpf_context access off=80 size=4"),
    "err_packet_access": (
        1,
        E.INVALID_PACKET_ACCESS,
        "invalid access to packet, off=12 size=1, R1(id=0,off=12,r=0)",
    ),
    "err_map_value_access": (
        8,
        E.INVALID_MAP_VALUE_ACCESS,
        "invalid access to map value, value_size=8 off=8 size=4",
    ),
    "err_map_math_unbounded": (
        10,
        E.UNBOUNDED_MIN_VALUE,
        "math between map_value pointer and register with unbounded min value is not allowed",
    ),
    "err_min_negative": (
        13,
        E.UNBOUNDED_MIN_VALUE,
        "R6 min value is negative, either use unsigned index or do a if (index >=0) check.",
    ),
    "err_ptr_out_of_bounds": (
        12,
        E.UNBOUNDED_MIN_VALUE,
        "value -2147483648 makes map_value pointer be out of bounds",
    ),
    "err_max_out_of_range": (
        14,
        E.OUT_OF_RANGE,
        "R6 max value is outside of the allowed memory range",
    ),
    "err_unbounded_access": (
        12,
        E.UNBOUNDED_ACCESS,
        "R6 unbounded memory access, make sure to bounds check any such access",
    ),
    "err_ptr_arith_lsh": (
        1,
        E.POINTER_ARITHMETIC,
        "R2 pointer arithmetic with <<= operator prohibited",
    ),
    "err_ptr_arith_pkt_end": (
        1,
        E.POINTER_ARITHMETIC,
        "R2 pointer arithmetic on pkt_end prohibited",
    ),
    "err_modified_ctx": (1, E.MODIFIED_CTX, "dereference of modified ctx ptr R1 off=4 disallowed"),
    "err_same_insn_ptrs": (
        8,
        E.SAME_INSN_DIFFERENT_POINTERS,
        "same insn cannot be used with different pointers",
    ),
    "err_read_not_ok": (0, E.READ_NOT_OK, "R3 !read_ok"),
    "err_misaligned_stack": (1, E.MISALIGNED_STACK, "misaligned stack access off 0+0+-12 size 8"),
    "err_uninit_stack": (0, E.UNINIT_STACK, "invalid read from stack R10 off=-8 size=8"),
    "err_uninit_stack_indirect": (4, E.UNINIT_STACK, "invalid read from stack R2 off=-8 size=4"),
    "err_uninit_stack_slot": (2, E.UNINIT_STACK, "invalid read from stack off -8+0 size 8"),
    "err_stack_too_large": (
        None,
        E.STACK_TOO_LARGE,
        "combined stack size of 2 calls is 640. Too large",
    ),
    "err_too_large": (7, E.PROGRAM_TOO_LARGE, "BPF program is too large. Processed 1000001 insn"),
    "err_infinite_loop": (1, E.INFINITE_LOOP, "infinite loop detected at insn 1"),
    "err_back_edge": (2, E.BACK_EDGE, "back-edge from insn 2 to 1"),
    "err_unreachable": (2, E.UNREACHABLE, "unreachable insn 2"),
    "err_helper_prog_type": (
        0,
        E.INVALID_HELPER,
        "program of this type cannot use helper bpf_skb_load_bytes#26",
    ),
    "err_helper_unknown": (0, E.INVALID_HELPER, "invalid func unknown#12345"),
    "err_invalid_argument": (4, E.INVALID_ARGUMENT, "R1 type=scalar expected=map_ptr"),
    "err_unreleased_ref": (10, E.UNRELEASED_REFERENCE, "Unreleased reference id=2 alloc_insn=5"),
    "err_invalid_return": (
        4,
        E.INVALID_RETURN,
        "At program exit the register R0 has smin=3 smax=3 should have been in [0, 1]",
    ),
}

PROCESSED = {
    "err_back_edge": 0, "err_ctx_access": 1, "err_helper_prog_type": 1,
    "err_helper_unknown": 1, "err_infinite_loop": 9, "err_invalid_argument": 5,
    "err_invalid_return": 6, "err_map_math_unbounded": 10, "err_map_value_access": 8,
    "err_max_out_of_range": 14, "err_mem_access_null": 7, "err_mem_access_scalar": 2,
    "err_min_negative": 13, "err_misaligned_stack": 2, "err_modified_ctx": 2,
    "err_packet_access": 2, "err_ptr_arith_lsh": 2, "err_ptr_arith_pkt_end": 2,
    "err_ptr_out_of_bounds": 12, "err_read_not_ok": 1, "err_same_insn_ptrs": 12,
    "err_stack_too_large": 43, "err_too_large": 1000001, "err_unbounded_access": 12,
    "err_uninit_stack": 1, "err_uninit_stack_indirect": 4, "err_uninit_stack_slot": 3,
    "err_unreachable": 0, "err_unreleased_ref": 10,
    "ok_alu32": 17, "ok_bpf2bpf": 28, "ok_branch_copies": 28, "ok_callback": 47,
    "ok_iter_dynptr": 54, "ok_loop": 112, "ok_map_lookup": 14, "ok_ringbuf": 33,
    "ok_spill": 17, "ok_xdp_bounds": 25,
}  # fmt: skip

STACK_DEPTH = {  # from the level 6 (stats) logs
    "ok_bpf2bpf": (0, 8, 8), "ok_callback": (32, 0), "ok_iter_dynptr": (24,),
    "ok_map_lookup": (8,), "ok_spill": (32,), "ok_xdp_bounds": (0,),
    "err_stack_too_large": (320, 320), "err_max_out_of_range": (8,), "err_unreachable": (0,),
}  # fmt: skip


def test_fixture_tables_cover_every_log() -> None:
    stems = {stem_of(p) for p in LOGS}
    assert stems == set(PROCESSED)
    assert {s for s in stems if s.startswith("err_")} == set(REJECTED)


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_verdict_error_and_stats(path: Path) -> None:
    stem = stem_of(path)
    log = parse_log(path.read_text())
    assert isinstance(log, VerifierLog)
    assert log.processed_insns == PROCESSED[stem]
    assert log.insn_limit == 1_000_000
    assert log.text == path.read_text()
    if stem.startswith("ok_"):
        assert log.accepted is True
        assert log.error is None
    else:
        insn, cls, message = REJECTED[stem]
        assert log.accepted is False
        assert log.error is not None
        assert (log.error.insn, log.error.error_class, log.error.message) == (insn, cls, message)
        assert message in log.error.lines
    level6 = path.name.endswith(".L6.log")
    assert (log.verification_time_us is not None) == level6
    assert log.verification_time_us is None or log.verification_time_us > 0
    if level6:
        assert len(log.stack_depth) >= 1
        if stem in STACK_DEPTH:
            assert log.stack_depth == STACK_DEPTH[stem]
    else:
        assert log.stack_depth == ()


def test_statistics_fields() -> None:
    log = parse_log(log_text("err_too_large.L1.log"))
    assert (log.max_states_per_insn, log.total_states, log.peak_states, log.mark_read) == (
        4,
        12501,
        12501,
        0,
    )
    ok = parse_log(log_text("ok_branch_copies.L1.log"))
    assert ok.text.count("\n") == 1  # an accepted level 1 log is just the statistics
    assert ok.accepted is True


def test_error_block_with_hints() -> None:
    # The headline comes first; the kernel adds hints after it.
    err = parse_log(log_text("err_map_value_access.L1.log")).error
    assert err is not None
    assert err.lines == (
        "invalid access to map value, value_size=8 off=8 size=4",
        "R0 min value is outside of the allowed memory range",
    )
    assert err.fields == {"value_size": "8", "off": "8", "size": "4"}
    loop = parse_log(log_text("err_infinite_loop.L6.log")).error
    assert loop is not None
    assert loop.lines[0] == "infinite loop detected at insn 1"
    assert loop.lines[1].startswith("cur state: ")
    assert "verification time" not in " ".join(loop.lines)
    leak = parse_log(log_text("err_unreleased_ref.L2.log")).error
    assert leak is not None
    assert leak.fields == {"id": "2", "alloc_insn": "5"}
    assert leak.lines[1] == "BPF_EXIT instruction in main prog would lead to reference leak"


def test_error_source_line() -> None:
    err = parse_log(log_text("err_packet_access.L1.log")).error
    assert err is not None
    assert err.source is not None
    assert err.source.text == "return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;"
    assert (err.source.file, err.source.line) == ("err_packet_access.bpf.c", 10)
    err = parse_log(log_text("err_mem_access_null.L2.log")).error
    assert err is not None and err.source is not None
    assert err.source.line == 17
    assert parse_log(log_text("err_stack_too_large.L2.log")).error.source is None  # type: ignore[union-attr]


def test_error_fields() -> None:
    err = parse_log(log_text("err_mem_access_null.L1.log")).error
    assert err is not None
    assert err.fields == {"reg": "0", "type": "map_value_or_null"}
    err = parse_log(log_text("err_back_edge.L1.log")).error
    assert err is not None
    assert err.fields == {"insn": "2", "target": "1"}


def test_logs_that_do_not_tell() -> None:
    assert parse_log("").accepted is None
    assert parse_log("").error is None
    cut = parse_log("0: (b7) r0 = 0\n1: (95) exit\n")
    assert cut.accepted is None and cut.processed_insns is None
    # No statistics, but a known message: rejected.
    bare = parse_log("R3 !read_ok\n")
    assert bare.accepted is False
    assert bare.error is not None and bare.error.error_class is E.READ_NOT_OK
    odd = parse_log(
        "0: (95) exit\nsomething new happened\nprocessed 1 insns (limit 1000000) "
        "max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n"
    )
    assert odd.accepted is False
    assert odd.error is not None
    assert (odd.error.error_class, odd.error.insn) == (E.UNKNOWN, 0)


def test_message_followed_by_other_lines() -> None:
    text = (
        "0: R1=ctx() R10=fp0\n0: (95) exit\nsome new error\nfunc#1 @3\n"
        "mark_precise: frame0: last_idx 0 first_idx 0 subseq_idx -1\n"
        "verification time 5 usec\nstack depth 0\n"
        "processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0\n"
    )
    log = parse_log(text)
    assert log.accepted is False
    assert log.error is not None
    assert (log.error.message, log.error.insn, log.error.lines) == (
        "some new error",
        0,
        ("some new error",),
    )
    assert (log.mark_read, log.stack_depth, log.verification_time_us) == (None, (0,), 5)


@pytest.mark.parametrize(
    ("line", "cls"),
    [
        ("R5 invalid mem access 'scalar'", E.INVALID_MEM_ACCESS),
        ("R1 invalid mem access 'ptr_or_null_'", E.INVALID_MEM_ACCESS),
        ("invalid bpf_context access off=96 size=8", E.INVALID_CTX_ACCESS),
        ("R3 offset is outside of the packet", E.INVALID_PACKET_ACCESS),
        ("R1 bitwise operator &= on pointer prohibited", E.POINTER_ARITHMETIC),
        ("R1 32-bit pointer arithmetic prohibited", E.POINTER_ARITHMETIC),
        ("R2 pointer -= pointer prohibited", E.POINTER_ARITHMETIC),
        ("R2 min value is negative, either use unsigned or 'var &= const'", E.UNBOUNDED_MIN_VALUE),
        ("value 1073741824 makes pkt pointer be out of bounds", E.OUT_OF_RANGE),
        (
            "R2 unbounded memory access, use 'var &= const' or 'if (var < const)'",
            E.UNBOUNDED_ACCESS,
        ),
        ("R1 min value is outside of the allowed memory range", E.OUT_OF_RANGE),
        ("misaligned packet access off 2+(0x0; 0x0)+0 size 4", E.MISALIGNED_ACCESS),
        ("invalid indirect read from stack R2 off -8+0 size 8", E.UNINIT_STACK),
        (
            "invalid variable-offset read from stack R2 var_off=(0x0; 0x7) off=-8 size=1",
            E.UNINIT_STACK,
        ),
        ("invalid write to stack R1 off=-520 size=8", E.INVALID_STACK_ACCESS),
        ("The sequence of 8193 jumps is too complex.", E.PROGRAM_TOO_LARGE),
        ("unknown func bpf_foo#999", E.INVALID_HELPER),
        ("R0 !read_ok", E.READ_NOT_OK),
        ("something the kernel added later", E.UNKNOWN),
    ],
)
def test_classify_error_lines(line: str, cls: ErrorClass) -> None:
    assert classify_error(line)[0] is cls


def test_error_class_values_are_stable_and_documented() -> None:
    values = [c.value for c in ErrorClass]
    assert len(set(values)) == len(values)
    assert all(re.fullmatch(r"[a-z]+(?:-[a-z0-9]+)*", v) for v in values)
    assert ErrorClass("invalid-mem-access") is E.INVALID_MEM_ACCESS
    docs = DOCS.read_text()
    for v in values:
        assert f"`{v}`" in docs, v
    assert {row.error_class for row in ERROR_PATTERNS} == set(ErrorClass) - {E.UNKNOWN}


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("12: (bf) r3 = r1                      ; R1=pkt(r=0) R3=pkt(r=0)", LineKind.INSN),
        ("9: frame1: R1=scalar() R10=fp0", LineKind.STATE),
        ("6: R0=ringbuf_mem_or_null(id=2,ref_obj_id=2,sz=8) refs=2", LineKind.STATE),
        ("from 18 to 20: R0=3 R10=fp0", LineKind.FROM),
        ("from 5 to 20: safe", LineKind.FROM),
        ("20: safe", LineKind.SAFE),
        ("; if (!value) @ ok_map_lookup.bpf.c:18", LineKind.SOURCE),
        ("to caller at 15:", LineKind.FRAME_HEADER),
        (" frame2: R1=fp[1]-8 R10=fp0", LineKind.FRAME_STATE),
        ("      3: .12....... (bf) r3 = r1", LineKind.LIVE_REGS),
        ("  1  14: .12345.... (15) if r5 == 0x8 goto pc+1", LineKind.LIVE_REGS),
        ("mark_precise: frame0: regs=r2 stack= before 4: (b7) r3 = 0", LineKind.DEBUG),
        ("(1,14,17) frame 1 insn 24 +live -8 ", LineKind.DEBUG),
        ("func#2 @17", LineKind.FUNC),
        ("stack depth 0+8+8", LineKind.STATS),
        ("R1 type=scalar expected=map_ptr", LineKind.OTHER),
    ],
)
def test_classify_line(line: str, kind: LineKind) -> None:
    assert classify_line(line) is kind


# --- register and stack state parsing ----------------------------------------------------


def test_chained_bounds() -> None:
    r = parse_reg_state("scalar(smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))")
    assert r is not None
    assert (r.smin, r.smax, r.umin, r.umax) == (0, 255, 0, 255)
    assert (r.s32_min, r.s32_max, r.u32_min, r.u32_max) == (0, 255, 0, 255)
    assert (r.var_off_value, r.var_off_mask) == (0, 0xFF)

    r = parse_reg_state(
        "scalar(smin=umin=smin32=umin32=1,smax=umax=smax32=umax32=4,var_off=(0x0; 0x7))"
    )
    assert r is not None
    assert (r.smin, r.umin, r.s32_min, r.u32_min, r.smax, r.umax, r.s32_max, r.u32_max) == (
        1, 1, 1, 1, 4, 4, 4, 4,
    )  # fmt: skip


def test_omitted_bounds_take_the_defaults() -> None:
    r = parse_reg_state("scalar(smin=0xffffffff80000000,smax=0x7fffffff)")
    assert r is not None
    assert (r.smin, r.smax) == (S32_MIN, S32_MAX)  # hex is the 64-bit two's complement
    assert (r.umin, r.umax) == (0, U64_MAX)
    assert (r.s32_min, r.s32_max, r.u32_min, r.u32_max) == (S32_MIN, S32_MAX, 0, U32_MAX)
    assert (r.var_off_value, r.var_off_mask) == (0, U64_MAX)

    r = parse_reg_state(
        "scalar(smax=0x7fffffff00000000,umax=0xffffffff00000000,smin32=0,smax32=umax32=0,"
        "var_off=(0x0; 0xffffffff00000000))"
    )
    assert r is not None
    assert (r.smin, r.smax, r.umin, r.umax) == (S64_MIN, 0x7FFFFFFF00000000, 0, 0xFFFFFFFF00000000)
    assert (r.s32_min, r.s32_max, r.u32_min, r.u32_max) == (0, 0, 0, 0)

    r = parse_reg_state("scalar(smin32=0x80000001,umin=5)")  # a 32-bit signed value in hex
    assert r is not None
    assert (r.s32_min, r.umin) == (S32_MIN + 1, 5)

    unknown = parse_reg_state("scalar()")
    assert unknown == RegState("scalar")
    assert (unknown.smin, unknown.smax, unknown.umax) == (S64_MIN, S64_MAX, U64_MAX)


def test_constants() -> None:
    r = parse_reg_state("42")
    assert r is not None
    assert r.const_value == 42 and r.is_const
    assert (r.umin, r.umax, r.smin, r.smax, r.u32_max, r.s32_min) == (42, 42, 42, 42, 42, 42)
    m1 = parse_reg_state("-1")
    assert m1 is not None
    assert (m1.smin, m1.umin, m1.u32_min, m1.s32_max) == (-1, U64_MAX, U32_MAX, -1)
    neg = parse_reg_state("0xfffffffffffffffe")
    assert neg is not None and neg.const_value == -2
    u32 = parse_reg_state("0xffffffff")
    assert u32 is not None
    assert (u32.const_value, u32.s32_min, u32.u32_max) == (U32_MAX, -1, U32_MAX)
    precise = parse_reg_state("P0")
    assert precise is not None and precise.precise and precise.const_value == 0
    old = parse_reg_state("invP42")  # kernels before 5.19
    assert old is not None and old.precise and old.const_value == 42


def test_pointers() -> None:
    fp = parse_reg_state("fp-8")
    assert fp is not None
    assert (fp.type, fp.off, fp.frameno, fp.var_off_mask) == ("fp", -8, None, 0)
    assert parse_reg_state("fp0") == RegState.constant(0, type="fp")
    other = parse_reg_state("fp[1]-8")
    assert other is not None and (other.off, other.frameno) == (-8, 1)
    varfp = parse_reg_state(
        "fp(off=-320,smin=smin32=0,smax=umax=smax32=umax32=63,var_off=(0x0; 0x3f))"
    )
    assert varfp is not None
    assert (varfp.type, varfp.off, varfp.umax, varfp.var_off_mask) == ("fp", -320, 63, 0x3F)

    pkt = parse_reg_state("pkt(off=34,r=0xfffffffffffffffe)")
    assert pkt is not None
    assert (pkt.type, pkt.off, pkt.range) == ("pkt", 34, -2)  # BEYOND_PKT_END
    assert (pkt.umin, pkt.umax, pkt.var_off_mask) == (0, 0, 0)  # no variable part

    mv = parse_reg_state("map_value_or_null(id=1,map=counters,ks=4,vs=8)")
    assert mv is not None
    assert (mv.type, mv.id, mv.map_name, mv.key_size, mv.value_size) == (
        "map_value_or_null", 1, "counters", 4, 8,
    )  # fmt: skip
    rb = parse_reg_state("ringbuf_mem_or_null(id=2,ref_obj_id=2,sz=8)")
    assert rb is not None and (rb.ref_obj_id, rb.mem_size) == (2, 8)
    var = parse_reg_state(
        "map_value(map=values,ks=4,vs=8,"
        "smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))"
    )
    assert var is not None and (var.umax, var.var_off_mask, var.smin) == (255, 0xFF, 0)
    linked = parse_reg_state("scalar(id=1-8,smin=0,smax=umax=0xffffffff,smin32=-8,smax32=7)")
    assert linked is not None
    assert (linked.id, linked.add_const, linked.off, linked.s32_min) == (1, True, -8, -8)
    old = parse_reg_state("inv(id=0,umax_value=255,var_off=(0x0; 0xff))")
    assert old is not None and (old.type, old.umax) == ("scalar", 255)


def test_stack_slots() -> None:
    assert parse_stack_slot(-8, "mmmm????") == StackSlot(-8, "misc", "mmmm????")
    assert parse_stack_slot(-8, "00000000") == StackSlot(-8, "zero", "00000000")
    assert parse_stack_slot(-8, "0000????") == StackSlot(-8, "zero", "0000????")
    spill = parse_stack_slot(-32, "????0")  # a 4-byte spill of the constant 0
    assert spill is not None
    assert (spill.kind, spill.slot_types, spill.spilled) == (
        "spill",
        "????rrrr",
        RegState.constant(0),
    )
    narrow = parse_stack_slot(-64, "???????scalar(smin=smin32=-128,smax=smax32=127)")
    assert narrow is not None
    assert narrow.slot_types == "???????r"
    assert narrow.spilled is not None and (narrow.spilled.smin, narrow.spilled.smax) == (-128, 127)
    ctx = parse_stack_slot(-8, "ctx()")
    assert ctx is not None and ctx.spilled == RegState.constant(0, type="ctx")
    const = parse_stack_slot(-16, "42")
    assert const is not None and const.spilled is not None and const.spilled.const_value == 42
    dyn = parse_stack_slot(-24, "dynptr_local(id=1,dynptr_id=1)")
    assert dyn is not None
    assert (dyn.kind, dict(dyn.extra)["type"]) == ("dynptr", "local")
    it = parse_stack_slot(-8, "iter_num(ref_id=2,state=active,depth=0)")
    assert it is not None
    assert (it.kind, it.ref_id, dict(it.extra)["state"]) == ("iter", 2, "active")


def test_parse_state_line() -> None:
    d, bad = parse_state(" frame1: R0_w=1 R2=fp[0]-8 R10=fp0 fp-8_w=7 refs=2,4 cb")
    assert bad == []
    assert d.frame == 1 and d.callback
    assert d.refs == (2, 4)
    assert d.regs[0].written and d.regs[0].const_value == 1
    assert d.stack[-8].live == "w"
    d, bad = parse_state("R1=ctx() R2=scalar(id=1,frob=3) R3=something(weird R4=??? fp-8=zz")
    assert 1 in d.regs
    assert d.regs[2].extra == (("frob", "3"),)  # kept, and reported
    assert bad == ["R2=scalar(id=1,frob=3)", "R3=something(weird R4=??? fp-8=zz"]


def test_older_kernel_format() -> None:
    """Kernels before 6.18 print liveness marks (R0_w) and zero imm/off attributes."""
    text = "\n".join(
        [
            "0: R1=ctx(off=0,imm=0) R10=fp0",
            "0: (b7) r0 = 0                        ; R0_w=0",
            "1: (61) r2 = *(u32 *)(r1 +4)          ; R1=ctx(off=0,imm=0) R2_w=pkt_end(off=0,imm=0)",
            "2: (57) r0 &= 255                     ; R0_w=scalar(umax=255,var_off=(0x0; 0xff))",
            "3: (7b) *(u64 *)(r10 -8) = r0         ; R0_w=scalar(umax=255,var_off=(0x0; 0xff)) "
            "R10=fp0 fp-8_w=mmmmmmmm",
            "4: (95) exit",
            "processed 5 insns (limit 1000000) max_states_per_insn 0 total_states 0 "
            "peak_states 0 mark_read 0",
        ]
    )
    m = build_vimap(text)
    assert m.unparsed == []
    (r2,) = m.reg_at(2, 2)
    assert (r2.type, r2.written, r2.off) == ("pkt_end", True, 0)
    (r0,) = m.reg_at(3, 0)
    assert (r0.umax, r0.var_off_mask, r0.written) == (255, 0xFF, True)
    (slot,) = m.slot_at(4, -8)
    assert (slot.kind, slot.live) == ("misc", "w")
    assert parse_log(text).accepted is True


# --- the VI map on the fixtures --------------------------------------------------------


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_no_unparsed_lines(path: Path) -> None:
    m = build_vimap(path.read_text())
    assert m.unparsed == []
    # Only the rotated log starts with a cut line.
    assert (m.head_fragment is not None) == (path.name == "err_too_large.L1.log")


_VALUE_FIELDS = (
    "type", "off", "ref_obj_id", "umin", "umax", "smin", "smax", "u32_min", "u32_max",
    "s32_min", "s32_max", "var_off_value", "var_off_mask", "range", "key_size",
    "value_size", "map_name", "mem_size", "frameno",
)  # fmt: skip


def same_value(a: RegState, b: RegState) -> bool:
    """Equal as values: ids (assigned to sources on copies and spills) and the
    precision mark (set by backtracking, never printed at the time) may differ."""
    fields = [f for f in _VALUE_FIELDS if not (a.is_scalar and f == "off")]
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def same_slot(a: StackSlot, b: StackSlot) -> bool:
    if (a.kind, a.slot_types, a.extra) != (b.kind, b.slot_types, b.extra):
        return False
    if a.spilled is None or b.spilled is None:
        return a.spilled is b.spilled
    return same_value(a.spilled, b.spilled)


_DST_RE = re.compile(r"^[rw](\d+) ")


def written_regs(text: str) -> set[int] | None:
    """Registers an instruction may write; None if this test does not know."""
    if text.startswith("call"):
        return set(range(6))
    if text.startswith(("goto", "exit", "*(", "lock ", "may_goto")):
        return set()
    m = _DST_RE.match(text)
    return {int(m.group(1))} if m else None


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_reconstruction_matches_what_the_log_prints(path: Path) -> None:
    """Every register the log prints after an instruction that did not write it
    must equal the state rebuilt for before that instruction; every frame the log
    prints in full around calls must equal the rebuilt one."""
    m = build_vimap(path.read_text())
    checked = 0
    for v in m.visits:
        if v.delta is None or v.text.startswith("if ") or v.delta.frame != v.state.frame:
            continue
        written = written_regs(v.text)
        assert written is not None, v.text
        for regno, printed in v.delta.regs.items():
            if regno in written:
                continue
            before = v.state.regs.get(regno)
            if before is None and m.head_fragment is not None:
                continue  # a rotated log starts without a state
            assert before is not None, (v.line, regno)
            assert same_value(before, printed), (v.line, v.text, regno, before, printed)
            checked += 1
        if v.text.startswith(("*(", "lock ", "call")):
            continue  # stores and helpers write the stack
        for off, printed_slot in v.delta.stack.items():
            before_slot = v.state.stack.get(off)
            assert before_slot is not None and same_slot(before_slot, printed_slot), (v.line, off)
            checked += 1
    for cp in m.checkpoints:
        # "caller:" is printed after the call dropped R0-R5 of the caller.
        keep = (lambda r: r >= 6) if cp.what == "caller" else (lambda r: True)
        tracked = {r: s for r, s in cp.tracked.regs.items() if keep(r)}
        printed = {r: s for r, s in cp.printed.regs.items() if keep(r)}
        assert tracked.keys() == printed.keys(), (cp.line, cp.what)
        for r in tracked:
            assert same_value(tracked[r], printed[r]), (cp.line, r, tracked[r], printed[r])
        assert cp.tracked.stack.keys() == cp.printed.stack.keys(), cp.line
        for off in cp.tracked.stack:
            assert same_slot(cp.tracked.stack[off], cp.printed.stack[off]), (cp.line, off)
        checked += 1
    if len(m.visits) > 10:
        assert checked > 0


def test_checkpoints_exist_for_calls() -> None:
    assert len(vimap("ok_bpf2bpf.L2.log").checkpoints) == 4
    assert len(vimap("ok_callback.L2.log").checkpoints) == 4


def test_packet_bounds_check() -> None:
    m = vimap("ok_xdp_bounds.L2.log")
    # 5: if r3 > r2 goto  (r3 = data + 14): R1 = data learns r=14 without being printed.
    (r1,) = m.reg_at(6, 1)
    assert (r1.type, r1.off, r1.range) == ("pkt", 0, 14)
    (r3,) = m.reg_at(6, 3)
    assert (r3.type, r3.off, r3.range) == ("pkt", 14, 14)
    (r2,) = m.reg_at(6, 2)
    assert r2.type == "pkt_end"
    (r1,) = m.reg_at(16, 1)
    assert r1.range == 34
    # The taken branch of 15 carries r3 with range BEYOND_PKT_END (-2).
    ranges = sorted(r.range for r in m.reg_at(20, 3) if r.type == "pkt")
    assert ranges == [-2, 34, 34]
    masked = m.reg_at(7, 3)[0]
    assert (masked.umax, masked.var_off_value, masked.var_off_mask) == (255, 0, 0xFF)


def test_map_lookup_null_check() -> None:
    m = vimap("ok_map_lookup.L2.log")
    (r0,) = m.reg_at(8, 0)
    assert (r0.type, r0.id, r0.map_name, r0.key_size, r0.value_size) == (
        "map_value_or_null", 1, "counters", 4, 8,
    )  # fmt: skip
    (r0,) = m.reg_at(9, 0)
    assert (r0.type, r0.id) == ("map_value", 0)
    (r1,) = m.reg_at(2, 1)  # key = ingress_ifindex & 0xff
    assert (r1.type, r1.smin, r1.smax, r1.umin, r1.umax) == ("scalar", 0, 255, 0, 255)
    assert (r1.s32_min, r1.s32_max, r1.u32_min, r1.u32_max) == (0, 255, 0, 255)
    assert (r1.var_off_value, r1.var_off_mask) == (0, 0xFF)
    (slot,) = m.slot_at(3, -8)
    assert (slot.kind, slot.slot_types) == ("misc", "mmmm????")
    (r2,) = m.reg_at(5, 2)
    assert (r2.type, r2.off) == ("fp", -4)
    # the call dropped R1-R5
    (state,) = m.states(8)
    assert sorted(state.regs) == [0, 10]


def test_copies_follow_the_branch() -> None:
    m = vimap("ok_branch_copies.L2.log")
    (r6,) = m.reg_at(10, 6)  # r6 = r0 before "if r0 == 0"
    assert (r6.type, r6.id) == ("map_value", 0)
    (r2,) = m.reg_at(15, 2)  # r2 = r1 before "if r1 > 7"
    assert (r2.umax, r2.smax, r2.var_off_mask) == (7, 7, 0x7)
    (r4,) = m.reg_at(23, 4)  # r4 = r3 before "if r3 + 8 > data_end"
    assert (r4.type, r4.range) == ("pkt", 8)


def test_spills_and_fills() -> None:
    m = vimap("ok_spill.L2.log")
    (state,) = m.states(9)
    stack = state.stack
    assert stack[-8].spilled == RegState.constant(0, type="ctx")
    assert stack[-16].spilled is not None and stack[-16].spilled.const_value == 42
    spilled = stack[-24].spilled
    assert spilled is not None and (spilled.id, spilled.umax) == (1, 255)
    assert (stack[-32].kind, stack[-32].slot_types) == ("spill", "????rrrr")
    (r3,) = m.reg_at(11, 3)
    assert (r3.type, r3.off) == ("fp", -24)
    (r4,) = m.reg_at(11, 4)
    assert (r4.id, r4.umax) == (1, 255)


def test_alu32_bounds() -> None:
    m = vimap("ok_alu32.L2.log")
    (r4,) = m.reg_at(10, 4)
    assert (r4.s32_min, r4.s32_max, r4.smin, r4.umax) == (-8, 7, 0, U32_MAX)
    assert (r4.id, r4.add_const, r4.off) == (1, True, -8)
    (r6,) = m.reg_at(9, 6)
    assert (r6.const_value, r6.s32_min, r6.u32_max) == (U32_MAX, -1, U32_MAX)
    (r6,) = m.reg_at(10, 6)
    assert r6.const_value == 255
    (r5,) = m.reg_at(8, 5)
    assert (r5.umin, r5.umax, r5.var_off_value, r5.var_off_mask) == (1, 241, 1, 0xF0)


def test_bpf_to_bpf_frames() -> None:
    m = vimap("ok_bpf2bpf.L2.log")
    (main,) = m.states(0)
    assert main.frame == 0 and main.regs[1].type == "ctx"
    (middle,) = m.states(9)
    assert middle.frame == 1
    assert middle.frames[0].regs[10] == RegState.constant(0, type="fp")
    assert middle.frames[1].regs[1].umax == U32_MAX
    (leaf,) = m.states(17)
    assert leaf.frame == 2
    p = leaf.regs[1]
    assert (p.type, p.off, p.frameno) == ("fp", -8, 1)  # points into middle's stack
    assert leaf.frames[1].stack[-8].spilled == RegState.constant(7)
    (back,) = m.states(15)  # after "to caller at 15": back in frame 1 with R0 set
    assert back.frame == 1 and back.regs[0].umax == 3
    (done,) = m.states(2)
    assert done.frame == 0 and sorted(done.regs) == [0, 10]


def test_callback_frames() -> None:
    m = vimap("ok_callback.L2.log")
    cb_states = m.states(16)
    assert cb_states and all(s.frame == 1 and s.frames[1].callback for s in cb_states)
    r2 = cb_states[0].regs[2]
    assert (r2.type, r2.off, r2.frameno) == ("fp", -8, 0)
    assert m.states(0)[0].frames[0].callback is False


def test_references() -> None:
    m = vimap("ok_ringbuf.L2.log")
    assert [s.refs for s in m.states(13)] == [(2, 4)]
    assert [s.refs for s in m.states(14)] == [(2,)]
    (r0,) = m.reg_at(14, 0)
    assert r0.const_value == 0  # the failed reservation
    (r7,) = m.reg_at(26, 7)  # submitted at 25: the pointer is gone
    assert r7 == RegState("scalar")
    assert [s.refs for s in m.states(26)] == [(4,)]


def test_iterator_and_dynptr_slots() -> None:
    m = vimap("ok_iter_dynptr.L2.log")
    (state,) = m.states(14)
    it = state.stack[-8]
    assert (it.kind, it.ref_id, dict(it.extra)["state"], dict(it.extra)["depth"]) == (
        "iter", 2, "active", "0",
    )  # fmt: skip
    assert state.stack[-24].kind == "dynptr"
    assert state.refs == (2,)
    # bpf_iter_num_destroy released the iterator.
    assert all(-8 not in s.stack and s.refs == () for s in m.states(33))


def test_loop_visits_and_merged() -> None:
    m = vimap("ok_loop.L2.log")
    assert [r.const_value for r in m.reg_at(3, 2)] == list(range(8))
    merged = m.merged(3, 2)
    assert merged is not None
    assert (merged.type, merged.umin, merged.umax, merged.smin, merged.smax) == (
        "scalar",
        0,
        7,
        0,
        7,
    )
    assert (merged.visits, merged.uninit_visits) == (8, 0)
    assert m.merged(3, 7) is None
    assert m.insns() == sorted(set(m.insns()))
    assert m.insns() == list(range(21)) and len(m.visits) == 112
    assert m.live_regs[14] == frozenset({1, 2, 3, 4, 5})
    assert m.sources[3].text == "sum += n * i;"


def test_merged_type_disagreement() -> None:
    m = vimap("ok_ringbuf.L2.log")
    merged = m.merged(29, 0)  # r0 = 0 on the NULL path; the helpers left it unset elsewhere
    assert merged is not None
    assert (merged.type, merged.umax, merged.visits, merged.uninit_visits) == ("scalar", 0, 1, 2)
    m = vimap("ok_xdp_bounds.L2.log")
    r3 = m.merged(20, 3)
    assert r3 is not None and r3.type is None  # pkt on two paths, a scalar on one


def test_level1_logs_hold_the_failing_path() -> None:
    m = vimap("err_invalid_return.L1.log")
    assert [v.insn for v in m.visits] == [0, 1, 2, 4]
    (state,) = m.states(4)  # " 4: R0=3 ..." appended to the branch: the taken path
    assert state.regs[0].const_value == 3
    assert state.regs[1].umin == 101
    m = vimap("err_same_insn_ptrs.L1.log")
    (state,) = m.states(8)
    assert state.regs[1].type == "ctx"
    assert state.stack[-8].spilled == RegState.constant(0)


def test_error_insn_state() -> None:
    # What the repair engine asks: the state at the rejected instruction.
    log = parse_log(log_text("err_max_out_of_range.L2.log"))
    assert log.error is not None and log.error.insn is not None
    (r6,) = vimap("err_max_out_of_range.L2.log").reg_at(log.error.insn, 6)
    assert (r6.type, r6.value_size, r6.umax, r6.var_off_mask) == ("map_value", 8, 255, 0xFF)


# --- robustness -------------------------------------------------------------------------


def test_garbage_never_raises() -> None:
    junk = "\n".join(
        [
            "0: (bf) r1 = r2 ; R1=wat(((( R2=",
            "from x to y:",
            "from 1 to 2: frame9: R99=P fp-7=",
            " frame1: R1=scalar(smin=zz)",
            "to caller at 3:",
            " R0=scalar(id=abc)",
            "3: R0=1 refs=a,b",
            "      1: ......... (bf) r1 = r1",
            "caller:",
        ]
    )
    m = build_vimap(junk)
    assert len(m.unparsed) >= 3
    parse_log(junk)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(log_text("ok_bpf2bpf.L2.log").splitlines()), max_size=60))
def test_shuffled_real_lines_never_raise(lines: list[str]) -> None:
    text = "\n".join(lines)
    build_vimap(text)
    parse_log(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789 :;=()[],-+xRfpsmr?_abcdefghijklmnop\n", max_size=300))
def test_random_text_never_raises(text: str) -> None:
    build_vimap(text)
    parse_log(text)


# --- live: load a program into the running kernel ---------------------------------------

_SYS_BPF = {"x86_64": 321, "aarch64": 280}
_BPF_PROG_LOAD = 5
_BPF_PROG_TYPE_XDP = 6


class _ProgLoadAttr(ctypes.Structure):
    """The BPF_PROG_LOAD part of union bpf_attr, up to expected_attach_type."""

    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


def _load_xdp(code: bytes, log_level: int) -> tuple[int, int, str]:
    """bpf(BPF_PROG_LOAD) of raw XDP instructions: (fd or -1, errno, log)."""
    libc = ctypes.CDLL(None, use_errno=True)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 20)
    attr = _ProgLoadAttr(
        prog_type=_BPF_PROG_TYPE_XDP,
        insn_cnt=len(code) // 8,
        insns=ctypes.addressof(insns),
        license=ctypes.addressof(license_),
        log_level=log_level,
        log_size=len(log),
        log_buf=ctypes.addressof(log),
        prog_name=b"vlog_live",
    )
    nr = _SYS_BPF[platform.machine()]
    fd = libc.syscall(nr, _BPF_PROG_LOAD, ctypes.byref(attr), ctypes.sizeof(attr))
    return fd, ctypes.get_errno(), log.value.decode(errors="replace")


def test_live_load_matches_fixture(tmp_path: Path) -> None:
    if platform.system() != "Linux" or platform.machine() not in _SYS_BPF:
        pytest.skip("bpf(2) syscall number unknown on this platform")
    clang = shutil.which("clang-19") or shutil.which("clang")
    if clang is None:
        pytest.skip("clang not installed")
    from elftools.elf.elffile import ELFFile

    obj = tmp_path / "ok_xdp_bounds.o"
    subprocess.run(
        [clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
         "-c", str(DATA / "ok_xdp_bounds.bpf.c"), "-o", str(obj)],
        check=True,
    )  # fmt: skip
    with obj.open("rb") as f:
        elf = ELFFile(f)
        code = elf.get_section_by_name("xdp").data()
        assert elf.get_section_by_name(".relxdp") is None  # no maps, no calls: loads as is

    fd, errno_, text = _load_xdp(code, log_level=2)
    if fd < 0 and errno_ in (1, 13) and not text:  # EPERM/EACCES before verifying
        pytest.skip(f"bpf(BPF_PROG_LOAD) not permitted: {os.strerror(errno_)}")
    if fd >= 0:
        os.close(fd)
    assert fd >= 0, text

    log = parse_log(text)
    assert log.accepted is True
    assert log.processed_insns == PROCESSED["ok_xdp_bounds"]
    live = build_vimap(text)
    assert live.unparsed == []
    assert live.sources == {}  # no BTF line info in a raw load
    fixture = vimap("ok_xdp_bounds.L2.log")
    assert [(v.insn, v.state) for v in live.visits] == [(v.insn, v.state) for v in fixture.visits]
    (r1,) = live.reg_at(6, 1)
    assert (r1.type, r1.range) == ("pkt", 14)


def test_recursion_too_deep_is_the_error_not_the_global_function_note():
    from epass.kernel.verifier_log import ErrorClass, parse_log

    log = parse_log(
        "Func#2 ('odd') is safe for any args that match its prototype\n"
        "the call stack of 8 frames is too deep !\n"
        "verification time 84 usec\n"
        "stack depth 0+0+0\n"
        "processed 22 insns (limit 1000000) max_states_per_insn 0 total_states 2 "
        "peak_states 2 mark_read 0\n")
    assert log.error is not None
    assert log.error.message == "the call stack of 8 frames is too deep !"
    assert log.error.error_class == ErrorClass.CALL_STACK_TOO_DEEP
