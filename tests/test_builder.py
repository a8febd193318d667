"""The pass writer's API on real programs: guards that abort, the ringbuf reservations an
abort releases, splitting blocks, and the div_by_zero pass end to end in the kernel."""

from __future__ import annotations

from dataclasses import replace

import pytest
from irutil import DIVIDE

from epass.codegen import compile_module
from epass.errors import EpassError
from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.ir.check import check_module
from epass.ir.resources import held_reservations
from epass.ir.text import format_module, parse_module
from epass.isa import LoadImm64, PseudoKind, encode
from epass.isa.opcodes import AluOp, JmpOp
from epass.kernel.syscall import close, map_create, prog_load, prog_test_run
from epass.obj.model import Program
from epass.passes import parse_passes, run_passes
from epass.semantics.interp import Environment, run
from epass.uapi import MapType, ProgType

RINGBUF = """
module @rb section "xdp"
map @events type 27 key 0 value 0 max 4096
func @rb args 1 {
bb0:
  %0:r1 = arg 1
  %1:r1 = map @events
  %2:r0 = call bpf_ringbuf_reserve(%1, 8, 0)
  br jeq %2, 0, bb2, bb1
bb1:
  %3:r2 = load u32 [%0]
  %4:r3 = load u32 [%0 + 4]
  %5:r3 = sub %4, %3
  store u64 [%2], %5
  %6:r0 = call bpf_ringbuf_submit(%2, 0)
  ret 2
bb2:
  ret 1
}
"""

def load_and_run(program: Program, maps: dict[str, int], packet: bytes) -> int | str:
    """Load into the kernel with map references turned into fds; run once (or the log)."""
    insns = list(program.insns)
    slots = []
    pos = 0
    for insn in insns:
        slots.append(pos)
        pos += 2 if isinstance(insn, LoadImm64) else 1
    for ref in program.map_refs:
        i = slots.index(ref.insn)
        insns[i] = replace(insns[i], imm=maps[ref.map], kind=PseudoKind.MAP_FD)
    loaded = prog_load(ProgType.XDP, encode(insns), license="GPL", log_level=1)
    if not loaded.ok:
        return loaded.log
    try:
        return prog_test_run(loaded.fd, data_in=packet, data_size_out=len(packet)).retval
    finally:
        close(loaded.fd)


def test_an_abort_releases_the_reservation_it_holds(bpf_permitted):
    module = parse_module(RINGBUF)
    f = module.main
    store = next(i for i in f.instructions() if isinstance(i, ir.Store))
    length = store.operands[1]
    held = held_reservations(f)
    assert held[id(store)] == [f.entry.insts[2].result]
    assert held[id(f.entry.insts[0])] == []
    Builder.before(store).guard(JmpOp.GT, length, 100, code=7)
    assert check_module(module) == []
    text = format_module(module)
    assert "call bpf_ringbuf_discard(%2, 0)" in text
    fd = map_create(MapType.RINGBUF, 0, 0, 4096, name="events")
    try:
        program = compile_module(module)
        assert load_and_run(program, {"events": fd}, bytes(64)) == 2
        assert load_and_run(program, {"events": fd}, bytes(200)) == 7
        # without the release the verifier refuses the aborting path
        leaky = parse_module(RINGBUF)
        s = next(i for i in leaky.main.instructions() if isinstance(i, ir.Store))
        b = Builder.before(s)
        rest = b.split()
        abort = leaky.main.new_block()
        Builder(abort, 0).ret(7)
        old = leaky.main.blocks[leaky.main.blocks.index(rest) - 1]
        old.terminator.erase()
        Builder.at_end(old).branch(JmpOp.GT, s.operands[1], 100, abort, rest)
        log = load_and_run(compile_module(leaky), {"events": fd}, bytes(64))
        assert isinstance(log, str) and "Unreleased reference" in log
    finally:
        close(fd)


