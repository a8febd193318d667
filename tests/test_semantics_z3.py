"""The Z3 encoding agrees with the interpreter on generated programs and inputs.

Programs read an input buffer (r1, length r2, as in bpf_conformance), compute
with every ALU and jump form, spill to the stack and write back to the
buffer. The symbolic run's r0 and final buffer, evaluated with the buffer
fixed to the concrete input, must equal the interpreter's.
"""

from __future__ import annotations

import os

import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from epass.isa import (
    Alu,
    AluOp,
    Endian,
    EndianKind,
    Exit,
    Insn,
    JmpOp,
    Jump,
    Load,
    LoadImm64,
    Store,
    format_program,
)
from epass.semantics.interp import Environment, run
from epass.semantics.memory import MEM_BASE
from epass.semantics.symbolic import run_symbolic

EXAMPLES = int(os.environ.get("EPASS_Z3_EXAMPLES", "150"))
MEM = 32
REGS = (0, 3, 4, 5, 6, 7, 8)  # r1 (buffer) and r2 (length) stay put; r10 is the frame
ACC = 9  # every result is folded into r9, so a wrong intermediate value cannot hide
BOUNDARY = [-1, 1, 0, -(1 << 63), (1 << 63) - 1, -(1 << 31), 1 << 31, 0xFFFFFFFF, 0xFFFF8000,
            0x7FFF, 0x80, -128, 63, 64, 31, 32]
ALU_OPS = [op for op in AluOp]


@st.composite
def programs(draw) -> list[Insn]:
    # the spill slots start initialized: a jump may skip the store of a spill
    body: list[Insn] = [Store(8, 10, -8 * k, None, 0) for k in range(1, 5)]
    for r in REGS:  # every register starts from the buffer, a boundary value or a constant
        start = draw(st.sampled_from(["load", "boundary", "constant"]))
        if start == "load":
            size = draw(st.sampled_from([1, 2, 4, 8]))
            off = draw(st.integers(0, MEM - size))
            body.append(Load(size, r, 1, off, signed=draw(st.booleans()) and size < 8))
        elif start == "boundary":
            value = draw(st.sampled_from(BOUNDARY))
            body.append(LoadImm64(r, value & 0xFFFFFFFFFFFFFFFF))
        else:
            body.append(Alu(AluOp.MOV, r, None, draw(st.integers(-(1 << 31), (1 << 31) - 1))))
    body.append(Alu(AluOp.MOV, ACC, None, 0))
    n = draw(st.integers(1, 24))
    for _ in range(n):
        kind = draw(st.sampled_from(["alu", "alu", "alu", "endian", "jump", "spill", "store"]))
        dst = draw(st.sampled_from(REGS))
        if kind == "alu":
            op = draw(st.sampled_from(ALU_OPS))
            bits = 64 if op.value.alu64_only else draw(st.sampled_from([32, 64]))
            if op == AluOp.NEG:
                body.append(Alu(op, dst, None, 0, bits))
            elif op.value.reg_only or draw(st.booleans()):
                body.append(Alu(op, dst, draw(st.sampled_from(REGS)), 0, bits))
            else:
                imm = draw(st.sampled_from([0, 1, -1, 31, 32, 63, 64, -(1 << 31)])
                           | st.integers(-(1 << 31), (1 << 31) - 1))
                body.append(Alu(op, dst, None, imm, bits))
            body.append(Alu(AluOp.XOR, ACC, dst))
        elif kind == "endian":
            ekind = draw(st.sampled_from(list(EndianKind)))
            body.append(Endian(ekind, dst, draw(st.sampled_from([16, 32, 64]))))
            body.append(Alu(AluOp.XOR, ACC, dst))
        elif kind == "jump":
            # forward jumps over the next 1..3 instructions (filled in below)
            op = draw(st.sampled_from(list(JmpOp)))
            src = draw(st.sampled_from(REGS)) if draw(st.booleans()) else None
            imm = 0 if src is not None else draw(st.integers(-(1 << 31), (1 << 31) - 1))
            body.append(Jump(op, dst, draw(st.integers(1, 3)), src, imm,
                             draw(st.sampled_from([32, 64]))))
        elif kind == "spill":
            off = -8 * draw(st.integers(1, 4))
            body.append(Store(8, 10, off, dst))
            body.append(Load(draw(st.sampled_from([1, 2, 4, 8])), draw(st.sampled_from(REGS)),
                             10, off))
        else:
            size = draw(st.sampled_from([1, 2, 4, 8]))
            body.append(Store(size, 1, draw(st.integers(0, MEM - size)), dst))
    # jumps must land inside the program: pad, then fold every register into r0 so
    # that a difference anywhere shows
    body += [Alu(AluOp.ADD, 0, 0)] * 3
    body += [Alu(AluOp.XOR, 0, r) for r in (*REGS, ACC) if r != 0]
    body.append(Exit())
    return body


@settings(max_examples=EXAMPLES, deadline=None)
@given(programs(), st.binary(min_size=MEM, max_size=MEM))
def test_z3_encoding_gives_the_interpreters_result(insns, mem):
    concrete = run(insns, Environment(mem=mem))
    assert concrete.fault is None, concrete.fault
    symbolic = run_symbolic(insns, mem_size=MEM)
    assert symbolic.complete
    solver = z3.Solver()
    for i, byte in enumerate(mem):
        solver.add(z3.Select(symbolic.memory0, z3.BitVecVal(MEM_BASE + i, 64)) == byte)
    assert solver.check() == z3.sat
    model = solver.model()
    listing = format_program(insns)
    assert model.eval(symbolic.r0, model_completion=True).as_long() == concrete.r0, listing
    out = bytes(model.eval(z3.Select(symbolic.mem, z3.BitVecVal(MEM_BASE + i, 64)),
                           model_completion=True).as_long() for i in range(MEM))
    assert out == bytes(run_mem(insns, mem)), listing
    assert z3.is_false(z3.simplify(z3.And(*solver.assertions(), symbolic.fault))) or \
        solver.check(symbolic.fault) == z3.unsat


def run_mem(insns: list[Insn], mem: bytes) -> bytearray:
    """The buffer after a concrete run."""
    from epass.semantics.interp import Interpreter

    it = Interpreter(insns, Environment(mem=mem))
    it.run()
    (region,) = [r for r in it.memory.regions if r.name == "mem"]
    return region.data
