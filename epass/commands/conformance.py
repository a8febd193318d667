"""`epass conformance`: run a bpf_conformance directory on our semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.progress import Progress

from epass.errors import EpassError
from epass.isa.asm import load_case
from epass.semantics.conformance import CaseResult, run_case


def conformance_report(directory: Path, *, symbolic: bool, negative: bool,
                       progress: bool) -> dict[str, Any]:
    if not directory.is_dir():
        raise EpassError("not a directory", file=str(directory))
    paths = sorted(directory.glob("*.data"))
    if not paths:
        raise EpassError("no .data files (bpf_conformance cases) here", file=str(directory))
    results: list[CaseResult] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("conformance", total=len(paths))
        for path in paths:
            try:
                results.append(run_case(load_case(path), symbolic, negative))
            except EpassError as e:
                results.append(CaseResult(path.stem, "passed" if negative else "failed",
                                          None, None, e.line()))
            bar.advance(task)
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "skipped")}
    return {
        "directory": str(directory),
        "engine": "z3" if symbolic else "interpreter",
        "negative": negative,
        **counts,
        "total": len(results),
        "cases": [{"name": r.name, "status": r.status, "expected": r.expected, "got": r.got,
                   "reason": r.reason} for r in results],
    }


def render_conformance(report: dict[str, Any]) -> str:
    out = []
    for case in report["cases"]:
        if case["status"] == "passed":
            continue
        detail = case["reason"]
        if case["status"] == "failed" and case["expected"] is not None:
            got = "nothing" if case["got"] is None else f"0x{case['got']:x}"
            detail = f"expected 0x{case['expected']:x}, got {got}" + (
                f" ({case['reason']})" if case["reason"] else "")
        out.append(f"{case['status'].upper()} {case['name']}: {detail}")
    out.append(f"{report['directory']} ({report['engine']}): {report['passed']} passed, "
               f"{report['failed']} failed, {report['skipped']} skipped of {report['total']}")
    return "\n".join(out)
