"""`epass read`: each program's instructions with source lines and map references."""

from __future__ import annotations

from typing import Any

from epass.isa import encode_one, format_insn, slot_count
from epass.obj.btf_ext import LineInfo
from epass.obj.model import BpfObject, MapRef, Program


def source_json(line: LineInfo | None) -> dict[str, Any] | None:
    if line is None:
        return None
    return {"file": line.file_name, "line": line.line_num, "column": line.line_col,
            "text": line.line}


def map_ref_json(ref: MapRef) -> dict[str, Any]:
    return {"name": ref.map, "value": ref.value, "offset": ref.offset}


def program_header(prog: Program) -> dict[str, Any]:
    kind = prog.kind
    return {
        "name": prog.name,
        "section": prog.section,
        "prog_type": kind.prog_type.name.lower() if kind else None,
        "expected_attach_type": (kind.expected_attach_type.name.lower()
                                 if kind and kind.expected_attach_type else None),
        "attach_target": kind.attach_target if kind else None,
    }


def program_report(prog: Program) -> dict[str, Any]:
    refs = {ref.insn: ref for ref in prog.map_refs}
    lines = {li.insn: li for li in prog.line_info}
    insns = []
    slot = 0
    for insn in prog.insns:
        placement = prog.placement_of(slot)
        insns.append({
            "index": slot,
            "text": format_insn(insn),
            "raw": encode_one(insn).hex(),
            "function": placement.name if placement else None,
            "source": source_json(lines.get(slot)),
            "map": map_ref_json(refs[slot]) if slot in refs else None,
        })
        slot += slot_count(insn)
    return {
        **program_header(prog),
        "insn_count": slot,
        "functions": [{"name": p.name, "section": p.section, "start": p.start,
                       "slots": p.slots} for p in prog.functions],
        "core_relocations": prog.core_relos_applied,
        "insns": insns,
    }


def read_report(obj: BpfObject, programs: list[Program]) -> dict[str, Any]:
    return {
        "file": obj.path,
        "license": obj.license,
        "maps": [{"name": m.name, "type": m.type, "key_size": m.key_size,
                  "value_size": m.value_size, "max_entries": m.max_entries,
                  "flags": m.flags, "origin": m.origin.value} for m in obj.maps],
        "programs": [program_report(p) for p in programs],
        "warnings": list(obj.warnings),
    }


def render_read(report: dict[str, Any]) -> str:
    out = []
    for prog in report["programs"]:
        out.append(f"{report['file']}: {prog['section']}/{prog['name']} "
                   f"({prog['prog_type']}, {prog['insn_count']} insns)")
        starts = {f["start"]: f["name"] for f in prog["functions"][1:]}
        last_line = None
        for insn in prog["insns"]:
            if insn["index"] in starts:
                out.append(f"{starts[insn['index']]}:")
                last_line = None
            src = insn["source"]
            # like llvm-objdump -S: a source line once, where it starts
            if src is not None and src["text"] and (src["file"], src["line"]) != last_line:
                out.append(f"; {src['text'].strip()} @ {src['file']}:{src['line']}")
                last_line = (src["file"], src["line"])
            text = f"{insn['index']:>5}: {insn['text']}"
            ref = insn["map"]
            if ref is not None:
                target = f"{ref['name']}+{ref['offset']}" if ref["value"] else ref["name"]
                text = f"{text:<44} ; {'&' if ref['value'] else 'map '}{target}"
            out.append(text)
        out.append("")
    return "\n".join(out)


def ir_report(obj: BpfObject, programs: list[Program]) -> dict[str, Any]:
    from epass.errors import EpassError
    from epass.ir.lift import lift_program
    from epass.ir.text import format_module

    out = []
    for p in programs:
        try:
            module = lift_program(p, obj.maps)
        except EpassError as e:
            raise e.at(file=obj.path, section=p.section) from None
        out.append({**program_header(p), "functions": [f.name for f in module.functions],
                    "blocks": sum(len(f.blocks) for f in module.functions),
                    "ir": format_module(module, lines=True)})
    return {"file": obj.path, "programs": out}


def render_ir(report: dict[str, Any]) -> str:
    return "\n".join(p["ir"] for p in report["programs"]).rstrip("\n")
