"""runtime_validation: which facts it checks and where, a check firing on a simulated
verifier bug (a falsified VI map) in the kernel and the interpreter, the original's results
where the facts hold, and every accepted test program accepted and proven with no abort
that can fire."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from test_builder import load_and_run

from epass.codegen import compile_module
from epass.commands.compile import verifier_facts
from epass.commands.run import interpreter_inputs
from epass.errors import EpassError
from epass.ir import model as ir
from epass.ir.lift import lift_program
from epass.ir.text import parse_module
from epass.isa import Call, PseudoKind, encode, slot_indices
from epass.isa.opcodes import JmpOp
from epass.kernel.syscall import close, map_create, map_update_elem, prog_load
from epass.kernel.vimap import VIMap, build_vimap
from epass.obj.reader import read_object
from epass.obj.writer import write_object
from epass.passes import parse_passes, run_passes
from epass.passes.runtime_validation import checks
from epass.semantics.interp import Environment, run
from epass.uapi import MapType, ProgType

import progs
from cli import epass

CODE = 42
U64_MAX = (1 << 64) - 1
# rv_maybe_null's slots (tests/progs/rv_maybe_null.bpf.c): 14 lookup, 15 r6 = r0,
# 19 r3 = r6, 20 probe_read_kernel(.., r3), 22 if r6 == 0, 26 r6 += r1, 27 load [r6 + 8]
PROBE, ADD, LOAD = 20, 26, 27
# the map: key k holds head = 10k and slots[i] = 10i, so the program returns XDP_TX when
# data[1] & 7 == data[0] (slot equals head), XDP_PASS otherwise, XDP_DROP for keys past 3
CONTENTS = {struct.pack("<I", k): struct.pack("<9Q", 10 * k, *(10 * i for i in range(8)))
            for k in range(4)}


def _packet(key: int, index: int) -> bytes:
    return bytes([key, index]) + bytes(62)


NULL = _packet(7, 0)  # key 7: past the array, the lookup gives NULL


def _setup(built_progs, name: str = "rv_maybe_null"):
    obj = read_object(str(built_progs[name, "v3"]))
    (program,) = obj.programs
    return obj, program, verifier_facts(obj, program)


def _transform(obj, program, vimap: VIMap, spec: str = f"runtime_validation(code={CODE})"):
    module = lift_program(program, obj.maps)
    module.vimap = vimap
    found = [(c.inst.origin, c.fails) for f in module.functions for c in checks(module, f)]
    run_passes(module, parse_passes(spec), check=True)
    return module, found, compile_module(module)


def falsify(vimap: VIMap, insn: int, regno: int, **fields: object) -> VIMap:
    """A VI map that says something else about one register before one instruction: what a
    verifier with an inference bug would have believed there."""
    visits = []
    for v in vimap.visits:
        if v.insn == insn:
            top = v.state.frames[-1]
            regs = dict(top.regs)
            regs[regno] = replace(regs[regno], **fields)
            frames = v.state.frames[:-1] + (replace(top, regs=regs),)
            v = replace(v, state=replace(v.state, frames=frames))
        visits.append(v)
    return replace(vimap, visits=tuple(visits))


def _interpret(obj, program, packet: bytes) -> int | None:
    """The interpreter's r0, the map filled as in the kernel runs."""
    insns, (spec,) = interpreter_inputs(obj, program)
    env = Environment(prog_type=ProgType.XDP, packet=packet,
                      maps=[replace(spec, contents=dict(CONTENTS))])
    return run(insns, env).r0


def _results(obj, program, packets: list[bytes]) -> list[tuple[int | str, int | None]]:
    """(BPF_PROG_TEST_RUN's r0, the interpreter's r0) on each packet, the map filled."""
    fd = map_create(MapType.ARRAY, 4, 72, 4, name="rv_recs")
    try:
        for key, value in CONTENTS.items():
            map_update_elem(fd, key, value)
        return [(load_and_run(program, {"rv_recs": fd}, pkt), _interpret(obj, program, pkt))
                for pkt in packets]
    finally:
        close(fd)


