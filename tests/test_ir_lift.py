"""Lifting every test program to SSA: the checker passes, the text form round-trips,
the SSA is minimal, and what cannot be lifted is named."""

from __future__ import annotations

import pytest
from irutil import program_from_insns

from epass.errors import IRError
from epass.ir import model as ir
from epass.ir.check import check_module
from epass.ir.lift import lift_program
from epass.ir.text import format_module, parse_module
from epass.isa import Alu, AluOp, CallReg, Exit, JmpOp, Jump, parse_program
from epass.obj.reader import read_object

import progs

BUILDS = list(progs.builds())


def lifted(built_progs, name: str, cpu: str) -> list[tuple[object, ir.Module]]:
    obj = read_object(str(built_progs[name, cpu]))
    return [(p, lift_program(p, obj.maps)) for p in obj.programs]


@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=[f"{n}.{c}" for n, c in BUILDS])
def test_every_test_program_lifts_checks_and_prints_back(built_progs, name, cpu):
    for program, module in lifted(built_progs, name, cpu):
        assert check_module(module) == []
        text = format_module(module)
        again = parse_module(text)
        assert format_module(again) == text
        assert check_module(again) == []
        assert [f.name for f in module.functions] == [p.name for p in program.functions]
        # one IR instruction per bytecode instruction, plus arguments and undefined values
        real = [i for f in module.functions for i in f.instructions()
                if not isinstance(i, ir.Arg | ir.Undef) and i.origin is not None]
        assert len(real) == len(program.insns)


@pytest.mark.parametrize(("name", "cpu"), BUILDS, ids=[f"{n}.{c}" for n, c in BUILDS])
def test_ssa_is_minimal_and_use_lists_are_exact(built_progs, name, cpu):
    for _, module in lifted(built_progs, name, cpu):
        for f in module.functions:
            preds = f.predecessors()
            for b in f.blocks:
                for i, p in enumerate(b.params):
                    incoming = {e.args[i] for q in preds[b] for e in q.terminator.edges
                                if e.target is b} - {p}
                    assert len(incoming) >= 2, f"trivial parameter {p!r} of {b!r}"
            for inst in f.instructions():
                for v in inst.used_values():
                    assert inst in v.uses


def test_stack_accesses_through_r10_are_stack_slots(built_progs):
    (_, module), = lifted(built_progs, "xdp_map_counter", "v3")
    stack = [i for i in module.main.instructions()
             if isinstance(i, ir.Load | ir.Store) and i.is_stack]
    assert stack, "xdp_map_counter keeps its key on the stack"
    assert all(i.base is ir.FP and -512 <= i.off < 0 for i in stack)
    assert "[fp - 4]" in format_module(module)


def test_every_isa_feature_of_the_test_programs_lifts(built_progs):
    kinds: set[str] = set()
    for name, cpu in [("v4_insns", "v4"), ("atomics", "v3"), ("socket_ld_abs", "v2"),
                      ("subprog_calls", "v3"), ("bpf_loop_cb", "v3"), ("global_data", "v3"),
                      ("maps_btf", "v3"), ("tc_skb_fields", "v3")]:
        for _, module in lifted(built_progs, name, cpu):
            for f in module.functions:
                for inst in f.instructions():
                    kinds.add(type(inst).__name__)
                    if isinstance(inst, ir.Alu):
                        kinds.add(inst.op.name + ("32" if inst.bits == 32 else ""))
                    if isinstance(inst, ir.Load) and inst.signed:
                        kinds.add("LoadSigned")
                    if isinstance(inst, ir.Atomic):
                        kinds.add(inst.op.name)
                    if isinstance(inst, ir.LoadMap):
                        kinds.add("MapValue" if inst.value else "Map")
                    if isinstance(inst, ir.Branch) and inst.bits == 32:
                        kinds.add("JMP32")
    for needed in ("SDIV", "MOVSX8", "MOVSX32", "Endian", "LoadSigned", "FETCH_ADD", "XCHG",
                   "CMPXCHG", "LoadPacket", "LoadFunc", "Map", "MapValue", "Call", "JMP32",
                   "Branch", "Jump", "Ret", "Arg"):
        assert needed in kinds, needed


def test_ir_text_states_programs_directly():
    module = parse_module("""
module @demo section "xdp"
func @demo args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0 + 4]
  %2:r3 = load u32 [%0]
  store u64 [fp - 8], %2
  br jgt %2, %1, bb1(%1), bb2       ; insn 3
bb1(%3:r0):
  ret %3
bb2:
  %4:r0 = mov 2
  jump bb1(%4)
}
""")
    assert check_module(module) == []
    f = module.main
    assert [repr(b) for b in f.blocks] == ["bb0", "bb1", "bb2"]
    p = f.blocks[1].params[0]
    assert p.reg == 0 and p.is_param and len(p.uses) == 1
    assert f.blocks[0].terminator.origin == 3
    assert f.frame_size() == 8
    assert f.new_value().id == 5 and repr(f.new_block()) == "bb3"


