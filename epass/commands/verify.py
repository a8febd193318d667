"""`epass verify`: submit each program to the running kernel's verifier."""

from __future__ import annotations

from typing import Any

from epass.commands.read import program_header, source_json
from epass.errors import EpassError, KernelError
from epass.kernel import syscall
from epass.kernel.loader import ProgramLoad, open_object
from epass.kernel.verifier_log import parse_log
from epass.obj.model import BpfObject, Program

LOG_TAIL = 1 << 16


def require_bpf() -> None:
    """One clear line (exit 2) when this process may not use bpf()."""
    reason = syscall.bpf_permitted()
    if reason is not None:
        raise KernelError(reason)


def load_report(load: ProgramLoad, with_log: bool) -> dict[str, Any]:
    """The verdict of one load, as `epass verify --json` prints it."""
    # the verdict, the error block and the statistics are at the end: a level 2 log can
    # be hundreds of MB, so only its tail is parsed (its first, cut line is harmless)
    log = parse_log(load.log[-LOG_TAIL:])
    error = None
    if not load.accepted:
        error = {"insn": None, "message": None, "class": "unknown", "source": None}
        if log.error is not None:
            error.update(insn=log.error.insn, message=log.error.message,
                         **{"class": log.error.error_class.value})
            if log.error.insn is not None:
                error["source"] = source_json(load.program.line_at(log.error.insn))
        if not error["message"]:
            if log.processed_insns is not None:
                # the verifier ran, but this log level does not say why
                error["message"] = (f"rejected ({syscall.errno_text(load.errno)}); rerun with "
                                    "--log-level 1 for the reason")
            else:
                error["message"] = ("the kernel refused the program before verifying it: "
                                    f"{syscall.errno_text(load.errno)}")
    report = {
        **program_header(load.program),
        "accepted": load.accepted,
        "errno": load.errno,
        "error": error,
        "insn_count": load.insn_count,
        "xlated_insn_count": load.xlated_count,
        "processed_insns": log.processed_insns,
        "verified_insns": load.verified_insns,
        "verification_time_us": log.verification_time_us,
        "stack_depth": list(log.stack_depth),
    }
    if with_log:
        report["log"] = load.log
    return report


def verify_report(obj: BpfObject, programs: list[Program], *, log_level: int,
                  with_log: bool) -> dict[str, Any]:
    require_bpf()
    results = []
    try:
        loaded = open_object(obj)
    except EpassError as e:
        raise e.at(file=obj.path) from None
    with loaded:
        for prog in programs:
            load = loaded.load_program(prog, log_level=log_level)
            results.append(load_report(load, with_log))
        warnings = list(obj.warnings) + list(loaded.warnings)
    accepted = sum(r["accepted"] for r in results)
    return {
        "file": obj.path,
        "log_level": log_level,
        "programs": results,
        "accepted": accepted,
        "rejected": len(results) - accepted,
        "warnings": warnings,
    }


def render_verify(report: dict[str, Any]) -> str:
    out = []
    for prog in report["programs"]:
        name = f"{report['file']}: {prog['section']}/{prog['name']}"
        stats = [f"{prog['insn_count']} insns"]
        if prog["processed_insns"] is not None:
            stats.append(f"{prog['processed_insns']} processed")
        if prog["verification_time_us"] is not None:
            stats.append(f"{prog['verification_time_us']} us")
        if prog["accepted"]:
            out.append(f"{name}: accepted ({', '.join(stats)})")
        else:
            err = prog["error"]
            where = f" at insn {err['insn']}" if err["insn"] is not None else ""
            out.append(f"{name}: rejected{where}: {err['message']} [{err['class']}] "
                       f"({', '.join(stats)})")
            src = err["source"]
            if src is not None:
                out.append(f"    {src['file']}:{src['line']}: {src['text'].strip()}")
        if "log" in prog:
            out.append(prog["log"].rstrip())
    for warning in report["warnings"]:
        out.append(f"warning: {warning}")
    return "\n".join(out)