PACKETS = [_packet(0, 0), _packet(2, 2), _packet(2, 5), _packet(3, 4), _packet(1, 9), NULL]
ORIGINAL = [3, 3, 2, 2, 3, 1]  # TX, TX, PASS, PASS, TX (9 & 7 == 1), DROP (NULL)


def test_real_facts_hold_the_checks_never_fire(built_progs, bpf_permitted):
    obj, program, vimap = _setup(built_progs)
    _, found, checked = _transform(obj, program, vimap)
    # the variable offset (data[1] & 7) << 3 is in [0, 56]; the load goes through the
    # lookup's result. Not the probe_read: the verifier had r3 maybe-NULL there
    assert found == [(ADD, ((JmpOp.GT, 56),)), (LOAD, ((JmpOp.EQ, 0),))]
    assert len(checked.aborts) == 2 and len(checked.insns) == len(program.insns) + 7
    assert _results(obj, program, PACKETS) == [(r, r) for r in ORIGINAL]
    assert _results(obj, checked, PACKETS) == [(r, r) for r in ORIGINAL]


def test_a_simulated_null_inference_bug_is_caught(built_progs, bpf_permitted, tmp_path):
    """CVE-2022-23222's shape: the verifier takes the copy in r3 as non-NULL before the
    NULL check. With that (false) fact the check before the call fires on a missing key."""
    obj, program, vimap = _setup(built_progs)
    (real,) = vimap.reg_at(PROBE, 3)
    assert real.type == "map_value_or_null"
    buggy = falsify(vimap, PROBE, 3, type="map_value", id=0)
    _, found, checked = _transform(obj, program, buggy)
    assert found == [(PROBE, ((JmpOp.EQ, 0),)), (ADD, ((JmpOp.GT, 56),))]
    # the value compared is the lookup's result (not the copy in r3); the later load
    # through it needs no second check: this one dominates it
    module = lift_program(program, obj.maps)
    module.vimap = buggy
    compared = checks(module, module.main)[0].value.definition
    assert isinstance(compared, ir.Call) and compared.origin == 14
    want = [CODE if pkt == NULL else r for pkt, r in zip(PACKETS, ORIGINAL, strict=True)]
    assert _results(obj, checked, PACKETS) == [(r, r) for r in want]
    # epass prove: the abort fires (only on a NULL lookup), where the original was safe
    proved = _prove(obj, program, checked, tmp_path)
    assert (proved["verdict"], proved["property"]) == ("refines", "all")
    fires = [(a["fires"], a["original_unsafe"]) for a in proved["aborts"]]
    assert sorted(fires) == [(False, "never"), (True, "never")]
    (site,) = [a for a in proved["aborts"] if a["fires"]]
    assert bytes.fromhex(site["packet"])[0] >= 4  # a key past the array: NULL


def test_a_simulated_range_inference_bug_is_caught(built_progs, bpf_permitted, tmp_path):
    """The verifier believes the offset is at most 24 (slots 0-3): 32-56 abort."""
    obj, program, vimap = _setup(built_progs)
    (real,) = vimap.reg_at(ADD, 1)
    assert (real.umin, real.umax, real.smin, real.smax) == (0, 56, 0, 56)
    buggy = falsify(vimap, ADD, 1, umax=24, smax=24)
    _, found, checked = _transform(obj, program, buggy)
    assert found == [(ADD, ((JmpOp.GT, 24),)), (LOAD, ((JmpOp.EQ, 0),))]
    want = [CODE if pkt[0] < 4 and pkt[1] & 7 >= 4 else r
            for pkt, r in zip(PACKETS, ORIGINAL, strict=True)]
    assert want == [3, 3, CODE, CODE, 3, 1]
    assert _results(obj, checked, PACKETS) == [(r, r) for r in want]
    proved = _prove(obj, program, checked, tmp_path)
    assert proved["verdict"] == "refines"
    (site,) = [a for a in proved["aborts"] if a["fires"]]
    assert bytes.fromhex(site["packet"])[1] & 7 >= 4 and site["original_unsafe"] == "never"


def _prove(obj, program, checked, tmp_path) -> dict:
    out = tmp_path / "out.o"
    out.write_bytes(write_object(obj, {program.name: checked}))
    proved = epass("prove", obj.path, str(out), "--json")
    assert proved.code == 0, proved.out
    (p,) = proved.json()["programs"]
    return p


