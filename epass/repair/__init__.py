"""Multi-round repair of programs the verifier rejects although they are safe."""

from epass.repair.engine import Options, RepairResult, Round, repair

__all__ = ["Options", "RepairResult", "Round", "repair"]
