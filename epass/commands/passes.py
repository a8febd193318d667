"""`epass passes`: every registered pass, its kind, round, options and description."""

from __future__ import annotations

import json
from typing import Any

import click


def passes_report() -> dict[str, Any]:
    from epass.passes import REGISTRY, load_all  # here: keeps `epass --help` fast

    load_all()
    rows = []
    for name in sorted(REGISTRY):
        p = REGISTRY[name]
        rows.append({"name": p.name, "kind": p.kind, "round": p.round,
                     "description": p.description,
                     "options": [{"name": o.name, "default": o.default, "help": o.help}
                                 for o in p.options]})
    return {"passes": rows}


def render_passes(report: dict[str, Any]) -> str:
    """A table of name, kind, round and description; each option on a line below its pass."""
    header = ("name", "kind", "round", "description")
    rows = [tuple(str(p[k]) for k in header) for p in report["passes"]]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    out = []
    for r, p in zip([header, *rows], [None, *report["passes"]], strict=True):
        out.append("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=False)) +
                   "  " + r[3])
        for o in p["options"] if p else []:
            out.append(f"    {o['name']}={o['default']}: {o['help']}")
    return "\n".join(out)


@click.command(name="passes")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output (schema in docs/json.md).")
def passes_cmd(as_json: bool) -> None:
    """List the passes `-p` accepts: name, kind, round, description, options with defaults.

    Kinds: safety, flexibility, optimization. Rounds: final (after the verifier
    accepted the program) or repair (inside the repair loop).
    """
    report = passes_report()
    click.echo(json.dumps(report, indent=2) if as_json else render_passes(report))