@pytest.mark.parametrize(("fields", "fails"), [
    # crosses 2^63 unsigned, so only the signed bounds say something; 2^40 needs an lddw
    ({"umin": 0, "umax": U64_MAX, "smin": -8, "smax": 1 << 40},
     ((JmpOp.SGT, 1 << 40), (JmpOp.SLT, -8))),
    ({"umin": 8, "umax": 1 << 32, "smin": 8, "smax": 1 << 32},
     ((JmpOp.GT, 1 << 32), (JmpOp.LT, 8))),
    ({"umin": 0, "umax": U64_MAX, "smin": -(1 << 63), "smax": (1 << 63) - 1}, None),
])
def test_range_facts_become_the_right_comparisons(built_progs, bpf_permitted, fields, fails):
    obj, program, vimap = _setup(built_progs)
    module, found, checked = _transform(obj, program, falsify(vimap, ADD, 1, **fields))
    if fails is None:  # the full range is no fact: nothing to check
        assert found == [(LOAD, ((JmpOp.EQ, 0),))]
        return
    assert found[0] == (ADD, fails)
    consts = [i.value for i in module.main.instructions() if isinstance(i, ir.LoadImm)]
    assert consts == [b for _, b in fails if not -2**31 <= b < 2**31]  # the big ones
    # in range on the real program: the interpreter gives the original's results
    for pkt, want in zip(PACKETS, ORIGINAL, strict=True):
        offset = (pkt[1] & 7) * 8 if pkt[0] < 4 else None
        aborts = offset is not None and offset < 8 and fails[-1] == (JmpOp.LT, 8)
        assert _interpret(obj, checked, pkt) == (CODE if aborts else want)


# a helper size from the packet: bpf_probe_read_kernel copies data[0] & 15 bytes of the
# packet into a 16-byte stack buffer and returns the first byte copied (0 when none)
SIZED = """
module @sized section "xdp"
func @sized args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0 + 4]
  %2:r6 = load u32 [%0]
  %3:r1 = mov %2
  %4:r1 = add %3, 2
  br jgt %4, %1, bb2, bb1
bb1:
  %5:r2 = load u8 [%2]
  %6:r2 = and %5, 15
  store u64 [fp - 8], 0
  store u64 [fp - 16], 0
  %7:r1 = mov fp
  %8:r1 = add %7, -16
  %9:r3 = mov %2
  %10:r0 = call bpf_probe_read_kernel(%8, %6, %9)
  %11:r0 = load u8 [fp - 16]
  ret %11
bb2:
  ret 2
}
"""


def _kernel_facts(program, fds: dict[str, int]) -> VIMap:
    """The VI map of a compiled program, from a level 2 load with its maps as fds."""
    insns, slots = list(program.insns), slot_indices(program.insns)
    for ref in program.map_refs:
        i = slots.index(ref.insn)
        insns[i] = replace(insns[i], imm=fds[ref.map], kind=PseudoKind.MAP_FD)
    loaded = prog_load(ProgType.XDP, encode(insns), license="GPL", log_level=2)
    assert loaded.ok, loaded.log
    close(loaded.fd)
    return build_vimap(loaded.log)


def test_a_helper_size_is_checked_against_its_bounds(bpf_permitted):
    program = compile_module(parse_module(SIZED))
    vimap = _kernel_facts(program, {})
    (call,) = [i for i, insn in enumerate(program.insns) if isinstance(insn, Call)]
    module = lift_program(program)
    module.vimap = vimap
    assert [(c.inst.origin, c.fails) for c in checks(module, module.main)] == \
        [(call, ((JmpOp.GT, 15),))]
    # a verifier that believed the size at most 7 (half the buffer): 8-15 bytes abort
    module.vimap = falsify(vimap, call, 2, umax=7, smax=7, var_off_mask=7)
    run_passes(module, parse_passes(f"runtime_validation(code={CODE})"), check=True)
    checked = compile_module(module)
    for first, want in ((0, 0), (5, 5), (7, 7), (8, CODE), (0x1c, CODE), (0x23, 0x23)):
        pkt = bytes([first]) + bytes(63)
        env = Environment(prog_type=ProgType.XDP, packet=pkt)
        assert run(program.insns, env).r0 == (first if first & 15 else 0)
        assert run(checked.insns, Environment(prog_type=ProgType.XDP, packet=pkt)).r0 == want
        assert load_and_run(checked, {}, pkt) == want


