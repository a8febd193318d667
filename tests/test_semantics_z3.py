"""The Z3 encoding agrees with the interpreter on generated programs and inputs.

Programs read an input buffer (r1, length r2, as in bpf_conformance), compute
with every ALU and jump form, spill to the stack and write back to the
buffer. The symbolic run's r0 and final buffer, evaluated with the buffer
fixed to the concrete input, must equal the interpreter's.
"""

from __future__ import annotations

import os

import pytest
import z3
from hypothesis import HealthCheck, given, settings
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

import progs

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


# XDP test programs the Z3 encoding cannot finish yet, and why (asserted, so it stays true)
SYMBOLIC_GAPS = {
    "bpf_loop_cb": "helper bpf_for_each_map_elem has no symbolic model yet",
    "loop_bounded": "incomplete",  # its loop unrolls past the work budget
}
XDP_PROGS = [p for p in progs.PROGS if p.verdict == "accept" and len(p.programs) == 1
             and p.programs[0][1] == "xdp"]


def _xdp_check(insns, maps, result, packet: bytes) -> tuple[tuple, tuple]:
    """(interpreter, Z3) views of one run on a concrete packet: r0, the packet and the
    bytes of every map value at exit."""
    from epass.isa import HELPER_IDS
    from epass.semantics.ctx import prog_test_run_ctx
    from epass.semantics.helpers import LINUX_HELPERS
    from epass.semantics.interp import Interpreter
    from epass.semantics.memory import (
        CTX_BASE,
        PACKET_BASE,
        PACKET_HEADROOM,
        STACK_BASE,
        STACK_SIZE,
        STACK_STRIDE,
    )
    from epass.semantics.symbolic import MAX_CALL_FRAMES, distinct_keys
    from epass.uapi import ProgType

    full: dict[int, bool] = {}  # by call number: the hash map was full at that update

    def update(it: Interpreter, index: int) -> int:
        m = it.map_arg(1, index)
        full[len(it.helper_calls) - 1] = len(m.entries) >= m.max_entries
        return LINUX_HELPERS[HELPER_IDS["bpf_map_update_elem"]](it, index)

    it = Interpreter(insns, Environment(prog_type=ProgType.XDP, packet=packet, maps=maps,
                                        stubs={"bpf_map_update_elem": update}))
    values = [r for m in it.maps.maps for r in m.entries.values()  # before the run:
              if m.name not in result.hashes]
    initial = [(r.base, bytes(r.data)) for r in values]  # the same addresses as the encoding
    concrete = it.run()
    solver = z3.Solver()
    solver.add(result.packet_len == len(packet))
    data = PACKET_BASE + PACKET_HEADROOM

    def fix(addr: int, raw: bytes) -> None:
        for i, byte in enumerate(raw):
            solver.add(z3.Select(result.memory0, z3.BitVecVal(addr + i, 64)) == byte)

    fix(data, packet)
    fix(CTX_BASE, prog_test_run_ctx(ProgType.XDP, packet))
    for k in range(MAX_CALL_FRAMES):  # never-written stack: the interpreter's zeros
        fix(STACK_BASE + k * STACK_STRIDE, bytes(STACK_SIZE))
    for base, raw in initial:
        fix(base, raw)
    # hash maps: the keys the encoding looked up hold what the interpreter's map holds,
    # and a map is full where the interpreter's was
    solver.add(*distinct_keys(result))
    for choice in result.choices:
        solver.add(choice == full.get(choice.arg(0).as_long(), False))
    specs = {m.name: m for m in maps}
    for name, key in result.keys:
        slot = result.hashes[name].slot(key)
        contents = specs[name].contents
        present = z3.Or([key == int.from_bytes(k, "little") for k in contents])
        solver.add((z3.Select(result.start, slot.flag) != 0) == present)
        for k, value in contents.items():
            for i, byte in enumerate(value):
                solver.add(z3.Implies(key == int.from_bytes(k, "little"),
                                      z3.Select(result.start, slot.value + i) == byte))
    assert solver.check() == z3.sat
    model = solver.model()

    def read(addr, size: int) -> bytes:
        return bytes(model.eval(z3.Select(result.mem, addr + i),
                                model_completion=True).as_long() for i in range(size))

    def looked_up(name: str) -> dict[bytes, object]:
        area, out = result.hashes[name], {}
        for map_name, key in result.keys:
            if map_name == name:
                raw = model.eval(key, model_completion=True)
                out[raw.as_long().to_bytes(area.key_size, "little")] = area.slot(raw)
        return out

    def entries(name: str) -> dict[bytes, bytes]:
        """The encoding's final hash map, over the keys it looked up."""
        size = result.hashes[name].value_size
        return {k: read(slot.value, size) for k, slot in looked_up(name).items()
                if read(slot.flag, 1) != b"\0"}

    def concrete_entries(name: str) -> dict[bytes, bytes]:
        """The interpreter's, over the same keys; the others must be as they started."""
        keys = looked_up(name)
        final = concrete.maps[name]
        assert {k: v for k, v in final.items() if k not in keys} == \
            {k: v for k, v in specs[name].contents.items() if k not in keys}
        return {k: v for k, v in final.items() if k in keys}

    r0 = model.eval(result.r0, model_completion=True).as_long()
    ours = (concrete.r0, concrete.packet, [bytes(r.data) for r in values],
            {name: concrete_entries(name) for name in result.hashes})
    theirs = (r0, read(z3.BitVecVal(data, 64), len(packet)),
              [read(z3.BitVecVal(r.base, 64), len(r.data)) for r in values],
              {name: entries(name) for name in result.hashes})
    return ours, theirs


