"""`epass load`: passes, the kernel's verdict on the result, pinning; bad input in one line."""

from __future__ import annotations

import os
import uuid

import pytest
from test_json_schema import check

from epass.kernel import syscall

from cli import epass

BPFFS = "/sys/fs/bpf"
PACKET = bytes(range(64))


def _bpffs() -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1:3] == [BPFFS, "bpf"] for line in f)


@pytest.mark.skipif(not _bpffs(), reason=f"no bpf filesystem mounted at {BPFFS} to pin on")
def test_load_transforms_verifies_and_pins(built_progs, bpf_permitted, tmp_path):
    src = str(built_progs["insn_loop", "v3"])
    pin = os.path.join(BPFFS, f"epass-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(pin)
    try:
        run = epass("load", src, "-p", "insn_counter(limit=100)", "--pin", pin, "--json")
        assert run.code == 0, run.err
        doc = run.json()
        check("load", doc)
        (row,) = doc["programs"]
        check("load.program", row)
        check("verify.result", row["verdict"], optional=frozenset({"log"}))
        assert (doc["passes"], doc["accepted"], doc["rejected"]) == \
            (["insn_counter(limit=100 code=0 exact=0)"], 1, 0)
        assert row["insns_after"] > row["insns_before"] and row["aborts"] == 1
        assert row["pinned"] == os.path.join(pin, "insn_loop")
        # the pinned program runs, with the original's result (the limit is not reached)
        packet_file = tmp_path / "packet.bin"
        packet_file.write_bytes(PACKET)
        want = epass("run", src, "--data-in", str(packet_file), "--json").json()[
            "interpreter"]["r0"]
        fd = syscall.obj_get(row["pinned"])
        try:
            result = syscall.prog_test_run(fd, data_in=PACKET, data_size_out=4096)
        finally:
            syscall.close(fd)
        assert result.retval == want
        again = epass("load", src, "--pin", pin)  # the name is taken now
        assert again.code == 2 and again.err.startswith("epass: error: ")
        assert "cannot pin insn_loop at" in again.err and len(again.err.splitlines()) == 1
    finally:
        for name in os.listdir(pin):
            os.unlink(os.path.join(pin, name))
        os.rmdir(pin)


def test_load_text_and_a_rejected_program(built_progs, bpf_permitted):
    src = str(built_progs["xdp_rewrite", "v3"])
    run = epass("load", src, "-p", "div_by_zero")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0] == f"{src}: xdp/xdp_rewrite: transformed: {_slots(built_progs)} -> " \
        f"{_slots(built_progs)} insns (div_by_zero(code=0); 0 abort site(s))"
    assert lines[1].startswith(f"{src}: xdp/xdp_rewrite: verified: accepted (")
    assert lines[2] == f"{src}: xdp/xdp_rewrite: loaded: released (no --pin)"
    bad = str(built_progs["reject_null_deref", "v3"])
    run = epass("load", bad, "--json")
    assert run.code == 1
    (row,) = run.json()["programs"]
    assert row["verdict"]["accepted"] is False and row["pinned"] is None
    assert "invalid mem access" in row["verdict"]["error"]["message"]


def test_load_bad_pin_directory(built_progs, bpf_permitted):
    src = str(built_progs["xdp_rewrite", "v3"])
    run = epass("load", src, "--pin", "/nonexistent/epass")
    assert (run.code, run.err) == (2, "epass: error: --pin /nonexistent/epass: no such "
                                      "directory (a directory on a bpf filesystem, such as "
                                      "/sys/fs/bpf)\n")


def _slots(built_progs) -> int:
    from epass.obj.reader import read_object

    (p,) = read_object(str(built_progs["xdp_rewrite", "v3"])).programs
    return sum(2 if i.__class__.__name__ == "LoadImm64" else 1 for i in p.insns)