# a pointer walking a map value in a loop: p = v, v + 8, v + 16, v + 24 (a join of the
# lookup's result and p + 8); the sum of the four words is returned
WALK = """
module @walk section "xdp"
map @vals type 2 key 4 value 32 max 1
func @walk args 1 {
bb0:
  %0:r1 = arg 1
  store u32 [fp - 4], 0
  %1:r2 = mov fp
  %2:r2 = add %1, -4
  %3:r1 = map @vals
  %4:r0 = call bpf_map_lookup_elem(%3, %2)
  br jeq %4, 0, bb3, bb1
bb1:
  %5:r6 = mov %4
  %6:r7 = mov 0
  %7:r8 = mov 0
  jump bb2(%5, %6, %7)
bb2(%8:r6, %9:r7, %10:r8):
  %11:r1 = load u64 [%8]
  %12:r7 = add %9, %11
  %13:r6 = add %8, 8
  %14:r8 = add %10, 1
  br jlt %14, 4, bb2(%13, %12, %14), bb4
bb4:
  ret %12
bb3:
  ret 0
}
"""


def test_a_pointer_walked_in_a_loop_is_checked_at_its_root(bpf_permitted):
    module = parse_module(WALK)
    program = compile_module(module)
    fd = map_create(MapType.ARRAY, 4, 32, 1, name="vals")
    try:
        map_update_elem(fd, bytes(4), struct.pack("<4Q", 1, 20, 300, 4000))
        lifted = lift_program(program, module.maps)
        lifted.vimap = _kernel_facts(program, {"vals": fd})
        (load,) = [i for i in lifted.main.instructions() if isinstance(i, ir.Load)]
        assert len(lifted.vimap.states(load.origin)) == 4  # one visit per trip
        (check,) = checks(lifted, lifted.main)
        # the loop's pointer is the lookup's result plus 8 per trip: the result is compared
        assert check.inst is load and isinstance(check.value.definition, ir.Call)
        run_passes(lifted, parse_passes(f"runtime_validation(code={CODE})"), check=True)
        checked = compile_module(lifted)
        assert len(checked.aborts) == 1
        assert load_and_run(checked, {"vals": fd}, bytes(64)) == 4321
    finally:
        close(fd)


def test_no_fact_where_the_visits_disagree(built_progs):
    obj, program, vimap = _setup(built_progs)
    # one more visit of the load with r6 as a scalar: no longer a fact about a pointer
    (visit,) = vimap.visits_of(LOAD)
    top = visit.state.frames[-1]
    odd = replace(visit, state=replace(visit.state, frames=(replace(
        top, regs={**top.regs, 6: replace(top.regs[6], type="scalar")}),)))
    _, found, _ = _transform(obj, program, replace(vimap, visits=vimap.visits + (odd,)))
    assert found == [(ADD, ((JmpOp.GT, 56),))]
    # a visit without the register: no fact either
    lacking = replace(visit, state=replace(visit.state, frames=(replace(
        top, regs={k: r for k, r in top.regs.items() if k != 1}),)))
    _, found, _ = _transform(obj, program, replace(vimap, visits=vimap.visits + (
        replace(lacking, insn=ADD),)))
    assert found == [(LOAD, ((JmpOp.EQ, 0),))]


def test_joins_of_lookups_and_lookups_the_verifier_proved_non_null(built_progs):
    obj = read_object(str(built_progs["maps_btf", "v3"]))
    (program,) = obj.programs
    module = lift_program(program, obj.maps)
    module.vimap = verifier_facts(obj, program)
    found = [(c.inst.origin, c.value.is_param, c.fails) for c in checks(module, module.main)]
    null = ((JmpOp.EQ, 0),)
    # st: the join of two lookups, both NULL-checked before it: the join itself; tot and
    # cfg: array lookups with key 0, non-NULL to the verifier from the start; ev (ringbuf)
    # on each of its two paths, once (the store dominates the submit)
    assert found == [(45, True, null), (56, False, null), (66, False, null),
                     (80, False, null), (83, False, null)]
    assert [module.vimap.reg_at(56, r)[0].type for r in (0,)] == ["map_value"]


