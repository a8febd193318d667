"""The loops and stack_depth strategies on their corpus cases: repaired in one round,
proven EQUIVALENT, accepted by the kernel and returning the case's retval on its packet;
the case the prover cannot decide stays unrepaired, and says why. Plus the IR rewrites
they are built on (epass/ir/loops.py, epass/ir/inline.py) and the prover's covering runs
(a counter's bound is proven out of reach, a bound below the real trip count is not)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from epass.codegen import compile_module
from epass.commands.run import interpreter_inputs, on_kernel
from epass.commands.run import test_run_on_cpu0 as run_on_cpu0
from epass.ir import loops as L
from epass.ir import model as ir
from epass.ir.check import check_module
from epass.ir.inline import inline_call, stack_free_after
from epass.ir.lift import lift_program
from epass.ir.model import FP
from epass.isa.opcodes import AluOp, CallKind, JmpOp
from epass.kernel.loader import open_object
from epass.kernel.syscall import map_update_elem
from epass.obj.reader import read_object
from epass.repair import Options, repair
from epass.repair.engine import proof_insns
from epass.smt import ProofInputs, Verdict, prove

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "false_rejections"

# case -> (strategy, how the one round's candidate description starts)
REPAIRED = {
    "ctx_cb_loop_counter": ("loops", "count loop trips and abort at the bound (the loop at "
                                     "insn 11: bound "),
    "pow2_round_down_loop": ("loops", "count loop trips and abort at the bound (the loop at "
                                      "insn 12: bound "),
    "payload_signature_scan": ("loops", "branches in the loop at insn 7 fall through towards "
                                        "the back edge"),
    "tcp_syn_options_parse": ("loops", "hide r3's entry constant in the loop at insn 31 from "
                                       "the verifier (fp - fp + c)"),
    "layered_parser_call_depth": ("stack_depth", "inline tcp_flags into inner_l4 at insn 67"),
    # bpf_skb_load_bytes's buffer moves into the caller's dead frame: a write-only buffer
    # is compared by what the program reads back, not by its address
    "combined_stack_two_frames": ("stack_depth", "inline opt_sum into snap_hash at insn 54 "
                                                 "(its 320 stack bytes reusing the caller's "
                                                 "dead frame)"),
}


def _case(name: str) -> tuple:
    obj = read_object(CORPUS / name / "prog.o")
    return obj, tomllib.loads((CORPUS / name / "case.toml").read_text())


def _proof(obj, program, module: ir.Module, unroll: int = 32):
    new = compile_module(module)
    original, specs = interpreter_inputs(obj, program)
    return prove(original, proof_insns(obj, new), ProofInputs(program.kind.prog_type, specs),
                 timeout=30, unroll=unroll, aborts=new.aborts)


@pytest.mark.parametrize("name", sorted(REPAIRED))
def test_repaired_proven_and_runs(name, bpf_permitted):
    obj, case = _case(name)
    result = repair(obj, obj.programs[0], Options(timeout=30))
    assert result.status == "repaired", [(r.error.message, r.tried) for r in result.rounds]
    strategy, description = REPAIRED[name]
    assert [r.strategy for r in result.rounds] == [strategy]
    assert result.rounds[0].candidate.startswith(description)
    assert result.proof is not None and result.proof.verdict == Verdict.EQUIVALENT
    run = on_kernel(obj, result.program, bytes.fromhex(case["test"]["packet"]), None)
    assert run["accepted"] and run["r0"] == case["test"]["retval"]


def test_the_worst_case_loop_does_not_reach_the_counter_in_the_kernel(bpf_permitted):
    """pow2_round_down_loop with every bit of its configured size set runs its loop 31
    times: the repaired program still returns XDP_PASS (rx_queue_index is 0 in a test run;
    the abort would return 0)."""
    obj, case = _case("pow2_round_down_loop")
    result = repair(obj, obj.programs[0], Options(timeout=30))
    assert result.status == "repaired"
    packet = bytes.fromhex(case["test"]["packet"])
    with open_object(obj) as loaded:
        load = loaded.load_program(result.program, log_level=0)
        assert load.accepted and load.fd is not None
        for n in (0xFFFF_FFFF, 0x8000_0001, 12, 1):
            map_update_elem(loaded.map_fds["group_size"], bytes(4), n.to_bytes(4, "little"))
            assert run_on_cpu0(obj, result.program, load.fd, packet, None).retval == 2


def test_counter_bounds_come_from_the_budget(bpf_permitted):
    """The trial's provisional bound (256) is raised to what 100K instructions allow."""
    obj, _ = _case("ctx_cb_loop_counter")
    result = repair(obj, obj.programs[0], Options(timeout=30))
    bound = int(re.search(r"insn 11: bound (\d+);", result.rounds[0].candidate).group(1))
    assert 256 < bound <= 65_536


