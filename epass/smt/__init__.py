"""Translation validation in Z3: `prove(original, transformed, inputs)` (see prove.py)."""

from epass.smt.prove import (
    AbortSite,
    Counterexample,
    ProofInputs,
    ProofResult,
    Verdict,
    prove,
)
from epass.smt.query import PointState, UnknownAnswer, Witness, can_hold

__all__ = ["AbortSite", "Counterexample", "PointState", "ProofInputs", "ProofResult",
           "UnknownAnswer", "Verdict", "Witness", "can_hold", "prove"]
