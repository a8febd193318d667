"""insn_counter: a loop past the limit aborts with the chosen code, in the kernel and on the
interpreter; shorter runs keep the original's result; every accepted test program stays
accepted and `epass prove` relates it to the original; `epass passes` lists it."""

from __future__ import annotations

import pytest
from test_builder import load_and_run
from test_json_schema import check

from epass.codegen import compile_module
from epass.errors import EpassError
from epass.ir import model as ir
from epass.ir.lift import lift_program
from epass.ir.text import parse_module
from epass.isa import LoadImm64
from epass.obj.reader import read_object
from epass.passes import parse_passes, run_passes
from epass.semantics.interp import Environment, run
from epass.uapi import ProgType

import progs
from cli import epass

# insn_loop's blocks: 6 + 5 + 4 instructions before the loop and 5 after it, where the
# count starts (20); 5 + 4 + 1 per trip. exact=1: the header sees 25, 35, 45, 55, ... on
# trips 1, 2, 3, 4, so limit 45 lets 3 trips run, not 4. By default the header adds the
# whole trip (10) at once: 30, 40, 50, ...: limit 45 lets 2 trips run
LIMIT, CODE = 45, 7


def packet(trips: int, byte: int = 200) -> bytes:
    """Byte 0 is the trip count (the program caps it at 6), the bytes after it are summed."""
    return bytes([trips]) + bytes([byte]) * 63


def transformed(path: str, spec: str) -> tuple:
    obj = read_object(path)
    (program,) = obj.programs
    module = lift_program(program, obj.maps)
    run_passes(module, parse_passes(spec), check=True)
    return program, compile_module(module)


def test_a_long_loop_aborts_a_short_one_keeps_its_result(built_progs, bpf_permitted):
    original, counted = transformed(str(built_progs["insn_loop", "v3"]),
                                    f"insn_counter(limit={LIMIT} code={CODE} exact=1)")
    assert len(counted.aborts) == 1  # one loop header, one check
    # trips: 0..3 run to the end (sum 600 or less: XDP_PASS); 4 and more pass the limit,
    # where the original drops (sum over 600)
    want = {0: (2, 2), 1: (2, 2), 3: (2, 2), 4: (1, CODE), 6: (1, CODE), 200: (1, CODE)}
    for trips, (plain, checked) in want.items():
        pkt = packet(trips)
        env = Environment(prog_type=ProgType.XDP, packet=pkt)
        assert run(original.insns, env).r0 == plain, trips
        assert run(counted.insns, Environment(prog_type=ProgType.XDP, packet=pkt)).r0 == \
            checked, trips
        assert load_and_run(original, {}, pkt) == plain, trips
        assert load_and_run(counted, {}, pkt) == checked, trips
    # under the default limit nothing aborts: the original's results
    _, loose = transformed(str(built_progs["insn_loop", "v3"]), "insn_counter")
    for trips in (0, 3, 6, 200):
        assert load_and_run(loose, {}, packet(trips)) == (1 if trips >= 4 else 2)


def test_by_default_the_header_adds_the_whole_trip(built_progs, bpf_permitted):
    original, counted = transformed(str(built_progs["insn_loop", "v3"]),
                                    f"insn_counter(limit={LIMIT} code={CODE})")
    _, exact = transformed(str(built_progs["insn_loop", "v3"]),
                           f"insn_counter(limit={LIMIT} code={CODE} exact=1)")
    # start and a byte store at entry, load/add/store/compare at the header, the abort
    assert (len(original.insns), len(counted.insns), len(exact.insns)) == (28, 36, 42)
    want = {0: (2, 2), 2: (2, 2), 3: (2, CODE), 6: (1, CODE)}
    for trips, (plain, checked) in want.items():
        pkt = packet(trips)
        assert run(counted.insns, Environment(prog_type=ProgType.XDP, packet=pkt)).r0 == \
            checked, trips
        assert load_and_run(counted, {}, pkt) == checked, trips
        assert load_and_run(original, {}, pkt) == plain, trips