@pytest.mark.parametrize(("text", "message"), [
    ("func @f args 1 {\nbb0:\n  ret 0\n}\n", 'IR text has no \'module @name section "..."\' '
     "line"),
    ('module @f section "xdp"\nfunc @f args 1 {\nbb0:\n  %1 = frob %0\n}\n',
     "IR text line 4: unknown instruction 'frob'"),
    ('module @f section "xdp"\nfunc @f args 1 {\nbb0:\n  ret %7\n}\n',
     "IR text line 5: function @f uses %7, which is never defined"),
    ('module @f section "xdp"\nfunc @f args 1 {\nbb0:\n  jump bb4\n}\n',
     "IR text line 5: function @f jumps to bb4, which has no label"),
    ('module @f section "xdp"\nfunc @f args 1 {\nbb0:\n  %0 = mov 1\n  %0 = mov 2\n}\n',
     "IR text line 5: %0 is defined twice"),
    ('module @f section "xdp"\nfunc @f args 1 {\nbb0:\n  %0 = load u128 [fp - 8]\n}\n',
     "IR text line 4: expected a size (u8, u16, u32, u64, s8, ...), got 'u128'"),
    ('module @f section "xdp"\nfunc @f args 1 {\nbb0:\n  ret 0\n',
     "IR text line 4: missing '}' at the end of the last function"),
])
def test_ir_text_errors_name_the_line(text, message):
    with pytest.raises(IRError) as e:
        parse_module(text)
    assert e.value.line() == message


def test_what_cannot_be_lifted_is_named():
    callx = program_from_insns([Alu(AluOp.MOV, 0, None, 0), CallReg(2), Exit()])
    with pytest.raises(IRError) as e:
        lift_program(callx, path="p.o")
    assert e.value.line() == ("p.o: section xdp: insn 1: function main: callx (indirect call) "
                              "cannot be lifted: the kernel rejects it and its target is unknown")
    falls = program_from_insns([Alu(AluOp.MOV, 0, None, 0)])
    with pytest.raises(IRError) as e:
        lift_program(falls)
    assert e.value.line() == ("section xdp: insn 0: function main: the function falls off "
                              "its end (no exit or jump)")
    out = program_from_insns([Jump(JmpOp.EQ, 1, 5, None, 0), Exit()])
    with pytest.raises(IRError) as e:
        lift_program(out)
    assert "insn 0: function main: jump to slot 6, outside the function" in e.value.line()


def test_reads_of_unwritten_and_clobbered_registers_are_undef():
    program = program_from_insns(parse_program("""
        r0 = r3
        call bpf_ktime_get_ns#5
        r0 += r2
        exit
    """))
    module = lift_program(program)
    text = format_module(module)
    assert "  %0:r3 = undef\n  %3:r2 = undef\n" in text  # all in the entry block
    assert "%4:r0 = add %2, %3" in text
    assert check_module(module) == []
    undefs = [i for i in module.main.instructions() if isinstance(i, ir.Undef)]
    assert [u.result.reg for u in undefs] == [3, 2]


def test_loop_headers_get_parameters_only_for_what_changes():
    module = lift_program(program_from_insns(parse_program("""
        r0 = 0
        r2 = 7
        r0 += 1
        if r0 < 10 goto pc-2
        r0 += r2
        exit
    """)))
    loop = module.main.blocks[1]
    assert [p.reg for p in loop.params] == [0]  # r2 does not change in the loop: no param
    assert isinstance(next(module.main.instructions()), ir.Alu)


def test_rare_instructions_lift_and_come_back():
    from irutil import round_trip

    from epass.isa import (
        Atomic,
        AtomicOp,
        Call,
        CallKind,
        Endian,
        EndianKind,
        Goto,
        LoadImm64,
        LoadPacket,
        MayGoto,
        PacketMode,
        PseudoKind,
        format_insn,
    )

    insns = [
        Alu(AluOp.MOV, 6, 1),                                # r6 = r1 (skb for LD_*)
        LoadPacket(PacketMode.IND, 2, 14, 7),                # r0 = skb[r7 + 14] (r7 undef)
        Call(CallKind.KFUNC, 1234, 0),                       # a kfunc by BTF id
        LoadImm64(2, 77, PseudoKind.BTF_ID, 0),              # lddw of a BTF id
        Atomic(AtomicOp.LOAD_ACQUIRE, 8, 3, 10, -8),         # r3 = load_acquire(r10 - 8)
        Atomic(AtomicOp.STORE_RELEASE, 4, 10, 3, -16),
        Atomic(AtomicOp.CMPXCHG, 8, 10, 3, -8),
        Endian(EndianKind.BSWAP, 3, 64),
        MayGoto(1),
        Goto(1, long=True),
        Alu(AluOp.SMOD, 0, 3, 0, 32),
        Exit(),
    ]
    program = program_from_insns(insns, "socket")
    module = lift_program(program)
    assert check_module(module) == []
    text = format_module(module)
    for needle in ("ld_ind u16", "call kfunc#1234(", "lddw.btf_id 77, 0",
                   "atomic load_acquire u64 [fp - 8]", "atomic store_release u32 [fp - 16]",
                   "atomic cmpxchg u64 [fp - 8]", "bswap64", "may_goto", "smod.32"):
        assert needle in text, needle
    assert format_module(parse_module(text)) == text
    # a short gotol comes back as goto: the code generator picks the encoding that reaches
    want = [format_insn(i).replace("gotol", "goto") for i in insns]
    assert [format_insn(i) for i in round_trip(program).insns] == want


def test_long_chains_of_checks_lift_without_deep_recursion():
    from epass.isa import Load

    n = 3000  # r6 is written before 3,000 early exits and read after them
    insns = [Alu(AluOp.MOV, 6, None, 1), Load(4, 2, 1, 0)]
    insns += [Jump(JmpOp.EQ, 2, n - i + 1, None, 5) for i in range(n)]
    insns += [Alu(AluOp.MOV, 0, 6), Exit(), Alu(AluOp.MOV, 0, None, 0), Exit()]
    module = lift_program(program_from_insns(insns))
    assert check_module(module) == []
    assert len(module.main.blocks) == n + 2  # each check ends a block; two exits follow
