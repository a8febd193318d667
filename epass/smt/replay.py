"""Replaying a counterexample on the interpreter, with the choices Z3's model made.

A counterexample gives the inputs a program reads (packet, context, map
contents, stack bytes); helpers without a concrete model (time, ids,
random numbers), kernel memory behind probe_read and the task's name are
inputs too, chosen by Z3 as values of the uninterpreted functions the
symbolic run used. The replay's stubs return exactly those values, so
both programs run on the same world as in the model.
"""

from __future__ import annotations

from typing import Any

import z3

from epass.isa import HELPER_IDS, helper_name
from epass.semantics import step as st
from epass.semantics.helpers import LINUX_HELPERS
from epass.semantics.interp import Environment, Interpreter, MapSpec, RunResult, StepLimit, run
from epass.semantics.memory import Region, RegionKind
from epass.semantics.symbolic import PURE_HELPERS, helper_args, uninterpreted_helper
from epass.semantics.symbolic_helpers import (
    compared_args,
    current_comm,
    kernel_memory,
    kernel_readable,
)

PROBE_READS = {HELPER_IDS[n]: n.endswith("_str") for n in (
    "bpf_probe_read_kernel", "bpf_probe_read_user", "bpf_probe_read",
    "bpf_probe_read_kernel_str", "bpf_probe_read_user_str", "bpf_probe_read_str")}
GET_CURRENT_COMM = HELPER_IDS["bpf_get_current_comm"]


def _value(model: Any, term: Any) -> int:
    return model.eval(term, model_completion=True).as_long()


def _call_number(it: Interpreter) -> int:
    return len(it.helper_calls) - 1  # the interpreter lists a call before running its model


def model_stubs(model: Any) -> dict[str, Any]:
    """Stubs, by helper name, that answer as `model` did."""
    stubs: dict[str, Any] = {}

    def pure(helper_id: int) -> Any:
        def stub(it: Interpreter, index: int) -> int:
            regs = [z3.BitVecVal(r.value, 64) if r is not None else None for r in it.regs[1:6]]
            return _value(model, uninterpreted_helper(helper_id)(
                z3.BitVecVal(_call_number(it), 64), *helper_args(helper_id, regs)))
        return stub

    def probe_read(helper_id: int, string: bool) -> Any:
        def stub(it: Interpreter, index: int) -> int:
            dst, size, src = it.arg(1, index), it.arg(2, index), it.arg(3, index)
            n = size - 1 if string else size
            concrete = LINUX_HELPERS[helper_id]
            if n <= 0 or it.memory.locate(src, n) is not None:
                return concrete(it, index)  # the program's own memory
            k = z3.BitVecVal(_call_number(it), 64)
            if not z3.is_true(model.eval(kernel_readable()(k), model_completion=True)):
                it.write_bytes(dst, bytes(size), index)
                return -14  # -EFAULT, the buffer zeroed
            data = bytes(_value(model, kernel_memory()(k, z3.BitVecVal(src + i, 64)))
                         for i in range(n))
            # the bytes as a read-only region at src for the time of the call
            region = it.memory.add(Region(RegionKind.KERNEL, "kernel", src, bytearray(data),
                                          writable=False))
            try:
                return concrete(it, index)
            finally:
                it.memory.remove(region)
        return stub

    def comm(it: Interpreter, index: int) -> int:
        dst, size = it.arg(1, index), it.arg(2, index)
        name = bytes(_value(model, current_comm()(z3.BitVecVal(i, 64)))
                     for i in range(max(size - 1, 0)))
        if size:
            it.write_bytes(dst, name + b"\0", index)
        return 0

    for helper_id in PURE_HELPERS:
        stubs[helper_name(helper_id)] = pure(helper_id)
    for helper_id, string in PROBE_READS.items():
        stubs[helper_name(helper_id)] = probe_read(helper_id, string)
    stubs[helper_name(GET_CURRENT_COMM)] = comm
    return stubs


def replay(insns: list, prog_type: Any, packet: bytes, ctx: bytes, maps: list[MapSpec],
           stacks: list[bytes], records: dict[int, bytes], model: Any,
           unwritten: dict[tuple[int, int], int] | None = None) -> dict[str, Any]:
    """Run `insns` on the interpreter with a counterexample's inputs; what it gives."""
    env = Environment(prog_type=prog_type, packet=packet, ctx=ctx or None, stacks=stacks,
                      records=records, unwritten=unwritten or {},
                      maps=[MapSpec(m.name, m.type, m.key_size, m.value_size, m.max_entries,
                                    dict(m.contents)) for m in maps],
                      stubs=model_stubs(model))
    try:
        r: RunResult = run(insns, env)
    except (st.Unsupported, StepLimit) as e:
        return {"error": str(e)}
    return {"r0": r.r0, "packet": r.packet.hex(), "ctx": r.ctx.hex(),
            "output": [record.hex() for record in r.output],
            "calls": [[name, [f"{a:#x}" for a in compared_args(HELPER_IDS.get(name, -1), args, 0)]]
                      for name, args in r.helper_calls],
            "maps": {name: {k.hex(): v.hex() for k, v in entries.items()}
                     for name, entries in r.maps.items()},
            "fault": None if r.fault is None else str(r.fault)}
