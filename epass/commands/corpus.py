"""`epass corpus run`: repair every case of a corpus and tabulate what happened.

A corpus directory holds cases (corpus/README.md): `<kind>/<case>/prog.o` with a
`case.toml`, where kind is `false_rejections` or `true_bugs`. A case directory,
or a directory of cases, may be given instead of the whole corpus.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import Progress

from epass.commands.verify import require_bpf
from epass.errors import EpassError
from epass.obj.reader import read_object
from epass.repair import Options, repair


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # false_rejections | true_bugs
    path: Path  # the case directory
    meta: dict[str, Any]


def find_cases(root: str) -> list[Case]:
    base = Path(root)
    if not base.is_dir():
        raise EpassError(f"{root}: no such directory")
    dirs = [base] if (base / "case.toml").exists() else sorted(
        p.parent for p in base.rglob("case.toml"))
    cases = []
    for d in dirs:
        try:
            meta = tomllib.loads((d / "case.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise EpassError(f"{d / 'case.toml'}: {e}") from None
        kind = "true_bugs" if "bug" in meta else "false_rejections"
        cases.append(Case(d.name, kind, d, meta))
    if not cases:
        raise EpassError(f"{root}: no case (a directory with case.toml and prog.o)")
    return cases


def run_case(case: Case, options: Options) -> dict[str, Any]:
    obj = read_object(str(case.path / "prog.o"))
    program = obj.programs[0]
    r = repair(obj, program, options)
    if r.status == "true_bug" and r.bug is not None:
        outcome = "refused" if r.bug.confirmed else "refused (not confirmed)"
    else:
        outcome = r.status
    return {"case": case.name, "kind": case.kind, "family": case.meta.get("family"),
            "expected_strategy": case.meta.get("strategy"),
            "rejected": r.status != "already_accepted", "status": r.status,
            "outcome": outcome,
            "strategies": [x.strategy for x in r.rounds if x.strategy is not None],
            "proof": r.proof.verdict.value if r.proof is not None else None,
            "rounds": len(r.rounds), "safety": r.safety,
            "counterexample": r.bug.packet.hex() if r.bug is not None else None,
            "first_error": r.first_error.message if r.first_error is not None else None,
            "time_ms": round(r.time_ms, 3)}


def corpus_report(root: str, options: Options, progress: bool) -> dict[str, Any]:
    require_bpf()
    cases = find_cases(root)
    rows = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("repairing", total=len(cases))
        for case in cases:
            bar.update(task, description=case.name)
            try:
                rows.append(run_case(case, options))
            except EpassError as e:
                raise e.at(file=str(case.path / "prog.o")) from None
            bar.advance(task)
    return {"root": root, "cases": rows, "summary": summary(rows)}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    fr = [r for r in rows if r["kind"] == "false_rejections" and r["rejected"]]
    bugs = [r for r in rows if r["kind"] == "true_bugs"]
    repaired = [r for r in fr if r["status"] == "repaired" and r["proof"] == "equivalent"]
    return {"false_rejections": len(fr), "repaired": len(repaired),
            "accepted_already": sum(1 for r in rows if not r["rejected"]),
            "true_bugs": len(bugs),
            "refused": sum(1 for r in bugs if r["outcome"] == "refused"),
            "bugs_accepted": sum(1 for r in bugs if r["status"] == "repaired")}


def render_corpus(report: dict[str, Any]) -> str:
    head = ("case", "family", "rejected", "outcome", "proof", "rounds", "time")
    lines = [[r["case"], r["family"] or "-", "yes" if r["rejected"] else "no", r["outcome"],
              r["proof"] or "-", str(r["rounds"]), f"{r['time_ms'] / 1000:.1f} s"]
             for r in report["cases"]]
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in lines]
    s = report["summary"]
    rate = f" ({s['repaired'] / s['false_rejections']:.0%})" if s["false_rejections"] else ""
    out.append(f"false rejections: {s['repaired']} of {s['false_rejections']} rejected by this "
               f"kernel repaired and proven EQUIVALENT{rate}; {s['accepted_already']} cases "
               f"accepted already; true bugs: {s['refused']} of {s['true_bugs']} refused with a "
               f"confirmed counterexample, {s['bugs_accepted']} turned into accepted programs")
    return "\n".join(out)


def exit_code(report: dict[str, Any]) -> int:
    """0 when every false rejection was repaired and no true bug was accepted."""
    s = report["summary"]
    return 0 if s["repaired"] == s["false_rejections"] and s["bugs_accepted"] == 0 else 1
