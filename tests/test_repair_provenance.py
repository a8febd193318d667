"""The provenance strategy on its corpus cases: repaired in one round, proven EQUIVALENT,
accepted by the kernel and returning the case's retval on its packet; the reload of data
after bpf_xdp_adjust_tail (a second round adds a packet check). Plus the IR tools it is built on
(epass/ir/valueset.py, epass/ir/duplicate.py)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from epass.codegen import compile_module
from epass.commands.run import interpreter_inputs, on_kernel
from epass.ir import model as ir
from epass.ir.check import check_module
from epass.ir.duplicate import copy_access, duplicate_per_edge, split_by_value
from epass.ir.lift import lift_program
from epass.ir.text import format_module, parse_module
from epass.ir.valueset import ValueSets, address
from epass.obj.reader import read_object
from epass.repair import Options, repair
from epass.repair.engine import proof_insns
from epass.smt import ProofInputs, Verdict, prove

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "false_rejections"

# case -> how the one round starts its candidate description
REPAIRED = {
    "ctx_field_offset_select": "split the access at insn 20 per value of its offset "
                               "(8, 12, 32, 40)",
    "ctx_cb_loop_pointer": "split the access at insn 5 per value of its offset "
                           "(0, 4, 8, 12, 16)",
    "ctx_field_ptr_select": "copy the block of insn 11 per incoming edge",
    "ctx_or_map_value_load": "copy the block of insn 19 per incoming edge",
    "stack_ptr_array_var_index": "split the access at insn 27 per value of its offset "
                                 "(0, 8, 16)",
    "pkt_end_minus_one_check": "compare with data_end itself, adding 1 to the other side",
    "undef_reg_and_condition": "set the unwritten register to 0 where it is read",
}


def _case(name: str) -> tuple:
    obj = read_object(CORPUS / name / "prog.o")
    return obj, tomllib.loads((CORPUS / name / "case.toml").read_text())


@pytest.mark.parametrize("name", sorted(REPAIRED))
def test_repaired_proven_and_runs(name, bpf_permitted):
    obj, case = _case(name)
    result = repair(obj, obj.programs[0], Options(timeout=30))
    assert result.status == "repaired", [(r.error.message, r.tried) for r in result.rounds]
    assert [r.strategy for r in result.rounds] == ["provenance"]
    assert result.rounds[0].candidate.startswith(REPAIRED[name])
    assert result.proof is not None and result.proof.verdict == Verdict.EQUIVALENT
    packet = bytes.fromhex(case["test"]["packet"])
    run = on_kernel(obj, result.program, packet, None)
    assert run["accepted"] and run["r0"] == case["test"]["retval"]


def test_reload_after_adjust_tail_is_proven(bpf_permitted):
    """bpf_xdp_adjust_tail has a Z3 model: re-loading data after it is proven EQUIVALENT
    (data does not move); the verifier then wants the packet range checked again, which
    packet_recheck adds in a second round (a check that never fires: the trim leaves at
    least 60 bytes)."""
    obj, case = _case("stale_pkt_ptr_after_adjust_tail")
    result = repair(obj, obj.programs[0], Options(timeout=30))
    assert result.status == "repaired", [(r.error.message, r.tried) for r in result.rounds]
    assert [r.strategy for r in result.rounds] == ["provenance", "packet_recheck"]
    assert result.rounds[0].candidate.startswith("load data from the context again before "
                                                 "insn 13")
    assert result.proof is not None and result.proof.verdict == Verdict.EQUIVALENT
    packet = bytes.fromhex(case["test"]["packet"])
    run = on_kernel(obj, result.program, packet, None)
    assert run["accepted"] and run["r0"] == case["test"]["retval"]


def test_an_incomplete_split_is_not_equivalent():
    """The split's abort is where a wrong guess shows: leave out the index 16 and Z3 finds
    the input (every input: the loop reaches 16) where the abort fires."""
    obj, _ = _case("ctx_cb_loop_pointer")
    program = obj.programs[0]
    module = lift_program(program, obj.maps)
    load = next(i for i in module.main.instructions() if isinstance(i, ir.Load))
    root, off, index = address(load.base, ValueSets(module.main), load.block)
    assert index is not None and off == 48
    split_by_value(load, index, [0, 4, 8, 12], lambda b, v: copy_access(load, root, off + v, b))
    assert check_module(module) == []
    new = compile_module(module)
    original, specs = interpreter_inputs(obj, program)
    proof = prove(original, proof_insns(obj, new), ProofInputs(program.kind.prog_type, specs),
                  timeout=30, aborts=new.aborts)
    assert proof.verdict == Verdict.REFINES


FOLD = """#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int fold(struct xdp_md *ctx)
{
    __u32 q;
    /* ctx + 12 + 4: the verifier only takes ctx + 16 */
    asm volatile("r2 = %[c]; r2 += 12; %[q] = *(u32 *)(r2 + 4)"
             : [q] "=r"(q) : [c] "r"(ctx) : "r2");
    return q == 0 ? XDP_PASS : XDP_DROP;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_constant_steps_from_ctx_fold_into_the_access(tmp_path, requires_clang, bpf_permitted):
    (tmp_path / "fold.bpf.c").write_text(FOLD)
    subprocess.run(["clang-19", "-O2", "-target", "bpf", "-mcpu=v3",
                    "-I/usr/include/x86_64-linux-gnu", "-c", "fold.bpf.c", "-o", "fold.o"],
                   cwd=tmp_path, check=True)
    obj = read_object(tmp_path / "fold.o")
    result = repair(obj, obj.programs[0], Options(timeout=30))
    assert result.status == "repaired"
    assert result.rounds[0].candidate == "fold the constant offset into the access at insn 2"
    assert result.proof is not None and result.proof.verdict == Verdict.EQUIVALENT
    assert "load u32 [%0 + 16]" in format_module(lift_program(result.program, obj.maps))


LOOP = """
module @m section "xdp"
func @m args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0]
  %2:r3 = mov 0
  jump bb1(%2)
bb1(%3:r3):
  %4:r3 = add %3, 4
  br jeq %4, 20, bb3, bb2
bb2:
  jump bb1(%4)
bb3:
  %5:r4 = load u32 [%0 + 8]
  br.32 jlt %5, 3, bb4(%5), bb5
bb5:
  %6:r4 = mov 7
  jump bb4(%6)
bb4(%7:r4):
  %8:r4 = lsh %7, 2
  ret %8
}
"""


def test_value_sets_follow_loops_and_tests():
    func = parse_module(LOOP).main
    sets = ValueSets(func)
    blocks = {b.id: b for b in func.blocks}
    params = {v.id: v for b in func.blocks for v in b.params}
    assert sets.values(params[3], blocks[1]) == [0, 4, 8, 12, 16]
    assert sets.values(params[7], blocks[4]) == [0, 1, 2, 7]
    result = next(i.result for i in blocks[4].insts if isinstance(i, ir.Alu))
    assert sets.values(result, blocks[4]) == [0, 4, 8, 28]
    assert sets.values(func.entry.insts[1].result, func.entry) is None  # a whole u32


JOIN = """
module @m section "tc"
func @m args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0 + 40]
  %2:r3 = add %0, 8
  br jeq %1, 0, bb2(%2), bb1
bb1:
  %3:r3 = add %0, 32
  jump bb2(%3)
bb2(%4:r3):
  %5:r0 = load u32 [%4]
  %6:r0 = add %5, 1
  ret %6
}
"""


def test_a_block_copied_per_edge_joins_again():
    module = parse_module(JOIN)
    load = next(i for i in module.main.instructions() if isinstance(i, ir.Load) and i.off == 0)
    copies = duplicate_per_edge(load.block, load)
    assert check_module(module) == []
    bases = [next(i for i in c.insts if isinstance(i, ir.Load)).base for c in copies]
    assert [b.definition.operands[1] for b in bases] == [8, 32]  # each edge's own pointer
    rest = copies[0].terminator.edges[0].target
    assert copies[1].terminator.edges[0].target is rest and len(rest.params) == 1
    assert rest.insts[0].operands[0] is rest.params[0]  # the load's result, joined
