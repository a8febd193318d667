"""bpf_conformance on our semantics: every case, on the interpreter and on Z3."""

from __future__ import annotations

from pathlib import Path

import pytest

from epass.isa.asm import load_case
from epass.semantics.conformance import run_case

from cli import epass

SUITE = Path(__file__).parent / "data" / "bpf_conformance"
POSITIVE = sorted((SUITE / "tests").glob("*.data"))
NEGATIVE = sorted((SUITE / "negative").glob("*.data"))


def test_suite_sizes():
    assert (len(POSITIVE), len(NEGATIVE)) == (313, 60)


@pytest.mark.parametrize("symbolic", [False, True], ids=["interpreter", "z3"])
@pytest.mark.parametrize("path", POSITIVE, ids=[p.stem for p in POSITIVE])
def test_positive_case(path, symbolic):
    case = load_case(path)
    result = run_case(case, symbolic=symbolic)
    assert (result.status, result.got) == ("passed", case.result), result.reason


@pytest.mark.parametrize("symbolic", [False, True], ids=["interpreter", "z3"])
def test_every_negative_case_is_refused_or_fails(symbolic):
    from epass.semantics.conformance import run_directory

    results = run_directory(SUITE / "negative", symbolic=symbolic, negative=True)
    assert [r.name for r in results if r.status != "passed"] == []
    # the one valid program with a wrong expected result runs and is caught by its value
    (wrong,) = [r for r in results if r.name == "incorrect_return_value_high_bits"]
    assert wrong.got == 0x8877665544332211 != wrong.expected


@pytest.mark.parametrize("engine", [(), ("--symbolic",)], ids=["interpreter", "z3"])
def test_cli_json(engine):
    run = epass("conformance", str(SUITE / "tests"), "--json", *engine)
    assert run.code == 0, run.err
    doc = run.json()
    assert (doc["passed"], doc["failed"], doc["skipped"], doc["total"]) == (313, 0, 0, 313)
    assert doc["engine"] == ("z3" if engine else "interpreter")
    assert set(doc["cases"][0]) == {"name", "status", "expected", "got", "reason"}


def test_cli_fails_when_a_case_fails():
    run = epass("conformance", str(SUITE / "negative"))
    assert run.code == 1
    assert "FAILED incorrect_return_value_high_bits: expected 0x8977665544332211, got " \
           "0x8877665544332211" in run.out
    assert run.out.splitlines()[-1].endswith("49 passed, 11 failed, 0 skipped of 60")


def test_cli_bad_directory(tmp_path):
    run = epass("conformance", str(tmp_path))
    assert run.code == 2
    assert run.err == f"epass: error: {tmp_path}: no .data files (bpf_conformance cases) here\n"
