"""`epass prove`: is each program of one object equivalent to its namesake in another?"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from epass.commands.kernel_replay import kernel_replay
from epass.commands.read import program_header
from epass.commands.run import interpreter_inputs
from epass.errors import EpassError
from epass.isa import Insn, LoadImm64, PseudoKind, slot_indices
from epass.obj.model import BpfObject, MapDef, Program
from epass.smt import ProofInputs, ProofResult, Verdict, prove


def _same_maps(original: BpfObject, transformed: BpfObject, program: Program) -> list[Insn]:
    """The transformed program with map references numbered as in the original object."""
    index = {m.name: i for i, m in enumerate(original.maps)}
    insns = list(program.insns)
    position = {slot: pos for pos, slot in enumerate(slot_indices(insns))}
    for ref in program.map_refs:
        if ref.map not in index:
            raise EpassError(f"the transformed program {program.name} uses map {ref.map!r}, "
                             "which the original object does not have", file=transformed.path,
                             section=program.section)
        pos = position[ref.insn]
        insn = insns[pos]
        assert isinstance(insn, LoadImm64)
        kind = PseudoKind.MAP_IDX_VALUE if ref.value else PseudoKind.MAP_IDX
        insns[pos] = replace(insn, imm=index[ref.map], kind=kind, aux=ref.offset)
    return insns


def _map_difference(original: BpfObject, transformed: BpfObject) -> str | None:
    """How the objects' maps differ (definitions, initial global data), or None."""
    def shape(m: MapDef) -> tuple:
        return (m.type, m.key_size, m.value_size, m.max_entries, m.flags, m.initial)

    a = {m.name: m for m in original.maps}
    b = {m.name: m for m in transformed.maps}
    for name in sorted(a.keys() | b.keys()):
        if name not in a or name not in b:
            return f"map {name!r} is only in the {'original' if name in a else 'transformed'} " \
                   "object"
        if shape(a[name]) != shape(b[name]):
            what = "initial contents" if a[name].initial != b[name].initial else "definition"
            return f"map {name!r} has another {what} in the transformed object"
    return None


def prove_report(original: BpfObject, transformed: BpfObject, programs: list[Program],
                 timeout: float, unroll: int, loops: str = "auto") -> dict[str, Any]:
    rows = []
    maps_differ = _map_difference(original, transformed)
    for p in programs:
        if maps_differ is not None:  # every program sees other maps or other global data
            rows.append({**program_header(p), "verdict": "not_equivalent",
                         "property": "map definitions", "reason": maps_differ, "time_ms": 0.0,
                         "unroll": unroll, "paths": [0, 0], "counterexample": None,
                         "aborts": []})
            continue
        others = [q for q in transformed.programs if q.name == p.name]
        if not others:
            raise EpassError(f"no program named {p.name} in the transformed object",
                             file=transformed.path)
        a, specs = interpreter_inputs(original, p)
        b = _same_maps(original, transformed, others[0])
        kind = p.kind
        result = prove(a, b, ProofInputs(kind.prog_type if kind else None, specs),
                       timeout=timeout, unroll=unroll, aborts=others[0].aborts, loops=loops)
        row = {**program_header(p), **_result_json(result)}
        cex = result.counterexample
        if cex is not None and cex.confirmed:
            row["counterexample"]["kernel"] = kernel_replay(original, p, transformed,
                                                            others[0], cex)
        rows.append(row)
    verdicts = {r["verdict"] for r in rows}
    overall = next((v for v in ("not_equivalent", "unknown", "refines") if v in verdicts),
                   "equivalent")
    return {"original": original.path, "transformed": transformed.path, "programs": rows,
            "verdict": overall}


def _result_json(r: ProofResult) -> dict[str, Any]:
    cex = None
    if r.counterexample is not None:
        c = r.counterexample
        cex = {"packet": c.packet.hex(), "ctx": c.ctx.hex(),
               "maps": {n: {k.hex(): v.hex() for k, v in e.items()} for n, e in c.maps.items()},
               "original": c.original, "transformed": c.transformed, "confirmed": c.confirmed,
               "kernel": None}
    return {"verdict": r.verdict.value, "property": r.property, "reason": r.reason,
            "time_ms": round(r.time_ms, 3), "unroll": r.unroll, "paths": list(r.paths),
            "counterexample": cex,
            "aborts": [{"insn": s.slot, "fires": s.fires,
                        "packet": s.packet.hex() if s.packet is not None else None,
                        "original_unsafe": s.original_unsafe} for s in r.aborts]}


def exit_code(report: dict[str, Any]) -> int:
    return {"equivalent": 0, "refines": 0, "not_equivalent": 1, "unknown": 3}[
        report["verdict"]]


def render_prove(report: dict[str, Any]) -> str:
    out = []
    for p in report["programs"]:
        out.append(f"{report['transformed']}: {p['section']}/{p['name']}: "
                   f"{p['verdict'].upper().replace('_', ' ')} ({p['property']}): {p['reason']} "
                   f"[{p['time_ms']:.0f} ms]")
        for site in p["aborts"]:
            if site["fires"]:
                out.append(f"  abort at insn {site['insn']} fires, e.g. on packet "
                           f"{site['packet']}; the original is unsafe there: "
                           f"{site['original_unsafe']}")
            else:
                out.append(f"  abort at insn {site['insn']} never fires")
        c = p["counterexample"]
        if c is not None:
            out.append(f"  input packet ({len(c['packet']) // 2} bytes): {c['packet']}")
            for name, entries in c["maps"].items():
                if entries:
                    out.append(f"  map {name}: " + ", ".join(f"{k}: {v}"
                                                            for k, v in entries.items()))
            for side in ("original", "transformed"):
                r = c[side]
                out.append(f"  {side}: " + ", ".join(f"{k} = {v}" for k, v in r.items()
                                                     if k != "maps" or v))
            k = c["kernel"]
            if k is not None and k["ran"]:
                shows = "shows the difference" if k["confirmed"] else \
                    "does not show the difference"
                out.append(f"  kernel (BPF_PROG_TEST_RUN): {shows}: original r0 = "
                           f"{k['original']['r0']}, transformed r0 = {k['transformed']['r0']}")
            elif k is not None:
                out.append(f"  kernel: not run: {k['reason']}")
    return "\n".join(out)


__all__ = ["Verdict", "exit_code", "prove_report", "render_prove"]