def test_the_counter_is_per_frame_and_below_the_frame():
    module = parse_module("""
module @m section "xdp"
func @m args 1 {
bb0:
  %0:r1 = arg 1
  store u64 [fp - 16], 0
  %1:r0 = call @sub()
  ret %1
}
func @sub args 0 {
bb0:
  %0:r0 = mov 1
  jump bb1(%0)
bb1(%1:r0):
  %2:r0 = add %1, 1
  br jlt %2, 5, bb1(%2), bb2
bb2:
  ret %2
}
""")
    before = [str(i) for i in module.main.instructions()]
    run_passes(module, parse_passes("insn_counter(limit=4 code=9)"), check=True)
    main, sub = module.functions
    assert [str(i) for i in main.instructions()] == before  # no loop: nothing to count
    init, hide = sub.entry.insts[:2]  # below sub's own (empty) frame, from its loop-free code
    assert isinstance(init, ir.Store) and (init.off, init.operands[1]) == (-8, 3)
    assert isinstance(hide, ir.Store) and (hide.size, hide.off, hide.operands[1]) == (1, -1, 0)
    assert [i.operands[1] for i in sub.instructions() if isinstance(i, ir.Branch)
            and i.op.name == "GT"] == [4]
    program = compile_module(module)
    # sub: 3 outside the loop (mov, jump, ret) + 2 at the first header visit, 5 > 4: abort
    # on the first trip
    assert run(program.insns, Environment(prog_type=ProgType.XDP, packet=bytes(64))).r0 == 9


def test_a_function_without_loops_is_left_alone(built_progs):
    original, counted = transformed(str(built_progs["xdp_parse_drop", "v3"]), "insn_counter")
    assert counted.insns == original.insns and counted.aborts == []


def test_a_limit_past_32_bits_is_compared_with_an_lddw(built_progs):
    original, counted = transformed(str(built_progs["insn_loop", "v3"]),
                                    f"insn_counter(limit={2**40} code={CODE})")
    assert any(isinstance(i, LoadImm64) and i.imm == 2**40 for i in counted.insns)
    for trips in (3, 200):
        env = Environment(prog_type=ProgType.XDP, packet=packet(trips))
        assert run(counted.insns, env).r0 == (1 if trips >= 4 else 2)


def test_no_room_for_the_counter_is_an_error():
    module = parse_module("""
module @m section "xdp"
func @m args 1 {
bb0:
  store u64 [fp - 512], 0
  jump bb1
bb1:
  br jeq 0, 0, bb1, bb2
bb2:
  ret 0
}
""")
    with pytest.raises(EpassError) as e:
        run_passes(module, parse_passes("insn_counter"))
    assert e.value.line() == ("insn_counter: function m uses 512 bytes of stack; no room for "
                              "an 8-byte counter within 512")


ACCEPTED = [p.name for p in progs.PROGS if p.verdict == "accept" and
            progs.CPUS.index(p.min_cpu) <= 1]


@pytest.mark.parametrize("name", ACCEPTED)
def test_every_accepted_program_stays_accepted_and_proven(built_progs, bpf_permitted, name,
                                                          tmp_path):
    src = str(built_progs[name, "v3"])
    out = str(tmp_path / "out.o")
    compiled = epass("compile", src, "-o", out, "-p", "insn_counter", "--check")
    assert compiled.code == 0, compiled.err
    verified = epass("verify", out)
    if "trampoline" in progs.get(name).requires and "EPERM" in verified.out:
        pass  # this kernel refuses fentry loads before verifying (tests/progs/README.md)
    else:
        assert verified.code == 0, verified.out
    # loop_bounded's loops run 64 and 16 trips: unroll 2 reaches the bound sooner than 8
    unroll = "2" if name == "loop_bounded" else "8"
    proved = epass("prove", src, out, "--json", "--unroll", unroll)
    for p in proved.json()["programs"]:
        # insn_loop has a loop, but every path ends within the unroll bound
        assert p["verdict"] in ("equivalent", "refines"), (p["verdict"], p["reason"])
        assert all(not a["fires"] for a in p["aborts"])  # 1000000 is never reached
        if name == "loop_bounded":
            # past the bound: loop pairing, the counter slot the transformed program's own
            assert p["verdict"] == "refines" and "stack byte(s) of the transformed " \
                "program's own" in p["reason"], p["reason"]