def test_without_a_vi_map_or_with_a_bad_code_it_is_one_error(built_progs):
    obj = read_object(str(built_progs["rv_maybe_null", "v3"]))
    module = lift_program(obj.programs[0], obj.maps)
    with pytest.raises(EpassError) as e:
        run_passes(module, parse_passes("runtime_validation"))
    assert e.value.line() == ("runtime_validation needs the verifier's facts: no VI map is "
                              "attached (epass compile and epass load attach one)")
    module.vimap = VIMap((), [], {}, {})
    with pytest.raises(EpassError) as e:
        run_passes(module, parse_passes("runtime_validation(code=0x80000000)"))
    assert e.value.line() == "runtime_validation: code must fit in 32 signed bits, got " \
        "2147483648"


def test_passes_lists_it():
    rows = {p["name"]: p for p in epass("passes", "--json").json()["passes"]}
    assert rows["runtime_validation"] == {
        "name": "runtime_validation", "kind": "safety", "round": "final",
        "description": "check the verifier's non-NULL and range facts at run time; abort if "
                       "false",
        "options": [{"name": "code", "default": 0,
                     "help": "the return value when a check fires"}]}


# instructions before -> after, per program (v3 builds): the growth the docs page reports.
# Programs other passes added to the table are held to the proofs only
GROWTH = {
    "xdp_map_counter": [(31, 34)], "global_data": [(58, 61)], "loop_bounded": [(45, 51)],
    "insn_loop": [(28, 31)], "atomics": [(77, 80)], "maps_btf": [(91, 114)],
    "two_sections": [(17, 20), (15, 18)], "tc_classifier": [(25, 28)],
    "legacy_map_def": [(32, 35)], "kprobe_openat2": [(44, 47)],
    "tracepoint_openat": [(32, 39)], "raw_tp_sys_enter": [(14, 17)],
    "tp_btf_sys_enter": [(26, 29)], "rv_maybe_null": [(33, 40)],
}
UNCHANGED = {"xdp_parse_drop", "xdp_rewrite", "subprog_calls", "bpf_loop_cb", "same_section",
             "uninit_read", "tc_skb_fields", "socket_len", "socket_ld_abs"}
ACCEPTED = [p.name for p in progs.PROGS if p.verdict == "accept" and
            progs.CPUS.index(p.min_cpu) <= 1]


@pytest.mark.parametrize("name", ACCEPTED)
def test_every_accepted_program_stays_accepted_and_no_check_fires(built_progs, bpf_permitted,
                                                                  name, tmp_path):
    src = str(built_progs[name, "v3"])
    out = str(tmp_path / "out.o")
    compiled = epass("compile", src, "-o", out, "-p", "runtime_validation", "--check", "--json")
    if "trampoline" in progs.get(name).requires and "EPERM" in compiled.err:
        pytest.skip("this kernel refuses fentry loads with EPERM (tests/progs/README.md)")
    assert compiled.code == 0, compiled.err
    sizes = [(p["insns_before"], p["insns_after"]) for p in compiled.json()["programs"]]
    if name in GROWTH:
        assert sizes == GROWTH[name]
    elif name in UNCHANGED:  # no pointer from a lookup, no variable offset: the same code
        assert all(before == after for before, after in sizes)
    verified = epass("verify", out, "--json")
    assert verified.code == 0 and verified.json()["rejected"] == 0, verified.out
    proved = epass("prove", src, out, "--json", "--unroll", "8")
    assert proved.code == 0, proved.out
    for p, (before, after) in zip(proved.json()["programs"], sizes, strict=True):
        if before == after:
            assert (p["verdict"], p["property"]) == ("equivalent", "syntax")
        elif name == "loop_bounded":  # loop pairing proves it, but says nothing per site
            assert (p["verdict"], p["aborts"]) == ("refines", [])
        else:  # the facts are real: no abort can fire
            assert (p["verdict"], p["property"]) == ("equivalent", "all"), p["reason"]
            assert p["aborts"] and all(not a["fires"] for a in p["aborts"])