def test_div_by_zero_aborts_only_on_a_zero_divisor(bpf_permitted):
    module = parse_module(DIVIDE)
    run_passes(module, parse_passes("div_by_zero(code=42)"), check=True)
    branches = [i for i in module.main.instructions() if isinstance(i, ir.Branch)]
    assert [(b.op, b.bits, b.operands[1]) for b in branches[1:]] == \
        [(JmpOp.EQ, 32, 0), (JmpOp.EQ, 64, 0)]
    program = compile_module(module)
    cases = {bytes([7, 3]) + bytes(60): (100 // 7) % 3, bytes([0, 3]) + bytes(60): 42,
             bytes([7, 0]) + bytes(60): 42, bytes([1, 1]) + bytes(60): 0}
    for packet, want in cases.items():
        got = run(program.insns, Environment(prog_type=ProgType.XDP, packet=packet))
        assert got.r0 == want, packet[:2].hex()
        assert load_and_run(program, {}, packet) == want, packet[:2].hex()
    # the original divides by zero the eBPF way: 100 / 0 = 0, no abort
    plain = compile_module(parse_module(DIVIDE))
    assert load_and_run(plain, {}, bytes([0, 3]) + bytes(60)) == 0


def test_builder_inserts_in_program_order_and_splits():
    module = parse_module(DIVIDE)
    f = module.main
    mod = [i for i in f.instructions() if isinstance(i, ir.Alu) and i.op == AluOp.MOD][0]
    b = Builder.before(mod)
    one = b.mov(1)
    two = b.alu(AluOp.ADD, one, 1)
    block = mod.block
    assert block.insts.index(two.definition) == block.insts.index(mod) - 1
    rest = b.split()
    assert rest.insts[0] is mod and f.blocks[f.blocks.index(rest) - 1].terminator.edges[0]\
        .target is rest
    b.stack_store(-8, two)
    loaded = b.stack_load(-8)
    mod.set_operand(1, loaded)
    assert check_module(module) == []
    assert f.frame_size() == 8
    program = compile_module(module)
    got = run(program.insns, Environment(prog_type=ProgType.XDP, packet=bytes([7, 3]) +
                                         bytes(60)))
    assert got.r0 == (100 // 7) % 2


@pytest.mark.parametrize(("spec", "message"), [
    ("nope", "-p: unknown pass 'nope' (passes: asan, const_fold, dce, div_by_zero, "
             "helper_validation, insn_counter, msan, rce, runtime_validation, zext)"),
    ("div_by_zero(size=3)", "-p: pass div_by_zero has no option 'size' (options: code)"),
    ("div_by_zero(code=x)", "-p: div_by_zero(code=...) needs an integer, got 'x'"),
    ("div_by_zero(", "-p 'div_by_zero(': cannot read the pass list at 'div_by_zero(' "
                     "(expected name or name(key=value ...), comma-separated)"),
])
def test_pass_list_errors(spec, message):
    with pytest.raises(EpassError) as e:
        parse_passes(spec)
    assert e.value.line() == message


def test_pass_list_syntax():
    uses = parse_passes("div_by_zero, div_by_zero(code=0x10)")
    assert [str(u) for u in uses] == ["div_by_zero(code=0)", "div_by_zero(code=16)"]
    assert parse_passes("") == []


def test_passes_see_the_verifiers_states(built_progs, bpf_permitted):
    from epass.ir.lift import lift_program
    from epass.kernel.loader import open_object
    from epass.kernel.vimap import build_vimap
    from epass.obj.reader import read_object

    obj = read_object(str(built_progs["xdp_parse_drop", "v3"]))
    (program,) = obj.programs
    with open_object(obj) as loaded:
        load = loaded.load_program(program, log_level=2)
    module = lift_program(program, obj.maps)
    first_load = next(i for i in module.main.instructions() if isinstance(i, ir.Load))
    assert module.verifier_states(first_load) == []  # no VI map attached yet
    module.vimap = build_vimap(load.log)
    (state,) = module.verifier_states(first_load)
    assert state.regs[1].type == "ctx"
    pkt = next(i for i in module.main.instructions() if isinstance(i, ir.Load) and
               i.size == 1)
    assert {s.regs[pkt.base.reg].type for s in module.verifier_states(pkt)} == {"pkt"}
    inserted = Builder.before(pkt).mov(1).definition
    assert module.verifier_states(inserted) == []  # a pass's own code has no states
