"""`epass verify` against the running kernel, cross-checked with bpftool.

For every program of every build: the same verdict as `bpftool prog
loadall`, and when both accept, the same number of xlated instructions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import progs
from cli import epass

pytestmark = [progs.skip_without_clang,
              pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")]

BUILDS = list(progs.builds())

# What the verifier says about each reject_* program built for v3: the rejected
# instruction, message, class, and the source line of that instruction.
REJECTIONS = {
    "reject_null_deref": (7, "R0 invalid mem access 'map_value_or_null'", "invalid-mem-access",
                          "*v += 1; /* BUG: v may be NULL */"),
    "reject_pkt_no_bounds": (1, "invalid access to packet, off=13 size=1, R1(id=0,off=13,r=0)",
                             "invalid-packet-access", "if (eth->h_proto != bpf_htons(ETH_P_IP))"),
    "reject_unbounded_index": (
        13, "R0 unbounded memory access, make sure to bounds check any such access",
        "unbounded-access",
        "s->slot[idx] += skb->len; /* BUG: idx is not checked against NSLOTS */"),
    "reject_loop_states": (8, "BPF program is too large. Processed 1000001 insn",
                           "program-too-large", "for (i = 0; i < SCAN; i++) {"),
}


def bpftool_loadall(obj: Path, pin_dir: Path) -> dict[str, int] | None:
    """Program name -> xlated instruction count, or None when bpftool does not load it."""
    proc = subprocess.run(["bpftool", "prog", "loadall", str(obj), str(pin_dir)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    counts = {}
    for pin in sorted(pin_dir.iterdir()):
        show = subprocess.run(["bpftool", "-j", "prog", "show", "pinned", str(pin)],
                              capture_output=True, text=True, check=True)
        counts[pin.name] = json.loads(show.stdout)["bytes_xlated"] // 8
    return counts


@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=[f"{n}-{c}" for n, c in BUILDS])
def test_verify_agrees_with_bpftool(built_progs, bpf_permitted, bpffs, name, cpu):
    entry = progs.get(name)
    obj = built_progs[name, cpu]
    run = epass("verify", str(obj), "--json")
    report = run.json()
    ours = {p["name"]: p for p in report["programs"]}
    assert list(ours) == [n for n, _ in entry.programs]
    assert run.code == (0 if all(p["accepted"] for p in ours.values()) else 1)

    theirs = bpftool_loadall(obj, bpffs)
    if entry.bpftool == "open-error":
        # libbpf 1.x refuses the object before any bpf() call (legacy `maps`); we load it
        assert theirs is None
        assert all(p["accepted"] for p in ours.values()) == (entry.verdict == "accept")
        return
    if "trampoline" in entry.requires and theirs is None:
        # this kernel cannot attach fentry at all: both are refused before verification
        assert not any(p["accepted"] for p in ours.values())
        assert all(p["errno"] == 1 for p in ours.values())
        return
    assert (theirs is not None) == (entry.verdict == "accept")
    if theirs is None:
        assert not any(p["accepted"] for p in ours.values())
        return
    for prog_name, xlated in theirs.items():
        assert ours[prog_name]["accepted"]
        assert ours[prog_name]["xlated_insn_count"] == xlated, prog_name


@pytest.mark.parametrize("name", sorted(REJECTIONS))
def test_rejection_reports_message_class_and_source(built_progs, bpf_permitted, name):
    insn, message, cls, source = REJECTIONS[name]
    run = epass("verify", str(built_progs[name, "v3"]), "--json")
    assert run.code == 1
    doc = run.json()
    assert (doc["accepted"], doc["rejected"], doc["log_level"]) == (0, 1, 1)
    (prog,) = doc["programs"]
    errno = 7 if cls == "program-too-large" else 13  # E2BIG, else EACCES
    assert (prog["accepted"], prog["errno"], prog["xlated_insn_count"]) == (False, errno, None)
    error = prog["error"]
    assert (error["insn"], error["message"], error["class"]) == (insn, message, cls)
    assert error["source"]["text"].strip() == source
    assert prog["verification_time_us"] > 0 and prog["stack_depth"]
    assert error["source"]["file"].endswith(f"{name}.bpf.c")


def test_human_output_of_an_accepted_and_a_rejected_program(built_progs, bpf_permitted):
    ok = epass("verify", str(built_progs["two_sections", "v3"]))
    assert ok.code == 0
    lines = ok.out.splitlines()
    assert [line.split(": accepted (")[0] for line in lines] == [
        f"{built_progs['two_sections', 'v3']}: xdp/xdp_count",
        f"{built_progs['two_sections', 'v3']}: tc/tc_count",
    ]
    bad = epass("verify", str(built_progs["reject_null_deref", "v3"]))
    assert bad.code == 1
    first, second = bad.out.splitlines()
    assert ": rejected at insn 7: " in first
    assert first.split("]")[0].endswith(
        "R0 invalid mem access 'map_value_or_null' [invalid-mem-access")
    assert second.strip().endswith("*v += 1; /* BUG: v may be NULL */")


def test_log_level_2_returns_the_whole_log(built_progs, bpf_permitted):
    run = epass("verify", str(built_progs["xdp_parse_drop", "v3"]), "--log-level", "2",
                "--log", "--json")
    (prog,) = run.json()["programs"]
    assert prog["accepted"]
    log = prog["log"]
    assert log.splitlines()[0].startswith("func#0 @0")
    assert f"processed {prog['processed_insns']} insns" in log
    # level 2 prints the state at every instruction it visits
    assert "0: R1=ctx() R10=fp0" in log


def test_accepted_program_statistics(built_progs, bpf_permitted):
    doc = epass("verify", str(built_progs["subprog_calls", "v3"]), "--json", "--log-level", "2"
                ).json()
    assert doc["log_level"] == 2
    (prog,) = doc["programs"]
    assert (prog["accepted"], prog["errno"], prog["error"]) == (True, 0, None)
    assert prog["insn_count"] == prog["xlated_insn_count"] == 53
    assert prog["verified_insns"] == prog["processed_insns"] > 0
    assert prog["verification_time_us"] > 0
    assert len(prog["stack_depth"]) == 5  # the program and its four subprograms


def test_log_level_0_keeps_message_and_statistics(built_progs, bpf_permitted):
    doc = epass("verify", str(built_progs["reject_null_deref", "v3"]), "--json",
                "--log-level", "0").json()
    (prog,) = doc["programs"]
    assert prog["error"]["message"] == "R0 invalid mem access 'map_value_or_null'"
    assert prog["processed_insns"] == 7 and prog["verification_time_us"] > 0


def test_section_selects_by_section_or_function_name(built_progs, bpf_permitted):
    obj = str(built_progs["same_section", "v3"])
    by_section = epass("verify", obj, "--section", "xdp", "--json").json()
    assert [p["name"] for p in by_section["programs"]] == ["xdp_pass_small", "xdp_drop_odd"]
    by_name = epass("verify", obj, "--section", "xdp_drop_odd", "--json").json()
    assert [p["name"] for p in by_name["programs"]] == ["xdp_drop_odd"]


def test_the_kernel_log_shows_source_lines_from_our_line_info(built_progs, bpf_permitted):
    doc = epass("verify", str(built_progs["reject_null_deref", "v3"]), "--log", "--json").json()
    log = doc["programs"][0]["log"]
    assert "; *v += 1; /* BUG: v may be NULL */ @ " in log
    assert "reject_null_deref.bpf.c:29" in log
