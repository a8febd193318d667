"""The repair corpus (corpus/README.md): every claim a case makes holds on this kernel, the
engine repairs the false rejections it should (accepted, proven EQUIVALENT, and behaving as
the original on generated inputs) and refuses every true bug with a confirmed input."""

from __future__ import annotations

import random
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from test_json_schema import check

from epass.commands.run import (
    TEST_RUN_PACKET_TYPES,
    _interpreter_json,
    differences,
    interpret,
    on_kernel,
)
from epass.commands.verify import load_report
from epass.kernel.loader import open_object
from epass.obj.reader import read_object
from epass.repair import Options, repair
from epass.smt import Verdict

from cli import epass

ROOT = Path(__file__).resolve().parents[1] / "corpus"
FAMILIES = {"provenance", "arithmetic", "range-analysis", "limits", "lowering"}
STRATEGIES = {"bounds", "lost_bounds", "provenance", "packet_recheck", "alignment", "loops",
              "stack_depth"}
CASES = sorted(p.parent for p in ROOT.glob("*/*/case.toml"))
FALSE = [c for c in CASES if c.parent.name == "false_rejections"]
BUGS = [c for c in CASES if c.parent.name == "true_bugs"]
BUILD = ("clang-19", "-O2", "-g", "-target", "bpf", "-mcpu=v3",
         "-I/usr/include/x86_64-linux-gnu")

# what the engine does with each false rejection this kernel rejects: the strategy of each
# round, in order; a case missing here is not repaired yet, for the reason given
REPAIRED = {
    "backend_mod_select": ["bounds"],
    "bpf_loop_slot_index": ["bounds"],
    "combined_stack_two_frames": ["stack_depth"],
    "ctx_cb_loop_counter": ["loops"],
    "ctx_cb_loop_pointer": ["provenance"],
    "ctx_field_offset_select": ["provenance"],
    "ctx_field_ptr_select": ["provenance"],
    "ctx_or_map_value_load": ["provenance"],
    "exact_frame_len_eq": ["packet_recheck"],
    "hash_mod_bucket_counter": ["bounds"],
    "ip_version_hdr_len": ["packet_recheck"],
    "layered_parser_call_depth": ["stack_depth"],
    "len_div_histogram": ["bounds"],
    "map_window_copy": ["bounds"],  # the sum of two offsets, proven 128 trips deep
    "map_append_relational": ["lost_bounds"],
    "packed_tuple_word_copy": ["alignment"],
    "payload_len_seen": ["bounds"],
    "payload_offset_field": ["packet_recheck"],
    "payload_signature_scan": ["loops"],
    "pkt_end_minus_one_check": ["provenance"],
    "pkt_len_scalar_compare": ["packet_recheck"],
    "pkt_len_u32_truncation": ["lost_bounds", "lost_bounds"],
    "pow2_round_down_loop": ["loops"],
    "prefix_shift_bucket": ["bounds"],
    "reload_ctx_data_after_lookup": ["packet_recheck"],
    "rematerialized_pkt_ptr": ["packet_recheck"],
    "stack_key_field_spill": ["bounds"],
    "stack_ptr_array_var_index": ["provenance"],
    "stale_pkt_ptr_after_adjust_tail": ["provenance", "packet_recheck"],
    "tcp_syn_options_parse": ["loops"],
    "tls_extension_walk": ["packet_recheck"],
    "undef_reg_and_condition": ["provenance"],
    "volatile_len_reread": ["bounds", "packet_recheck"],
}
NOT_REPAIRED: dict[str, tuple[str, str]] = {}  # case -> (status, why)


def meta(case: Path) -> dict:
    return tomllib.loads((case / "case.toml").read_text())


def ids(cases: list[Path]) -> list[str]:
    return [c.name for c in cases]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_the_case_says_what_it_is(case):
    m = meta(case)
    bug = case.parent.name == "true_bugs"
    assert m["family"] in FAMILIES
    assert m["origin"].startswith("https://")
    assert m["verdict"] in ("accept", "reject")
    assert m["pattern"] and (m["bug"] if bug else m["safe_because"])
    assert ("strategy" not in m) if bug else (m["strategy"] in STRATEGIES)
    assert (case / "prog.bpf.c").read_text().startswith("/*")  # says what it reproduces
    if "test" in m:
        assert len(bytes.fromhex(m["test"]["packet"])) >= 14


