"""Repair strategies: each answers one family of verifier messages with candidate
rewrites near the rejected instruction (docs/repair.md).

A strategy proposes candidates; the engine applies each to a fresh lift of the
program, compiles it, asks the verifier and Z3, and keeps the first that
makes progress and provably changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from epass.kernel.verifier_log import ErrorClass
from epass.repair.site import Site


@dataclass(frozen=True)
class Candidate:
    description: str  # one line, for the round's report
    apply: Callable[[Site], None]  # edits site.module


@dataclass(frozen=True)
class Strategy:
    name: str
    classes: frozenset[ErrorClass]  # the verifier errors it answers
    description: str
    propose: Callable[[Site], list[Candidate]]


STRATEGIES: list[Strategy] = []


def register(s: Strategy) -> Strategy:
    STRATEGIES.append(s)
    return s


def load_all() -> None:
    from epass.repair.strategies import (  # noqa: F401
        alignment,
        bounds,
        loops,
        lost_bounds,
        packet_recheck,
        provenance,
        stack_depth,
    )


def for_class(error_class: ErrorClass) -> list[Strategy]:
    load_all()
    return [s for s in STRATEGIES if error_class in s.classes]
