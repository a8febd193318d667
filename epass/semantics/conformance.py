"""Running bpf_conformance cases on the interpreter or on the Z3 encoding.

A positive case passes when r0 equals its `-- result`; on the Z3 encoding
the case's memory is a constraint on the initial memory and the model of r0
must be unique. A negative case (one with `-- error`, or any case of a run
asked to be negative, like bpf_conformance's `negative/` directory) passes
when it is refused by the assembler or decoder, faults when run, or does
not give its `-- result`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import z3

from epass.errors import EpassError
from epass.isa.asm import ConformanceCase, load_case
from epass.semantics import step as st
from epass.semantics.helpers import CONFORMANCE_HELPERS
from epass.semantics.interp import Environment, run
from epass.semantics.memory import MEM_BASE, MemoryFault
from epass.semantics.symbolic import conformance_helpers, run_symbolic


@dataclass(frozen=True)
class CaseResult:
    name: str
    status: str  # "passed", "failed", "skipped"
    expected: int | None
    got: int | None
    reason: str = ""


def _interpret(case: ConformanceCase) -> tuple[int | None, str]:
    result = run(case.program(), Environment(mem=case.mem, helper_table=CONFORMANCE_HELPERS,
                                             indirect_calls=True))
    if result.fault is not None:
        return None, str(result.fault)
    return result.r0, ""


def _solve(case: ConformanceCase) -> tuple[int | None, str]:
    res = run_symbolic(case.program(), mem_size=len(case.mem), helpers=conformance_helpers(),
                       indirect_calls=True)
    if not res.complete:
        return None, "a path reached the step bound"
    solver = z3.Solver()
    for i, byte in enumerate(case.mem):
        solver.add(z3.Select(res.memory0, z3.BitVecVal(MEM_BASE + i, 64)) == byte)
    if solver.check() != z3.sat:
        return None, "no model"
    r0 = solver.model().eval(res.r0, model_completion=True).as_long()
    solver.add(res.r0 != r0)
    if solver.check() != z3.unsat:
        return None, f"r0 is not unique: {r0} and more"
    return r0, ""


def run_case(case: ConformanceCase, symbolic: bool = False,
             negative: bool = False) -> CaseResult:
    negative = negative or case.error is not None
    try:
        got, reason = _solve(case) if symbolic else _interpret(case)
    except MemoryFault as e:
        got, reason = None, str(e)
    except st.Unsupported as e:
        return CaseResult(case.name, "skipped", case.result, None, str(e))
    except EpassError as e:
        status = "passed" if negative else "failed"
        return CaseResult(case.name, status, case.result, None, e.line())
    matched = got is not None and got == case.result
    if negative:
        return CaseResult(case.name, "failed" if matched else "passed", case.result, got,
                          "a negative case ran and gave its result" if matched else reason)
    return CaseResult(case.name, "passed" if matched else "failed", case.result, got, reason)


def run_directory(directory: Path, symbolic: bool = False,
                  negative: bool = False) -> list[CaseResult]:
    results = []
    for path in sorted(directory.glob("*.data")):
        try:
            case = load_case(path)
        except EpassError as e:
            status = "passed" if negative else "failed"
            results.append(CaseResult(path.stem, status, None, None, e.line()))
            continue
        results.append(run_case(case, symbolic, negative))
    return results
