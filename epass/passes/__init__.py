"""Passes over the IR, registered by name (see `registry`).

    from epass.passes import parse_passes, run_passes
    run_passes(module, parse_passes("div_by_zero"), check=True)
"""

from __future__ import annotations

from epass.ir.check import verify_module
from epass.ir.model import Module
from epass.passes.registry import REGISTRY, Pass, PassUse, parse_passes

__all__ = ["REGISTRY", "Pass", "PassUse", "load_all", "parse_passes", "run_passes"]


def load_all() -> None:
    """Import every pass module so that it registers itself."""
    from epass.passes import (  # noqa: F401
        asan,
        const_fold,
        dce,
        div_by_zero,
        helper_validation,
        insn_counter,
        msan,
        rce,
        runtime_validation,
        zext,
    )


def run_passes(module: Module, passes: list[PassUse], check: bool = False) -> None:
    """Run the passes in order; with `check`, run the IR checker after each one."""
    for use in passes:
        use.pass_.run(module, use.options)
        if check:
            verify_module(module, after=f"pass {use}")
