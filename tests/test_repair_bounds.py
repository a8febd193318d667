"""bounds, packet_recheck and lost_bounds on their corpus cases: each repaired in the rounds
given, proven EQUIVALENT, accepted by the kernel and returning the case's retval on its
packet. Plus the Z3 models the safety question and the proofs of three of the cases need:
bpf_skb_load_bytes with a length that is not a constant, and bpf_loop."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

import pytest

from epass.codegen import compile_module
from epass.commands.run import interpreter_inputs, on_kernel
from epass.ir.lift import lift_program
from epass.ir.text import format_module, parse_module
from epass.obj.reader import read_object
from epass.repair import Options, repair
from epass.repair.engine import proof_insns
from epass.semantics.interp import Environment, run
from epass.smt import ProofInputs, Verdict, prove
from epass.smt.safety import find_fault
from epass.uapi import ProgType

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "false_rejections"
BUGS = CORPUS.parent / "true_bugs"

# case -> (the strategy of each round, how the last round's candidate starts)
REPAIRED = {
    "payload_offset_field": (["packet_recheck"], "re-derive the pointer, then check root + 4"),
    # the check covers the length read of the same extension too (the program checked
    # e + 1 <= data_end): one round for both reads
    "tls_extension_walk": (["packet_recheck"], "re-derive the pointer, then check root + 4"),
    "volatile_len_reread": (["bounds", "packet_recheck"],
                            "re-derive the pointer, then check root + 1"),
    # one check for every read after the first (data + 42 == data_end there)
    "exact_frame_len_eq": (["packet_recheck"], "check root + 42 <= data_end before insn 6"),
    "ip_version_hdr_len": (["packet_recheck"], "check root + 34"),
    "pkt_len_scalar_compare": (["packet_recheck"], "check root + 24"),
    "reload_ctx_data_after_lookup": (["packet_recheck"], "check root + 4"),
    "rematerialized_pkt_ptr": (["packet_recheck"], "check root + 4"),
    "stack_key_field_spill": (["bounds"], "check the offset added at insn 33 is at most 504"),
    # pos + n <= 256: one path per value of n (20, 24, ..., 60)
    "map_append_relational": (["lost_bounds"], "split the call at insn 34 by its size "
                                               "(11 cases)"),
    # n = (u32)(data_end - data): 32-bit pointer arithmetic leaves the upper half unknown;
    # then n in [1, 64] and pos + n <= 256, as above
    "pkt_len_u32_truncation": (["lost_bounds", "lost_bounds"],
                               "split the call at insn 28 by its size (65 cases)"),
    # the callback's index is in [0, 15]: provable once bpf_loop has a model
    "bpf_loop_slot_index": (["bounds"], "check the offset added at insn 27 is at most 120"),
}


def _case(name: str) -> tuple:
    obj = read_object(CORPUS / name / "prog.o")
    return obj, tomllib.loads((CORPUS / name / "case.toml").read_text())


@pytest.mark.parametrize("name", sorted(REPAIRED))
def test_repaired_proven_and_runs(name, bpf_permitted):
    obj, case, r = _repaired(name)
    strategies, candidate = REPAIRED[name]
    assert r.status == "repaired", [(x.error.message, x.tried) for x in r.rounds]
    assert [x.strategy for x in r.rounds] == strategies
    assert r.rounds[-1].candidate.startswith(candidate), r.rounds[-1].candidate
    assert r.safety == "safe"
    assert r.proof is not None and r.proof.verdict == Verdict.EQUIVALENT
    got = on_kernel(obj, r.program, bytes.fromhex(case["test"]["packet"]), None)
    assert got["accepted"] and got["r0"] == case["test"]["retval"]


@functools.cache
def _repaired(name: str) -> tuple:
    obj, case = _case(name)
    return obj, case, repair(obj, obj.programs[0], Options(timeout=30))  # the CLI default


def test_the_first_round_of_the_truncated_length_zero_extends_it(bpf_permitted):
    r = _repaired("pkt_len_u32_truncation")[2]
    first = r.rounds[0]
    assert first.candidate == "zero-extend operand 4 of insn 27 (its upper half is zero)"
    assert first.proof is not None and first.proof.verdict == Verdict.EQUIVALENT
    assert r.rounds[1].error.message.startswith("R4 invalid zero-sized read")


def _lost_bounds_candidates(name: str) -> tuple:
    """lost_bounds' candidates for the case's first error, asked directly (bounds answers
    these cases first in the engine), and a way to try one: (descriptions, try)."""
    from epass.kernel.loader import open_object
    from epass.kernel.verifier_log import parse_log
    from epass.repair.site import Facts, make_site
    from epass.repair.strategies import lost_bounds

    obj, _ = _case(name)
    (program,) = obj.programs
    original, specs = interpreter_inputs(obj, program)
    inputs = ProofInputs(program.kind.prog_type, specs)
    with open_object(obj) as loaded:
        load = loaded.load_program(program, log_level=2)
    error = parse_log(load.log).error
    facts = Facts(load.log)
    candidates = lost_bounds.propose(make_site(obj, program, error, facts))

    def attempt(k: int) -> tuple:
        site = make_site(obj, program, error, facts)
        candidates[k].apply(site)
        new = compile_module(site.module)
        with open_object(obj) as loaded:
            verdict = loaded.load_program(new, log_level=2)
        proof = prove(original, proof_insns(obj, new), inputs, timeout=30)
        return verdict, proof

    return [c.description for c in candidates], attempt


def test_a_reload_is_replaced_by_the_value_stored(bpf_permitted):
    # the u32 at fp-4 (not 8-byte aligned: not tracked) is reloaded after a helper call
    names, attempt = _lost_bounds_candidates("stack_key_field_spill")
    assert names == ["zero-extend operand 2 of insn 33 (its upper half is zero)",
                     "use the value stored to the slot instead of the reload at insn 31"]
    verdict, proof = attempt(1)
    assert verdict.accepted and proof.verdict == Verdict.EQUIVALENT, proof.reason
    # the volatile re-read: the bounds come back, the packet range is the next round's
    names, attempt = _lost_bounds_candidates("volatile_len_reread")
    assert names[1] == "use the value stored to the slot instead of the reload at insn 11"
    verdict, proof = attempt(1)
    assert not verdict.accepted and "invalid access to packet, off=46" in verdict.log
    assert proof.verdict == Verdict.EQUIVALENT, proof.reason


# --- bpf_skb_load_bytes with a variable length, in Z3 ---------------------------------------


def _variant(name: str, old: str, new: str) -> tuple:
    """The case's program with one line of its IR changed: (obj, original, variant,
    inputs), as the prover takes them."""
    obj, _ = _case(name)
    (program,) = obj.programs
    text = format_module(lift_program(program, obj.maps))
    assert old in text
    changed = compile_module(parse_module(text.replace(old, new)))
    original, specs = interpreter_inputs(obj, program)
    return obj, original, proof_insns(obj, changed), ProofInputs(program.kind.prog_type, specs)


def test_a_variable_length_copy_past_the_buffer_is_found():
    # pos + n may now reach 264: the copy runs past the 260-byte map value
    _, _, buggy, inputs = _variant("map_append_relational", "br.32 jgt %21, 256",
                                   "br.32 jgt %21, 264")
    witness = find_fault(buggy, inputs, timeout=30)
    assert witness is not None and witness.confirmed
    assert witness.run["fault"].startswith("insn 34: out-of-bounds write")


def test_the_safe_variable_length_copies_are_safe():
    for name in ("map_append_relational", "pkt_len_u32_truncation"):
        obj, _ = _case(name)
        insns, specs = interpreter_inputs(obj, obj.programs[0])
        assert find_fault(insns, ProofInputs(obj.programs[0].kind.prog_type, specs),
                          timeout=30) is None


def test_a_copy_to_another_place_is_not_equivalent():
    # the bytes land one byte lower, over the high byte of `pos`
    _, original, moved, inputs = _variant("map_append_relational", "%27:r3 = add %26, 4",
                                          "%27:r3 = add %26, 3")
    proof = prove(original, moved, inputs, timeout=30)
    assert proof.verdict == Verdict.NOT_EQUIVALENT, proof.reason
    assert proof.counterexample is not None and proof.counterexample.confirmed


def test_a_copy_of_another_length_is_not_equivalent():
    _, original, longer, inputs = _variant("pkt_len_u32_truncation", "br.32 jlt %11, 64",
                                           "br.32 jlt %11, 60")
    proof = prove(original, longer, inputs, timeout=30)
    assert proof.verdict == Verdict.NOT_EQUIVALENT, proof.reason


# --- bpf_loop, in Z3 -----------------------------------------------------------------------

# count callback calls until the index reaches half the packet's byte 14, at most (byte 14
# & 15) calls; r0 = what bpf_loop returns + 100 * the count
LOOP = """\
module @walk section "xdp"
func @walk args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0 + 4]
  %2:r3 = load u32 [%0]
  %3:r4 = add %2, 15
  %4:r0 = mov 1
  br jgt %3, %1, bb2(%4), bb1
