"""The alignment strategy: misaligned stack accesses split into aligned pieces. Its corpus
case is repaired in one round, proven EQUIVALENT, accepted by the kernel and returns the
case's retval on its packet; the splitting itself is checked on loads, sign-extending
loads and immediate stores, against the interpreter and Z3."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from epass.codegen import compile_module
from epass.commands.run import on_kernel
from epass.ir import model as ir
from epass.ir.check import check_module
from epass.ir.text import parse_module
from epass.obj.reader import read_object
from epass.repair import Options, repair
from epass.repair.strategies.alignment import pieces, split
from epass.semantics.interp import Environment, run
from epass.smt import ProofInputs, Verdict, prove
from epass.uapi import ProgType

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "false_rejections"


def test_pieces_are_aligned_and_cover_the_access():
    assert pieces(-6, 4) == [(0, 2), (2, 2)]
    assert pieces(-14, 8) == [(0, 2), (2, 4), (6, 2)]
    assert pieces(-7, 8) == [(0, 1), (1, 2), (3, 4), (7, 1)]
    assert pieces(-3, 2) == [(0, 1), (1, 1)]
    assert pieces(-16, 8) == [(0, 8)]


def test_the_corpus_case_is_repaired_proven_and_runs(bpf_permitted):
    case = CORPUS / "packed_tuple_word_copy"
    meta = tomllib.loads((case / "case.toml").read_text())
    obj = read_object(case / "prog.o")
    r = repair(obj, obj.programs[0], Options(timeout=20))
    assert r.status == "repaired", [(x.error.message, x.tried) for x in r.rounds]
    assert [x.strategy for x in r.rounds] == ["alignment"]
    # both misaligned stores (fp-6 size 4, fp-14 size 8) in the one round
    assert r.rounds[0].candidate == "split 2 misaligned stack accesses into aligned pieces"
    assert r.safety == "safe"
    assert r.proof is not None and r.proof.verdict == Verdict.EQUIVALENT
    got = on_kernel(obj, r.program, bytes.fromhex(meta["test"]["packet"]), None)
    assert got["accepted"] and got["r0"] == meta["test"]["retval"]


# a packed field written and read back through misaligned stack accesses: a 4-byte store
# of a packet word at fp-6, an 8-byte immediate store at fp-15, a sign-extending 2-byte
# load at fp-13 and a 4-byte load at fp-5
PROGRAM = """\
module @p section "xdp"
func @p args 1 type 0 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0 + 4]
  %2:r3 = load u32 [%0]
  %3:r4 = add %2, 18
  br jgt %3, %1, bb2, bb1
bb1:
  %4:r5 = load u32 [%2 + 14]
  store u32 [fp - 6], %4
  store u64 [fp - 15], -2023406815
  %5:r6 = load s16 [fp - 13]
  %6:r7 = load u32 [fp - 5]
  %7:r0 = add %5, %6
  ret %7
bb2:
  %8:r0 = mov 1
  ret %8
}
"""


def _misaligned(module: ir.Module) -> list[ir.Load | ir.Store]:
    return [i for i in module.main.instructions()
            if isinstance(i, ir.Load | ir.Store) and i.is_stack and i.off % i.size]


def test_split_loads_and_stores_compute_the_same():
    original = compile_module(parse_module(PROGRAM))
    module = parse_module(PROGRAM)
    accesses = _misaligned(module)
    assert len(accesses) == 4
    for inst in accesses:
        split(inst, inst.off)
    assert check_module(module) == [] and _misaligned(module) == []
    repaired = compile_module(module)
    packet = bytes(range(14)) + bytes.fromhex("8899aabb") + bytes(20)
    want = run(original.insns, Environment(prog_type=ProgType.XDP, packet=packet))
    got = run(repaired.insns, Environment(prog_type=ProgType.XDP, packet=packet))
    assert want.fault is None and want.r0 not in (None, 1) and got.r0 == want.r0
    proof = prove(original.insns, repaired.insns, ProofInputs(ProgType.XDP), timeout=30)
    assert proof.verdict == Verdict.EQUIVALENT, proof.reason


def test_a_wrong_split_is_caught():
    original = compile_module(parse_module(PROGRAM))
    module = parse_module(PROGRAM)
    store = next(i for i in _misaligned(module) if isinstance(i, ir.Store) and i.size == 4)
    split(store, store.off)
    # the high half of the word lands one byte too far
    high = next(i for i in module.main.instructions()
                if isinstance(i, ir.Store) and i.is_stack and i.off == -4)
    high.off = -3
    wrong = compile_module(module)
    proof = prove(original.insns, wrong.insns, ProofInputs(ProgType.XDP), timeout=30)
    assert proof.verdict == Verdict.NOT_EQUIVALENT


@pytest.mark.parametrize("size,signed", [(2, False), (4, False), (8, False), (2, True),
                                         (4, True)])
def test_each_split_load_reads_the_same_bytes(size, signed):
    kind = f"{'s' if signed else 'u'}{8 * size}"
    text = PROGRAM.replace("%5:r6 = load s16 [fp - 13]", f"%5:r6 = load {kind} [fp - 13]")
    original = compile_module(parse_module(text))
    module = parse_module(text)
    for inst in _misaligned(module):
        split(inst, inst.off)
    proof = prove(original.insns, compile_module(module).insns, ProofInputs(ProgType.XDP),
                  timeout=30)
    assert proof.verdict == Verdict.EQUIVALENT, proof.reason