# ------------------------------------------------------------------ the rewrites


def test_a_bound_below_the_real_trip_count_is_not_equivalent():
    """pow2_round_down_loop runs its loop up to 31 times: a bound of 20 can be reached."""
    obj, _ = _case("pow2_round_down_loop")
    program = obj.programs[0]
    module = lift_program(program, obj.maps)
    (loop,) = L.module_loops(module)
    L.add_counter(loop, 20)
    assert check_module(module) == []
    proof = _proof(obj, program, module)
    assert proof.verdict == Verdict.REFINES
    (site,) = proof.aborts
    assert site.fires and site.original_unsafe == "never"


def test_a_bound_past_the_real_trip_count_is_proven_by_shallower_runs():
    """Unrolled 32 times the paths exhaust the step budget before the loop's end shows;
    the covering runs cut them shallower, where Z3 shows the rest cannot be taken."""
    obj, _ = _case("pow2_round_down_loop")
    program = obj.programs[0]
    module = lift_program(program, obj.maps)
    L.add_counter(L.module_loops(module)[0], 40)
    proof = _proof(obj, program, module)
    assert proof.verdict == Verdict.EQUIVALENT
    assert [s.fires for s in proof.aborts] == [False]


def test_counter_is_a_header_parameter_and_a_guard():
    obj, _ = _case("ctx_cb_loop_counter")
    module = lift_program(obj.programs[0], obj.maps)
    (loop,) = L.module_loops(module)
    assert loop.slot == 11 and len(loop.latches) == 1  # the cb[0]++ block
    L.add_counter(loop, 9)
    assert check_module(module) == []
    guard = loop.header.terminator
    assert isinstance(guard, ir.Branch) and guard.op == JmpOp.GE and guard.operands[1] == 9
    count = loop.header.params[-1]
    assert guard.operands[0] is count
    inits = [e.args[-1].definition for p in module.main.blocks for e in
             (p.terminator.edges if p.terminator else []) if e.target is loop.header]
    assert sorted(i.op.name for i in inits) == ["ADD", "MOV"]  # +1 on the back edge, 0 in


def test_widening_keeps_the_value_and_hides_it():
    obj, _ = _case("tcp_syn_options_parse")
    module = lift_program(obj.programs[0], obj.maps)
    (loop,) = L.module_loops(module)
    assert L.constant_params(loop) == [0, 1]  # off and i enter as 0
    L.widen_entry(loop, 1)
    assert check_module(module) == []
    entry = next(e for p in module.main.blocks for e in
                 (p.terminator.edges if p.terminator else [])
                 if e.target is loop.header and p not in loop.body)
    add = entry.args[1].definition
    sub = add.operands[0].definition
    assert (add.op, add.operands[1]) == (AluOp.ADD, 0)
    assert sub.op == AluOp.SUB and sub.operands[1] is FP


def test_latch_first_turns_the_compares_of_the_scan():
    obj, _ = _case("payload_signature_scan")
    module = lift_program(obj.programs[0], obj.maps)
    (loop,) = L.module_loops(module)
    assert L.fall_to_latch(loop) == 15  # 16 byte compares; the last one exits on a match
    assert check_module(module) == []
    assert L.fall_to_latch(loop) == 0  # nothing left to turn


def test_inlining_a_leaf_removes_it_and_keeps_the_function_checked():
    obj, _ = _case("layered_parser_call_depth")
    module = lift_program(obj.programs[0], obj.maps)
    call = next(i for f in module.functions for i in f.instructions()
                if isinstance(i, ir.Call) and i.kind == CallKind.LOCAL and i.origin == 67)
    assert stack_free_after(call)
    inline_call(module, call, 0)
    assert check_module(module) == []
    assert "tcp_flags" not in [f.name for f in module.functions]


def test_inlining_moves_the_callee_frame_below_the_caller():
    obj, _ = _case("combined_stack_two_frames")
    module = lift_program(obj.programs[0], obj.maps)
    (call,) = [i for f in module.functions for i in f.instructions()
               if isinstance(i, ir.Call) and i.kind == CallKind.LOCAL]
    assert stack_free_after(call)  # hdr is dead once hashed
    inline_call(module, call, 0)
    assert check_module(module) == []
    assert module.main.frame_size() == 320 and len(module.functions) == 1
