"""Translation validation in Z3: `prove(original, transformed, inputs)` (see prove.py)."""

from epass.smt.prove import Counterexample, ProofInputs, ProofResult, Verdict, prove

__all__ = ["Counterexample", "ProofInputs", "ProofResult", "Verdict", "prove"]
