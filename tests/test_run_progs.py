"""Every runnable test program on the interpreter and in the kernel, with generated packets."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epass.commands.run import run_report
from epass.obj.reader import read_object
from epass.semantics.packets import ipv4_checksum, sample_packet

import progs
from cli import epass

# every program BPF_PROG_TEST_RUN can run: XDP, tc and socket filters
RUNNABLE = [p for p in progs.PROGS if p.test_run]
CASES = [(p.name, name) for p in RUNNABLE for name, _ in p.programs]
EXAMPLES = int(os.environ.get("EPASS_RUN_EXAMPLES", "25"))


@st.composite
def packets(draw) -> bytes:
    """Ethernet frames: sometimes IPv4 with a valid header, sometimes anything."""
    if draw(st.booleans()):
        # the kernel refuses test runs with less than an Ethernet header
        return draw(st.binary(min_size=14, max_size=128))
    proto = draw(st.sampled_from([1, 6, 17, draw(st.integers(0, 255))]))
    ttl = draw(st.integers(0, 255))
    ihl = draw(st.sampled_from([5, 5, 5, 4, 6]))
    payload = draw(st.binary(min_size=0, max_size=64))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(payload), 1, 0, ttl,
                               proto, 0, draw(st.binary(min_size=4, max_size=4)),
                               draw(st.binary(min_size=4, max_size=4))))
    ip[10:12] = struct.pack("!H", ipv4_checksum(bytes(ip)))
    eth = draw(st.binary(min_size=12, max_size=12)) + b"\x08\x00"
    return eth + bytes(ip) + payload


@pytest.mark.parametrize(("name", "function"), CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_interpreter_agrees_with_the_kernel(built_progs, bpf_permitted, name, function):
    obj = read_object(str(built_progs[name, progs.get(name).min_cpu]))
    program = obj.program(function)

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(packets())
    def check(packet: bytes) -> None:
        report = run_report(obj, program, packet=packet, ctx=None, kernel=True)
        assert report["kernel"]["accepted"]
        assert report["interpreter"]["fault"] is None
        assert report["differences"] == [], (packet.hex(), report["differences"])

    check()


def test_the_sample_packet_gives_the_recorded_return_values(built_progs, bpf_permitted):
    checked = 0
    for entry in RUNNABLE:
        obj = read_object(str(built_progs[entry.name, entry.min_cpu]))
        for function, expected in entry.sample_retval:
            report = run_report(obj, obj.program(function), packet=None, ctx=None, kernel=True)
            r0 = report["interpreter"]["r0"] & 0xFFFFFFFF  # BPF_PROG_TEST_RUN reports 32 bits
            assert r0 == expected == report["kernel"]["r0"], function
            assert report["input"]["packet"] == sample_packet().hex()
            checked += 1
    assert checked >= 15


def test_cli_run_json_and_exit_codes(built_progs, bpf_permitted, tmp_path):
    packet = tmp_path / "pkt.bin"
    packet.write_bytes(sample_packet())
    run = epass("run", str(built_progs["xdp_rewrite", "v3"]), "--data-in", str(packet),
                "--kernel", "--json")
    assert run.code == 0, run.err
    doc = run.json()
    assert doc["same"] is True and doc["differences"] == []
    assert doc["interpreter"]["r0"] == doc["kernel"]["r0"] == progs.XDP_TX
    assert doc["interpreter"]["packet"] == doc["kernel"]["packet"] != sample_packet().hex()
    assert doc["input"]["packet_source"] == "file"


def test_cli_run_stub_and_refusals(built_progs, bpf_permitted, tmp_path):
    kprobe = str(built_progs["kprobe_openat2", "v3"])
    run = epass("run", kprobe)
    assert run.code == 2
    assert run.err == (f"epass: error: {kprobe}: section kprobe/do_sys_openat2: insn 2: helper "
                       "bpf_get_current_pid_tgid has no model; stub it by name\n")
    run = epass("run", kprobe, "--stub", "get_current_pid_tgid=0x100000064")
    assert run.code == 0
    assert run.out.splitlines()[1:] == ["  input: zeroed context",
                                        "  interpreter: r0 = 0, 41 insns executed"]
    run = epass("run", kprobe, "--stub", "nope=1")
    assert (run.code, run.err) == (2, "epass: error: --stub 'nope=1': expected HELPER=VALUE "
                                      "with a known helper name\n")
    short = tmp_path / "short.bin"
    short.write_bytes(b"\0" * 10)
    xdp = str(built_progs["xdp_parse_drop", "v3"])
    run = epass("run", xdp, "--data-in", str(short), "--kernel")
    assert (run.code, run.err) == (2, f"epass: error: {xdp}: section xdp: BPF_PROG_TEST_RUN "
                                      "refused the input: bpf(PROG_TEST_RUN) failed: Invalid "
                                      "argument (EINVAL) (packets must hold at least an "
                                      "Ethernet header, 14 bytes)\n")
    two = str(built_progs["two_sections", "v3"])
    run = epass("run", two)
    assert run.code == 2
    assert "several programs (xdp/xdp_count, tc/tc_count); choose one with --section" in run.err