def test_prove_shows_when_the_abort_fires(built_progs, tmp_path):
    src = str(built_progs["insn_loop", "v3"])
    out = str(tmp_path / "out.o")
    assert epass("compile", src, "-o", out, "-p", f"insn_counter(limit={LIMIT})").code == 0
    proved = epass("prove", src, out, "--json", "--unroll", "8")
    assert proved.code == 0, proved.out
    (p,) = proved.json()["programs"]
    assert p["verdict"] == "refines"
    (site,) = p["aborts"]
    assert site["fires"] is True and site["original_unsafe"] == "never"
    assert bytes.fromhex(site["packet"])[0] >= 3  # three trips or more (30, 40, 50 > 45)


# --- epass passes -------------------------------------------------------------------

DIV_BY_ZERO = {"name": "div_by_zero", "kind": "safety", "round": "final",
               "description": "abort when a DIV or MOD is about to divide by zero",
               "options": [{"name": "code", "default": 0,
                            "help": "the return value when the check fires"}]}
INSN_COUNTER = {"name": "insn_counter", "kind": "safety", "round": "final",
                "description": "count executed instructions per call frame and abort past "
                               "a limit",
                "options": [{"name": "limit", "default": 1000000,
                             "help": "abort once a frame has run more instructions"},
                            {"name": "code", "default": 0,
                             "help": "the return value when the limit is passed"},
                            {"name": "exact", "default": 0,
                             "help": "1: every block in a loop counts as it runs (slower); 0: "
                                     "each loop header adds the longest trip"}]}


def test_passes_json():
    listed = epass("passes", "--json")
    assert listed.code == 0
    rows = {p["name"]: p for p in listed.json()["passes"]}
    assert list(listed.json()) == ["passes"]
    assert rows["div_by_zero"] == DIV_BY_ZERO
    assert rows["insn_counter"] == INSN_COUNTER
    assert list(rows) == sorted(rows)
    check("passes", listed.json())  # exactly the keys docs/json.md documents
    for row in rows.values():
        check("passes.pass", row)
        for option in row["options"]:
            check("passes.option", option)


def test_passes_text():
    listed = epass("passes")
    assert listed.code == 0
    lines = listed.out.splitlines()
    width = max(len(p["name"]) for p in epass("passes", "--json").json()["passes"])
    assert lines[0].split() == ["name", "kind", "round", "description"]
    kind = len("optimization")  # the widest kind
    i = lines.index(f"{'div_by_zero'.ljust(width)}  {'safety'.ljust(kind)}  final  abort when "
                    "a DIV or MOD is about to divide by zero")
    assert lines[i + 1] == "    code=0: the return value when the check fires"
    i = lines.index(f"{'insn_counter'.ljust(width)}  {'safety'.ljust(kind)}  final  count "
                    "executed instructions per call frame and abort past a limit")
    assert lines[i + 1:i + 4] == ["    limit=1000000: abort once a frame has run more "
                                  "instructions",
                                  "    code=0: the return value when the limit is passed",
                                  "    exact=0: 1: every block in a loop counts as it runs "
                                  "(slower); 0: each loop header adds the longest trip"]


@pytest.mark.parametrize(("spec", "message"), [
    ("insn_counter(limit=x)", "-p: insn_counter(limit=...) needs an integer, got 'x'"),
    ("insn_counter(limt=5)", "-p: pass insn_counter has no option 'limt' "
                             "(options: limit, code, exact)"),
    ("insn_counter(limit=-1)", "insn_counter: limit must be between 0 and 2^63-1, got -1"),
])
def test_bad_options_are_one_line_and_exit_2(built_progs, tmp_path, spec, message):
    src = str(built_progs["insn_loop", "v3"])
    bad = epass("compile", src, "-o", str(tmp_path / "o.o"), "-p", spec)
    assert bad.code == 2
    assert bad.err.splitlines() == [bad.err.rstrip("\n")]
    assert message in bad.err