@pytest.mark.skipif(shutil.which("clang-19") is None, reason="clang-19 is not installed")
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_the_pinned_object_is_what_clang_builds(case, tmp_path):
    out = tmp_path / "prog.o"
    subprocess.run([*BUILD, f"-fdebug-prefix-map={case}=.", "-c", "prog.bpf.c", "-o",
                    str(out)], cwd=case, check=True, capture_output=True)
    pinned = (case / "prog.o").read_bytes()
    assert out.read_bytes() == pinned
    assert str(ROOT.parent).encode() not in pinned  # no path of the machine it was built on


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_the_kernel_says_what_the_case_says(case, bpf_permitted):
    m = meta(case)
    obj = read_object(str(case / "prog.o"))
    (program,) = obj.programs
    assert program.section == m["section"]
    with open_object(obj) as loaded:
        load = loaded.load_program(program)
        report = load_report(load, with_log=False)
    assert report["accepted"] == (m["verdict"] == "accept"), report
    if m["verdict"] == "reject":
        assert report["error"]["message"] == m["message"]
    if "test" in m and "retval" in m["test"]:
        got = interpret(obj, program, bytes.fromhex(m["test"]["packet"]), None)
        assert got.r0 == m["test"]["retval"] and got.fault is None


def test_the_corpus_has_what_the_issue_asks():
    rejected = [c for c in FALSE if meta(c)["verdict"] == "reject"]
    assert len(rejected) >= 30 and len(BUGS) >= 10
    assert {meta(c)["family"] for c in rejected} == FAMILIES
    assert set(REPAIRED) | set(NOT_REPAIRED) == {c.name for c in rejected}


def generated_packets(packet: bytes, n: int = 6) -> list[bytes]:
    """The case's packet, cut at header boundaries, and with its bytes past the Ethernet
    header scrambled (seeded)."""
    rnd = random.Random(len(packet))
    # (BPF_PROG_TEST_RUN refuses tc packets of only an Ethernet header)
    out = [packet] + [packet[:k] for k in (34, 42, 54) if k < len(packet)]
    for _ in range(n):
        body = bytearray(packet)
        for i in range(14, len(body)):
            if rnd.random() < 0.3:
                body[i] = rnd.randrange(256)
        out.append(bytes(body))
    return out


GARBAGE = 0xDEAD_BEEF_0BAD_F00D
REJECTED = [c for c in FALSE if meta(c)["verdict"] == "reject"]


@pytest.mark.parametrize("case", REJECTED, ids=ids(REJECTED))
def test_each_false_rejection(case, bpf_permitted):
    obj = read_object(str(case / "prog.o"))
    (program,) = obj.programs
    r = repair(obj, program, Options(timeout=30))  # the CLI default
    if case.name in NOT_REPAIRED:
        status, why = NOT_REPAIRED[case.name]
        assert r.status == status, (why, [x.tried for x in r.rounds])
        return
    assert r.status == "repaired", [(x.error.message, x.tried) for x in r.rounds]
    assert [x.strategy for x in r.rounds] == REPAIRED[case.name]
    assert r.proof is not None and r.proof.verdict == Verdict.EQUIVALENT
    # Z3 found no unsafe input (long loops: it could not follow every path, the proof did)
    assert r.safety == "safe" or r.safety.startswith("unknown: a path runs past")
    m = meta(case)
    kind = program.kind
    if kind is None or kind.prog_type not in TEST_RUN_PACKET_TYPES or "test" not in m:
        return
    for packet in generated_packets(bytes.fromhex(m["test"]["packet"])):
        # a register the original reads unwritten holds anything: the result must not
        # depend on it (undef_reg_and_condition)
        want = _interpreter_json(interpret(obj, program, packet, None, unwritten=0))
        garbage = interpret(obj, program, packet, None, unwritten=GARBAGE)
        assert _interpreter_json(garbage) == want, packet.hex()
        got = on_kernel(obj, r.program, packet, None)
        assert got["accepted"] and differences(want, got) == [], packet.hex()


@pytest.mark.parametrize("case", BUGS, ids=ids(BUGS))
def test_each_true_bug_is_refused(case, bpf_permitted):
    obj = read_object(str(case / "prog.o"))
    (program,) = obj.programs
    r = repair(obj, program, Options(timeout=20))
    assert r.status == "true_bug" and r.bug is not None and r.bug.confirmed
    assert r.bug.run["fault"].startswith("insn ")
    # the input really is unsafe: the original faults on it on the interpreter
    got = interpret(obj, program, r.bug.packet, None)
    assert got.fault is not None