bb1:
  %5:r1 = load u8 [%2 + 14]
  %6:r2 = rsh %5, 1
  store u64 [fp - 8], %6
  %7:r1 = mov 0
  store u64 [fp - 16], %7
  %8:r3 = mov fp
  %9:r3 = add %8, -16
  %10:r1 = and %5, 15
  %11:r2 = func @step
  %12:r4 = mov 0
  %13:r0 = call bpf_loop(%10, %11, %9, %12)
  %14:r1 = load u64 [fp - 16]
  %15:r1 = mul %14, 100
  %16:r0 = add %13, %15
  jump bb2(%16)
bb2(%17:r0):
  ret %17
}
func @step args 2 {
bb0:
  %0:r1 = arg 1
  %1:r2 = arg 2
  %2:r3 = load u64 [%1 + 8]
  br jge %0, %2, bb2, bb1
bb1:
  %3:r3 = load u64 [%1]
  %4:r3 = add %3, 1
  store u64 [%1], %4
  %5:r0 = mov 0
  ret %5
bb2:
  %6:r0 = mov 1
  ret %6
}
"""


def _loop(old: str = "", new: str = "") -> list:
    return compile_module(parse_module(LOOP.replace(old, new))).insns


def test_the_loop_program_runs_as_described():
    for byte, r0 in ((0, 0), (3, 102), (10, 506), (200, 808)):
        got = run(_loop(), Environment(prog_type=ProgType.XDP, packet=bytes(14) + bytes([byte])))
        assert got.r0 == r0


def test_bpf_loop_in_z3():
    inputs = ProofInputs(ProgType.XDP)
    same = _loop("br jge %0, %2, bb2, bb1", "br jlt %0, %2, bb1, bb2")
    proof = prove(_loop(), same, inputs, timeout=30)
    assert proof.verdict == Verdict.EQUIVALENT, proof.reason
    # stopping one index later: a different count for every byte from 2 up
    later = _loop("br jge %0, %2, bb2, bb1", "br jgt %0, %2, bb2, bb1")
    proof = prove(_loop(), later, inputs, timeout=30)
    assert (proof.verdict, proof.property) == (Verdict.NOT_EQUIVALENT, "r0")
    assert proof.counterexample is not None and proof.counterexample.confirmed
    # the loop ends with its count or with what the callback stopped at: told apart
    ignored = _loop("%16:r0 = add %13, %15", "%16:r0 = add %15, 0")
    assert prove(_loop(), ignored, inputs, timeout=30).verdict == Verdict.NOT_EQUIVALENT


def test_a_callback_past_its_array_is_a_true_bug(bpf_permitted):
    obj = read_object(BUGS / "bpf_loop_one_too_many" / "prog.o")
    r = repair(obj, obj.programs[0], Options(timeout=30))  # the CLI default
    assert r.status == "true_bug" and r.bug is not None and r.bug.confirmed
    assert r.bug.run["fault"].startswith("insn 28: out-of-bounds read of 8 bytes")


def test_two_offsets_are_added_first_and_the_sum_checked(bpf_permitted):
    """map_window_copy: the verifier bounds offset (<= 1023) and i (<= 63) each, so a check
    on i alone leaves no room (at most 0: the proof finds inputs where it fires); the sum
    offset + i checked against 1023 and added to the map value is proven, 4 times past the
    unroll bound (the loop runs up to 64 trips)."""
    obj, case, r = _repaired("map_window_copy")
    assert r.status == "repaired", [(x.error.message, x.tried) for x in r.rounds]
    (first,) = r.rounds
    (refused,) = first.tried
    assert refused.startswith("bounds: check the offset added at insn 39 is at most 0: "
                              "proof refines")
    assert first.candidate == ("add the offsets of insns 33 and 39 first, check the sum is "
                               "at most 1023, and add it to the pointer")
    assert r.proof is not None and r.proof.verdict == Verdict.EQUIVALENT
    assert r.proof.unroll == 128
    got = on_kernel(obj, r.program, bytes.fromhex(case["test"]["packet"]), None)
    assert got["accepted"] and got["r0"] == case["test"]["retval"]
