"""A proof's counterexample run in the kernel: both programs, BPF_PROG_TEST_RUN, same inputs.

The interpreter already confirmed the counterexample; this asks the kernel
too, when it can: the program type takes a packet, bpf() is permitted, and
both programs load. Maps start with the counterexample's contents (per-CPU
values on every CPU). The context is the kernel's default for the packet,
not the counterexample's bytes: a difference that needs other context
bytes is then not shown, and the report says so rather than guessing.
"""

from __future__ import annotations

from typing import Any

from epass.commands.run import TEST_RUN_PACKET_TYPES, read_maps, test_run_on_cpu0
from epass.errors import EpassError
from epass.kernel import syscall
from epass.kernel.loader import open_object
from epass.kernel.snapshot import PERCPU_TYPES, possible_cpus
from epass.obj.model import BpfObject, Program
from epass.smt.prove import Counterexample


def kernel_replay(original: BpfObject, p: Program, transformed: BpfObject, t: Program,
                  cex: Counterexample) -> dict[str, Any]:
    """{"ran": bool, "reason": why not, "original"/"transformed": r0, packet, maps,
    "confirmed": the kernel shows a difference in r0, packet or maps}."""
    kind = p.kind
    if kind is None or kind.prog_type not in TEST_RUN_PACKET_TYPES:
        return {"ran": False, "reason": "BPF_PROG_TEST_RUN takes no packet for this type"}
    denied = syscall.bpf_permitted()
    if denied is not None:
        return {"ran": False, "reason": denied}
    runs = {}
    for side, obj, program in (("original", original, p), ("transformed", transformed, t)):
        try:
            run = _run(obj, program, cex)
        except EpassError as e:
            return {"ran": False, "reason": f"the {side} program: {e.message}"}
        if run is None:
            return {"ran": False, "reason": f"the kernel rejects the {side} program"}
        runs[side] = run
    a, b = runs["original"], runs["transformed"]
    return {"ran": True, "reason": "", **runs, "confirmed": a != b}


def _run(obj: BpfObject, program: Program, cex: Counterexample) -> dict[str, Any] | None:
    with open_object(obj) as loaded:
        for m in obj.maps:
            for key, value in cex.maps.get(m.name, {}).items():
                if m.type in PERCPU_TYPES:  # every CPU's slot, each 8-byte aligned
                    slot = value + bytes((len(value) + 7) // 8 * 8 - len(value))
                    value = slot * possible_cpus()
                syscall.map_update_elem(loaded.map_fds[m.name], key, value)
        load = loaded.load_program(program, log_level=0)
        if not load.accepted:
            return None
        result = test_run_on_cpu0(obj, program, load.fd, cex.packet, None)
        maps = read_maps(obj, loaded)
    return {"r0": result.retval, "packet": result.data_out.hex(), "maps": maps}
