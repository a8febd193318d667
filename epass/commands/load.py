"""`epass load`: transform, verify and load programs into the running kernel.

The stages a user watches: the passes (instructions before and after), the
kernel verifier's verdict on the transformed program, and where it was
pinned. Without --pin the program is loaded, checked and released when the
command ends: the verdict is the point. Nothing is pinned that the kernel
rejected.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from epass.commands.compile import compile_program, slots
from epass.commands.verify import load_report as verdict_report
from epass.commands.verify import require_bpf
from epass.errors import EpassError, KernelError
from epass.kernel import syscall
from epass.kernel.loader import open_object
from epass.obj.model import BpfObject, Program
from epass.obj.reader import read_object
from epass.obj.writer import write_object
from epass.passes import PassUse


def load_programs(obj: BpfObject, programs: list[Program], passes: list[PassUse],
                  pin: str | None, check: bool) -> dict[str, Any]:
    require_bpf()
    if pin is not None and not os.path.isdir(pin):
        raise KernelError(f"--pin {pin}: no such directory (a directory on a bpf filesystem, "
                          "such as /sys/fs/bpf)")
    compiled = {p.name: compile_program(obj, p, passes, check) for p in programs}
    with tempfile.TemporaryDirectory() as tmp:  # the loader reads what compile writes
        path = os.path.join(tmp, os.path.basename(obj.path))
        with open(path, "wb") as f:
            f.write(write_object(obj, compiled))
        transformed = read_object(path)
    rows = []
    try:
        loaded = open_object(transformed)
    except EpassError as e:
        raise e.at(file=obj.path) from None
    with loaded:
        for p in programs:
            new = transformed.program(p.name)
            load = loaded.load_program(new, log_level=1)
            verdict = verdict_report(load, with_log=False)
            pinned = None
            if load.accepted and pin is not None:
                pinned = os.path.join(pin, p.name)
                try:
                    syscall.obj_pin(load.fd, pinned)
                except syscall.BpfError as e:
                    raise KernelError(f"cannot pin {p.name} at {pinned}: {e.message}",
                                      file=obj.path, section=p.section) from None
            rows.append({"name": p.name, "section": p.section,
                         "insns_before": slots(p), "insns_after": slots(compiled[p.name]),
                         "aborts": len(compiled[p.name].aborts), "verdict": verdict,
                         "pinned": pinned})
    accepted = sum(r["verdict"]["accepted"] for r in rows)
    return {"file": obj.path, "passes": [str(u) for u in passes], "programs": rows,
            "accepted": accepted, "rejected": len(rows) - accepted}


def render_load(report: dict[str, Any]) -> str:
    out = []
    passes = ", ".join(report["passes"]) or "no passes"
    for row in report["programs"]:
        name = f"{report['file']}: {row['section']}/{row['name']}"
        out.append(f"{name}: transformed: {row['insns_before']} -> {row['insns_after']} insns "
                   f"({passes}; {row['aborts']} abort site(s))")
        v = row["verdict"]
        if v["accepted"]:
            out.append(f"{name}: verified: accepted ({v['processed_insns']} insns processed)")
            out.append(f"{name}: loaded: " + (f"pinned at {row['pinned']}" if row["pinned"]
                                             else "released (no --pin)"))
        else:
            err = v["error"] or {}
            out.append(f"{name}: verified: rejected: {err.get('message', '')}")
    return "\n".join(out)
