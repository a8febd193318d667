"""Running the `epass` CLI as a real process, as users and CI do."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def epass(*args: str, user: str | None = None) -> Run:
    """Run `python -m epass ARGS`; `user` runs it without privileges (via setpriv)."""
    cmd = [sys.executable, "-m", "epass", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
               "--inh-caps=-all", "--bounding-set=-all", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc.returncode, proc.stdout, proc.stderr)
