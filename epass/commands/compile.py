"""`epass compile`: lift, run passes, compile back, write an object."""

from __future__ import annotations

import time
from typing import Any

from epass.codegen import compile_module
from epass.commands.verify import load_report, require_bpf
from epass.errors import EpassError
from epass.ir.check import verify_module
from epass.ir.lift import lift_program
from epass.isa import slot_count
from epass.kernel.loader import open_object
from epass.kernel.vimap import VIMap, build_vimap
from epass.obj.model import BpfObject, Program
from epass.obj.writer import write_object
from epass.passes import PassUse, run_passes


def slots(program: Program) -> int:
    return sum(slot_count(i) for i in program.insns)


def verifier_facts(obj: BpfObject, program: Program) -> VIMap:
    """The VI map of the original program, from a level 2 verification in this kernel."""
    require_bpf()
    with open_object(obj) as loaded:
        load = loaded.load_program(program, log_level=2)
    if not load.accepted:
        message = load_report(load, with_log=False)["error"]["message"]
        raise EpassError("the passes need the verifier's facts, but the kernel rejects the "
                         f"original program: {message}")
    return build_vimap(load.log)


def compile_program(obj: BpfObject, program: Program, passes: list[PassUse],
                    check: bool) -> Program:
    """Lift one program, run the passes, compile it back (checking the IR when asked)."""
    try:
        module = lift_program(program, obj.maps)
        if any(use.pass_.needs_verifier for use in passes):
            module.vimap = verifier_facts(obj, program)
        if check:
            verify_module(module, after="lifting")
        run_passes(module, passes, check=check)
        return compile_module(module)
    except EpassError as e:
        raise e.at(file=obj.path, section=program.section) from None


def compile_report(obj: BpfObject, programs: list[Program], passes: list[PassUse],
                   output: str, check: bool) -> dict[str, Any]:
    compiled: dict[str, Program] = {}
    rows = []
    for p in programs:
        start = time.perf_counter()
        new = compile_program(obj, p, passes, check)
        compiled[p.name] = new
        rows.append({"name": p.name, "section": p.section, "insns_before": slots(p),
                     "insns_after": slots(new),
                     "time_ms": round((time.perf_counter() - start) * 1000, 3)})
    data = write_object(obj, compiled)
    try:
        with open(output, "wb") as f:
            f.write(data)
    except OSError as e:
        raise EpassError(f"cannot write {output}: {e.strerror}") from None
    return {"file": obj.path, "output": output, "passes": [str(u) for u in passes],
            "checked": check, "programs": rows}


def render_compile(report: dict[str, Any]) -> str:
    out = []
    passes = ", ".join(report["passes"]) or "no passes"
    for row in report["programs"]:
        out.append(f"{report['file']}: {row['section']}/{row['name']}: {row['insns_before']} "
                   f"-> {row['insns_after']} insns ({passes})")
    out.append(f"wrote {report['output']}" + (" (IR checked after every step)"
                                               if report["checked"] else ""))
    return "\n".join(out)
