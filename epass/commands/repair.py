"""`epass repair`: make the kernel accept a falsely rejected program, with a proof that
it behaves exactly as before (or explain why not)."""

from __future__ import annotations

import os
from typing import Any

from epass.commands.compile import slots
from epass.commands.read import program_header, source_json
from epass.commands.verify import require_bpf
from epass.errors import EpassError
from epass.kernel.verifier_log import VerifierError
from epass.obj.model import BpfObject, Program
from epass.obj.writer import write_object
from epass.repair import Options, RepairResult, repair
from epass.smt import ProofResult

# status -> exit code: 0 accepted (repaired or already), 1 not repaired, 3 proof unknown
EXIT = {"already_accepted": 0, "repaired": 0, "true_bug": 1, "no_strategy": 1,
        "max_rounds": 1, "proof_unknown": 3}
STATUS_TEXT = {
    "already_accepted": "already accepted by this kernel: nothing to repair",
    "repaired": "repaired",
    "true_bug": "not repaired: a true bug",
    "no_strategy": "not repaired: no strategy gets the verifier further with a proven rewrite",
    "max_rounds": "not repaired: still rejected after the last round",
    "proof_unknown": "not repaired: Z3 could not decide whether the rewrite keeps behaviour",
}


def _error_json(e: VerifierError | None, program: Program) -> dict[str, Any] | None:
    if e is None:
        return None
    line = program.line_at(e.insn) if e.insn is not None else None
    return {"insn": e.insn, "message": e.message, "class": e.error_class.value,
            "source": source_json(line)}


def _proof_json(p: ProofResult | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"verdict": p.verdict.value, "reason": p.reason, "time_ms": round(p.time_ms, 3)}


def program_json(original: Program, r: RepairResult) -> dict[str, Any]:
    rounds = []
    before = original
    for x in r.rounds:
        rounds.append({
            "round": x.number, "error": _error_json(x.error, before),
            "strategy": x.strategy, "candidate": x.candidate,
            "changes": [{"before": [[s, t] for s, t in c.before],
                         "after": [[s, t] for s, t in c.after]} for c in x.changes],
            "proof": _proof_json(x.proof),
            "verdict": "accepted" if x.accepted else "rejected", "tried": x.tried})
        before = x.program if x.program is not None else before
    bug = None
    if r.bug is not None:
        bug = {"packet": r.bug.packet.hex(), "ctx": r.bug.ctx.hex(),
               "maps": {m: {k.hex(): v.hex() for k, v in e.items()} for m, e in r.bug.maps.items()},
               "fault": r.bug.run.get("fault"), "confirmed": r.bug.confirmed}
    return {**program_header(original), "status": r.status, "safety": r.safety,
            "first_error": _error_json(r.first_error, original), "rounds": rounds,
            "proof": _proof_json(r.proof), "bug": bug, "insns_before": slots(original),
            "insns_after": slots(r.program), "time_ms": round(r.time_ms, 3)}


def repair_report(obj: BpfObject, programs: list[Program], output: str | None,
                  options: Options) -> dict[str, Any]:
    require_bpf()
    rows, repaired = [], {}
    for p in programs:
        try:
            result = repair(obj, p, options)
        except EpassError as e:
            raise e.at(file=obj.path, section=p.section) from None
        rows.append(program_json(p, result))
        if result.status == "repaired":
            repaired[p.name] = result.program
    written = None
    # nothing is written that the kernel did not accept: every program must load
    if output is not None and rows and all(EXIT[r["status"]] == 0 for r in rows):
        try:
            with open(output, "wb") as f:
                f.write(write_object(obj, repaired))
        except OSError as e:
            raise EpassError(f"cannot write {output}: {e.strerror}") from None
        written = output
    worst = max((r["status"] for r in rows), key=lambda s: (EXIT[s] == 1, EXIT[s]),
                default="already_accepted")
    return {"file": obj.path, "output": written, "status": worst, "programs": rows}


def exit_code(report: dict[str, Any]) -> int:
    codes = {EXIT[r["status"]] for r in report["programs"]}
    return 1 if 1 in codes else 3 if 3 in codes else 0


def _where(e: dict[str, Any] | None) -> list[str]:
    if e is None or e["source"] is None:
        return []
    s = e["source"]
    return [f"    {os.path.relpath(s['file']) if s['file'].startswith('/') else s['file']}:"
            f"{s['line']}: {s['text'].strip()}"]


def render_repair(report: dict[str, Any]) -> str:
    out = []
    for row in report["programs"]:
        head = f"{report['file']}: {row['section']}/{row['name']}"
        e = row["first_error"]
        if e is None:
            out.append(f"{head}: {STATUS_TEXT[row['status']]}")
            continue
        out.append(f"{head}: rejected at insn {e['insn']}: {e['message']} [{e['class']}]")
        out += _where(e)
        out.append(f"  Z3 on the original: {_safety_text(row['safety'])}")
        for rnd in row["rounds"]:
            err = rnd["error"]
            out.append(f"round {rnd['round']}: insn {err['insn']}: {err['message']} "
                       f"[{err['class']}]")
            if rnd["strategy"] is None:
                out += [f"  tried {t}" for t in rnd["tried"]] or ["  no strategy applies"]
                continue
            out.append(f"  strategy {rnd['strategy']}: {rnd['candidate']}")
            for change in rnd["changes"]:
                out += [f"    - {s:4}: {t}" for s, t in change["before"]]
                out += [f"    + {s:4}: {t}" for s, t in change["after"]]
            proof = rnd["proof"]
            out.append(f"  proof: {proof['verdict'].upper()} ({proof['reason']})")
            out.append(f"  verifier: {rnd['verdict']}")
        if row["bug"] is not None:
            bug = row["bug"]
            out.append("  true bug: on this input the original leaves its memory regions")
            out.append(f"    packet: {bug['packet']}")
            out.append(f"    interpreter: {bug['fault']}"
                       + ("" if bug["confirmed"] else " (not confirmed by the replay)"))
        summary = STATUS_TEXT[row["status"]]
        if row["status"] == "repaired":
            n = len(row["rounds"])
            summary += (f" in {n} round{'s' if n != 1 else ''}, proof "
                        f"{row['proof']['verdict'].upper()}, {row['insns_before']} -> "
                        f"{row['insns_after']} insns")
        out.append(f"{summary} ({row['time_ms'] / 1000:.1f} s)")
    if report["output"] is not None:
        out.append(f"wrote {report['output']}")
    elif any(r["status"] == "repaired" for r in report["programs"]):
        out.append("nothing written: not every program is accepted")
    return "\n".join(out)


def _safety_text(safety: str) -> str:
    if safety == "safe":
        return "no input makes it leave its memory regions"
    if safety == "unsafe":
        return "some input makes it leave its memory regions"
    return safety