def test_repair_cli_writes_an_accepted_object(bpf_permitted, tmp_path):
    src = ROOT / "false_rejections" / "hash_mod_bucket_counter" / "prog.o"
    out = tmp_path / "fixed.o"
    run = epass("repair", str(src), "-o", str(out), "--json")
    assert run.code == 0, run.err
    doc = run.json()
    check("repair", doc)
    (row,) = doc["programs"]
    check("repair.program", row)
    check("repair.error", row["first_error"])
    check("repair.proof", row["proof"])
    for rnd in row["rounds"]:
        check("repair.round", rnd)
    assert (doc["status"], doc["output"], row["status"], row["proof"]["verdict"]) == \
        ("repaired", str(out), "repaired", "equivalent")
    (rnd,) = row["rounds"]
    assert (rnd["error"]["insn"], rnd["error"]["class"], rnd["strategy"], rnd["verdict"]) == \
        (18, "unbounded-min-value", "bounds", "accepted")
    assert rnd["error"]["source"]["line"] == 46
    assert any("if r2 > 0x1d8 goto" in t for c in rnd["changes"] for _, t in c["after"])
    verified = epass("verify", str(out), "--json")
    assert verified.code == 0 and verified.json()["rejected"] == 0
    text = epass("repair", str(src))
    assert text.code == 0
    assert "strategy bounds: check the offset added at insn 18 is at most 472" in text.out
    assert "repaired in 1 round, proof EQUIVALENT, 24 -> 27 insns" in text.out


def test_repair_cli_refuses_a_true_bug(bpf_permitted, tmp_path):
    src = ROOT / "true_bugs" / "ttl_index_off_by_one" / "prog.o"
    out = tmp_path / "fixed.o"
    run = epass("repair", str(src), "-o", str(out), "--json")
    assert run.code == 1 and not out.exists()
    (row,) = run.json()["programs"]
    check("repair.bug", row["bug"])
    assert row["status"] == "true_bug" and row["bug"]["confirmed"]
    assert row["bug"]["fault"].startswith("insn 17: out-of-bounds read of 8 bytes")
    text = epass("repair", str(src))
    assert text.code == 1
    assert "true bug: on this input the original leaves its memory regions" in text.out


def test_repair_of_an_accepted_program_changes_nothing(bpf_permitted, tmp_path):
    src = ROOT / "false_rejections" / "ntohs_port_counter" / "prog.o"
    out = tmp_path / "same.o"
    run = epass("repair", str(src), "-o", str(out), "--json")
    assert run.code == 0
    (row,) = run.json()["programs"]
    assert (row["status"], row["rounds"], row["insns_before"]) == \
        ("already_accepted", [], row["insns_after"])
    assert read_object(str(out)).programs[0].insns == read_object(str(src)).programs[0].insns


@pytest.mark.parametrize(("args", "message"), [
    (["no_such.o"], "no_such.o"),
    (["corpus/false_rejections/hash_mod_bucket_counter/prog.bpf.c"], "prog.bpf.c"),
])
def test_repair_bad_input_is_one_line(args, message):
    run = epass("repair", *args)
    assert run.code == 2 and len(run.err.splitlines()) == 1 and message in run.err


def test_corpus_run_on_a_directory_of_two_cases(bpf_permitted, tmp_path):
    for kind, name in (("false_rejections", "payload_len_seen"),
                       ("true_bugs", "signed_delta_index")):
        shutil.copytree(ROOT / kind / name, tmp_path / kind / name)
    run = epass("corpus", "run", str(tmp_path), "--json")
    assert run.code == 0, run.err
    doc = run.json()
    check("corpus", doc)
    check("corpus.summary", doc["summary"])
    for c in doc["cases"]:
        check("corpus.case", c)
    assert [(c["case"], c["outcome"], c["proof"]) for c in doc["cases"]] == \
        [("payload_len_seen", "repaired", "equivalent"), ("signed_delta_index", "refused", None)]
    assert doc["summary"] == {"false_rejections": 1, "repaired": 1, "accepted_already": 0,
                              "true_bugs": 1, "refused": 1, "bugs_accepted": 0}
    text = epass("corpus", "run", str(tmp_path))
    assert text.out.splitlines()[-1].startswith(
        "false rejections: 1 of 1 rejected by this kernel repaired and proven EQUIVALENT (100%)")
