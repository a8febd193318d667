"""A solver that asks each question two ways at once and takes the first answer.

Z3 answers a solver's first check with no push and no assumptions by its
non-incremental route: the whole query is simplified and bit-blasted to SAT.
Once a solver has been pushed or checked under assumptions it stays on its
incremental core. Neither wins everywhere on our queries:

- pow2_round_down_loop's r0 check (path conditions of an unrolled loop, r0 a
  chain of `If`s over 138 paths) takes 4.4 s incrementally and 0.04 s fresh;
- the many small checks of a proof take a few ms incrementally, and a fresh
  solver costs some 10 ms each to set up; maps_btf's maps check is faster
  incrementally too (what the solver learnt of the shared facts serves every
  later part of a split check).

So a check the incremental solver (under assumptions) does not answer within
QUICK_MS runs on both: the incremental solver again, in this thread, and a
fresh solver in a Z3 context of its own (Z3 contexts may be used from
different threads), in another. The first answer wins and interrupts the
other. The facts every check shares are translated into that context once, when
a check first needs the fresh solver (most never do).
"""

from __future__ import annotations

import threading
from typing import Any

import z3

INTERRUPT_EVERY = 0.002  # seconds between interrupts of the check that lost
QUICK_MS = 20  # the incremental solver alone first: most checks take a few ms


class PortfolioSolver:
    """z3.Solver's `add`, `check(*assumptions)`, `model()` and `assertions()`. A check
    goes to the incremental solver for QUICK_MS, then to it and to a fresh solver at
    once; `timeout_ms` (or `seconds`) bounds the whole check."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.facts: list[Any] = []
        self._model: Any = None
        self._incremental = z3.Solver()
        self._ctx = z3.Context()
        self._facts_there: list[Any] = []  # self.facts so far, translated into self._ctx

    def add(self, *facts: Any) -> None:
        self.facts.extend(facts)
        self._incremental.add(*facts)

    def assertions(self) -> list[Any]:
        return list(self.facts)

    def check(self, *extra: Any, seconds: float | None = None) -> Any:
        """sat, unsat or unknown for the facts and `extra`, within `seconds` (default:
        `timeout_ms`)."""
        ms = max(1, self.timeout_ms if seconds is None else int(seconds * 1000))
        self._incremental.set("timeout", min(ms, QUICK_MS))
        answer = self._incremental.check(*extra)
        if answer != z3.unknown or ms <= QUICK_MS:
            self._model = self._incremental.model() if answer == z3.sat else None
            return answer
        ms -= QUICK_MS
        done = len(self._facts_there)
        self._facts_there.extend(f.translate(self._ctx) for f in self.facts[done:])
        fresh = z3.Solver(ctx=self._ctx)
        fresh.set("timeout", ms)
        fresh.add(*self._facts_there, *(e.translate(self._ctx) for e in extra))
        answers: dict[str, Any] = {}
        main_done = threading.Event()

        def run_fresh() -> None:
            try:
                answers["fresh"] = fresh.check()
            except z3.Z3Exception:  # out of memory and the like: the other may answer
                answers["fresh"] = z3.unknown
            # an interrupt that comes before the other check starts is lost: repeat it
            while answers["fresh"] != z3.unknown and not main_done.is_set():
                self._incremental.interrupt()
                main_done.wait(INTERRUPT_EVERY)

        thread = threading.Thread(target=run_fresh, daemon=True)
        thread.start()
        self._incremental.set("timeout", ms)
        answer = self._incremental.check(*extra)
        main_done.set()
        while answer != z3.unknown and thread.is_alive():
            fresh.interrupt()
            thread.join(INTERRUPT_EVERY)
        thread.join()
        if answer != z3.unknown:
            self._model = self._incremental.model() if answer == z3.sat else None
            return answer
        answer = answers["fresh"]
        self._model = fresh.model().translate(z3.main_ctx()) if answer == z3.sat else None
        return answer

    def model(self) -> Any:
        if self._model is None:
            raise z3.Z3Exception("no model: the last check was not sat")
        return self._model
