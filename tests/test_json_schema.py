"""The --json output has exactly the keys docs/json.md documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import progs
from cli import epass

DOC = Path(__file__).resolve().parents[1] / "docs" / "json.md"


def documented() -> dict[str, dict[str, str]]:
    """schema name -> {key: type}, from the tables that follow `<!-- schema: NAME -->`."""
    schemas: dict[str, dict[str, str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        marker = re.match(r"<!-- schema: ([\w.]+) -->", line)
        if marker:
            current = marker.group(1)
            schemas[current] = {}
        elif current and line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            schemas[current][cells[0].strip("`")] = cells[1]
        elif current and not line.strip():
            current = None
    return schemas


SCHEMAS = documented()
SCALARS = {"int": int, "string": str, "bool": bool, "float": float}


def type_ok(value: object, declared: str) -> bool:
    """Whether `value` has the documented type: `int`, `string or null`, `array of x`, ..."""
    if declared.endswith(" or null"):
        return value is None or type_ok(value, declared[: -len(" or null")])
    if declared == "float":
        return type(value) in (int, float)
    if declared in SCALARS:
        # bool is an int in Python: keep them apart
        return type(value) is SCALARS[declared]
    if declared.startswith("array of "):
        return isinstance(value, list)
    return isinstance(value, dict)  # "object" and named sub-schemas


def check(schema: str, value: dict, optional: frozenset[str] = frozenset()) -> None:
    keys = set(SCHEMAS[schema])
    assert set(value) | (keys & optional) == keys, schema
    for key, item in value.items():
        assert type_ok(item, SCHEMAS[schema][key]), (schema, key, item)


def test_docs_have_the_schemas():
    assert {"read", "read.program", "read.insn", "verify", "verify.result",
            "verify.error"} <= set(SCHEMAS)


@progs.skip_without_clang
def test_read_json(built_progs):
    run = epass("read", str(built_progs["global_data", "v3"]), "--json")
    assert run.code == 0
    doc = run.json()
    check("read", doc)
    for m in doc["maps"]:
        check("read.map", m)
    (prog,) = doc["programs"]
    check("read.program", prog)
    for f in prog["functions"]:
        check("read.function", f)
    assert any(i["map"] for i in prog["insns"]) and any(i["source"] for i in prog["insns"])
    for insn in prog["insns"]:
        check("read.insn", insn)
        if insn["source"]:
            check("read.source", insn["source"])
        if insn["map"]:
            check("read.mapref", insn["map"])


@progs.skip_without_clang
@pytest.mark.parametrize("flags", [(), ("--log",)])
def test_verify_json(built_progs, bpf_permitted, flags):
    run = epass("verify", str(built_progs["reject_null_deref", "v3"]), "--json", *flags)
    assert run.code == 1
    doc = run.json()
    check("verify", doc)
    (result,) = doc["programs"]
    check("verify.result", result, optional=frozenset() if flags else frozenset({"log"}))
    assert ("log" in result) == bool(flags)
    check("verify.error", result["error"])
    check("read.source", result["error"]["source"])


@progs.skip_without_clang
def test_run_json(built_progs, bpf_permitted):
    run = epass("run", str(built_progs["xdp_map_counter", "v3"]), "--kernel", "--json")
    assert run.code == 0, run.err
    doc = run.json()
    check("run", doc)
    check("run.interp", doc["interpreter"])
    check("run.kernel", doc["kernel"])


def test_conformance_json():
    suite = Path(__file__).parent / "data" / "bpf_conformance" / "negative"
    doc = epass("conformance", str(suite), "--negative", "--json").json()
    check("conformance", doc)
    for case in doc["cases"]:
        check("conformance.case", case)


@progs.skip_without_clang
def test_read_ir_json(built_progs):
    doc = epass("read", str(built_progs["subprog_calls", "v3"]), "--ir", "--json").json()
    check("read_ir", doc)
    for prog in doc["programs"]:
        check("read_ir.program", prog)


@progs.skip_without_clang
def test_compile_json(built_progs, tmp_path):
    run = epass("compile", str(built_progs["two_sections", "v3"]), "-o", str(tmp_path / "o.o"),
                "--json")
    assert run.code == 0, run.err
    doc = run.json()
    check("compile", doc)
    assert len(doc["programs"]) == 2
    for prog in doc["programs"]:
        check("compile.program", prog)


@progs.skip_without_clang
def test_prove_json(built_progs, tmp_path):
    from dataclasses import replace

    from epass.isa import Goto, Store
    from epass.obj.reader import read_object
    from epass.obj.writer import write_object

    src = str(built_progs["xdp_rewrite", "v3"])
    obj = read_object(src)
    (program,) = obj.programs
    insns = list(program.insns)
    k = next(i for i, insn in enumerate(insns) if isinstance(insn, Store))
    insns[k] = Goto(0)
    (tmp_path / "t.o").write_bytes(write_object(obj, {program.name: replace(program,
                                                                             insns=insns)}))
    run = epass("prove", src, str(tmp_path / "t.o"), "--json")
    assert run.code == 1, run.err
    doc = run.json()
    check("prove", doc)
    (result,) = doc["programs"]
    check("prove.result", result)
    check("prove.counterexample", result["counterexample"])



@progs.skip_without_clang
def test_prove_json_with_aborts(built_progs, tmp_path):
    src = str(built_progs["v4_insns", "v4"])
    out = str(tmp_path / "checked.o")
    assert epass("compile", src, "-o", out, "-p", "div_by_zero").code == 0
    run = epass("prove", src, out, "--json")
    assert run.code == 0, run.err
    (result,) = run.json()["programs"]
    check("prove.result", result)
    # four divisions by registers the program keeps non-zero: no abort can fire
    assert [(a["fires"], a["packet"]) for a in result["aborts"]] == [(False, None)] * 4
    for site in result["aborts"]:
        check("prove.abort", site)