@progs.skip_without_clang
@pytest.mark.parametrize("name", [p.name for p in XDP_PROGS])
def test_xdp_program_encoding_matches_the_interpreter(built_progs, name):
    from epass.commands.run import interpreter_inputs
    from epass.obj.reader import read_object
    from epass.semantics import step
    from epass.semantics.packets import sample_packet
    from epass.semantics.symbolic import SymbolicEnv
    from epass.uapi import ProgType

    entry = progs.get(name)
    obj = read_object(str(built_progs[name, "v4" if entry.min_cpu == "v4" else "v3"]))
    insns, maps = interpreter_inputs(obj, obj.programs[0])
    env = SymbolicEnv(prog_type=ProgType.XDP, maps=maps, max_total_steps=20_000)
    try:
        result = run_symbolic(insns, env)
    except step.Unsupported as e:
        assert SYMBOLIC_GAPS.get(name) and SYMBOLIC_GAPS[name] in str(e)
        return
    if not result.complete:
        assert SYMBOLIC_GAPS.get(name) == "incomplete"
        return
    assert name not in SYMBOLIC_GAPS, "a gap closed: update SYMBOLIC_GAPS"
    packets = [sample_packet(), sample_packet()[:14], sample_packet()[:34],
               bytes(range(60)), sample_packet()[:12] + b"\x86\xdd" + bytes(40)]
    for packet in packets:
        ours, theirs = _xdp_check(insns, maps, result, packet)
        assert theirs == ours, packet.hex()


@settings(max_examples=max(10, EXAMPLES // 3), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_generated_xdp_programs_encoding_matches_the_interpreter(data):
    """helper-generated XDP programs (tests/gen.py) that the encoding covers: same r0,
    packet and map values as the interpreter on their generated inputs."""
    from gen import cases
    from hypothesis import assume

    from epass.semantics import step
    from epass.semantics.symbolic import SymbolicEnv
    from epass.uapi import ProgType

    case = data.draw(cases(ProgType.XDP))
    env = SymbolicEnv(prog_type=ProgType.XDP, maps=case.maps, max_total_steps=20_000)
    try:
        result = run_symbolic(case.insns, env)
    except step.Unsupported:
        assume(False)  # hash maps, callbacks, adjust_head: no Z3 model yet
    assume(result.complete)
    ours, theirs = _xdp_check(case.insns, case.maps, result, case.packet)
    assert theirs == ours, format_program(case.insns) + case.packet.hex()
