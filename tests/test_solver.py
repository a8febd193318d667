"""epass.smt.solver: the portfolio of an incremental and a fresh Z3 solver.

The fresh route is forced by letting the incremental solver have no conflicts
at all (Z3's `max_conflicts`): it then answers unknown to anything that needs
a search, and the answer must come from the fresh solver in its own context.
"""

from __future__ import annotations

import time

import pytest
import z3

from epass.smt.solver import PortfolioSolver

X, Y = z3.BitVecs("x y", 16)


def factors(solver: PortfolioSolver, n: int) -> None:
    """x * y == n with 1 < x <= y, the product taken without wrapping."""
    solver.add(z3.ZeroExt(16, X) * z3.ZeroExt(16, Y) == n, z3.UGT(X, 1), z3.UGT(Y, 1),
               z3.ULE(X, Y))


def without_incremental() -> PortfolioSolver:
    solver = PortfolioSolver(20_000)
    solver._incremental.set("max_conflicts", 0)
    return solver


def test_the_incremental_route_finds_a_model():
    solver = PortfolioSolver(20_000)
    factors(solver, 251 * 241)
    assert solver.check() == z3.sat
    model = solver.model()
    assert (model.eval(X).as_long(), model.eval(Y).as_long()) == (241, 251)


def test_the_fresh_route_answers_and_its_model_is_in_the_main_context():
    solver = without_incremental()
    factors(solver, 251 * 241)
    assert solver._incremental.check() == z3.unknown  # the incremental solver cannot
    assert solver.check() == z3.sat
    model = solver.model()
    # the model was translated back: it evaluates the caller's terms
    assert model.eval(X * 1).ctx is z3.main_ctx()
    assert (model.eval(X).as_long(), model.eval(Y).as_long()) == (241, 251)


def test_the_fresh_route_proves_unsat_with_assumptions():
    solver = without_incremental()
    factors(solver, 65521)  # a prime
    assert solver.check() == z3.unsat
    with pytest.raises(z3.Z3Exception, match="no model"):
        solver.model()
    solver = without_incremental()
    factors(solver, 251 * 241)
    assert solver.check(X == 251) == z3.unsat  # x <= y: 241 * 251 only
    assert solver.check(X == 241) == z3.sat


def test_a_check_ends_within_its_time():
    solver = without_incremental()
    # 13 pigeons in 12 holes, as clauses: unsat, and a proof by resolution (what both
    # routes search for) is exponential, so the answer is unknown at the time bound
    pigeons, holes = 13, 12
    at = [[z3.Bool(f"p{i}h{j}") for j in range(holes)] for i in range(pigeons)]
    solver.add(*(z3.Or(*row) for row in at))
    solver.add(*(z3.Or(z3.Not(at[i][j]), z3.Not(at[k][j]))
                 for j in range(holes) for i in range(pigeons) for k in range(i + 1, pigeons)))
    started = time.perf_counter()
    assert solver.check(seconds=0.3) == z3.unknown
    assert time.perf_counter() - started < 10  # not the hours the proof would take


def test_facts_added_after_a_fresh_check_reach_the_fresh_solver():
    solver = without_incremental()
    factors(solver, 251 * 241)
    assert solver.check() == z3.sat  # the fresh route: the facts so far go over
    solver.add(z3.ULT(Y, 250))  # only 241 * 251 is left, and it needs y = 251
    assert solver._incremental.check() == z3.unknown
    assert solver.check() == z3.unsat
