"""The pass registry and the `-p` syntax: `msan,insn_counter(limit=5000)`.

A pass is a function `run(module, options)` that edits a `Module` through
the IR API, plus what users see in `epass passes`: its kind (safety,
flexibility, optimization), its round (final: after the verifier accepted
the program; repair: inside the repair loop), its options with defaults,
and a one-line description. A pass that reads the verifier's facts
(`module.verifier_states`) sets `needs_verifier`: `epass compile` and `epass
load` then have the kernel verify the original program at log level 2 and
attach its VI map to the module before the passes run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from epass.errors import EpassError
from epass.ir.model import Module

KINDS = ("safety", "flexibility", "optimization")
ROUNDS = ("final", "repair")


@dataclass(frozen=True)
class Option:
    name: str
    default: int
    help: str


@dataclass(frozen=True)
class Pass:
    name: str
    kind: str
    round: str
    description: str
    run: Callable[[Module, dict[str, int]], None]
    options: tuple[Option, ...] = field(default_factory=tuple)
    needs_verifier: bool = False


@dataclass(frozen=True)
class PassUse:
    """A pass with the options one `-p` item gave it (defaults filled in)."""

    pass_: Pass
    options: dict[str, int]

    def __str__(self) -> str:
        opts = " ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.pass_.name}({opts})" if opts else self.pass_.name


REGISTRY: dict[str, Pass] = {}


def register(p: Pass) -> Pass:
    if p.kind not in KINDS or p.round not in ROUNDS:
        raise ValueError(f"pass {p.name}: bad kind or round")
    REGISTRY[p.name] = p
    return p


_ITEM = re.compile(r"\s*([A-Za-z_][\w]*)\s*(?:\(([^()]*)\))?\s*(?:,|$)")


def parse_passes(spec: str) -> list[PassUse]:
    """`name, name(key=value key=value), ...` -> passes with options; EpassError if wrong."""
    from epass.passes import load_all

    load_all()
    out: list[PassUse] = []
    pos = 0
    spec = spec.strip()
    while pos < len(spec):
        m = _ITEM.match(spec, pos)
        if m is None or m.end() == pos:
            raise EpassError(f"-p {spec!r}: cannot read the pass list at {spec[pos:]!r} "
                             "(expected name or name(key=value ...), comma-separated)")
        pos = m.end()
        name, args = m.group(1), m.group(2)
        p = REGISTRY.get(name)
        if p is None:
            known = ", ".join(sorted(REGISTRY)) or "none"
            raise EpassError(f"-p: unknown pass {name!r} (passes: {known})")
        out.append(PassUse(p, _options(p, args or "")))
    return out


def _options(p: Pass, text: str) -> dict[str, int]:
    values = {o.name: o.default for o in p.options}
    for item in text.replace(",", " ").split():
        key, eq, raw = item.partition("=")
        if not eq or key not in values:
            known = ", ".join(o.name for o in p.options) or "none"
            raise EpassError(f"-p: pass {p.name} has no option {key!r} (options: {known})")
        try:
            values[key] = int(raw, 0)
        except ValueError:
            raise EpassError(f"-p: {p.name}({key}=...) needs an integer, got {raw!r}") from None
    return values
