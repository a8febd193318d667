"""What every benchmark report's header says: the command, the date, the machine,
the tools and the epass commit measured. Shared by the scripts in benchmarks/."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import epass

ROOT = Path(__file__).resolve().parents[1]


def command_line() -> str:
    """How the script was run, relative to the checkout (no paths of this machine)."""
    script = Path(sys.argv[0]).resolve()
    name = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else script.name
    return shlex.join(["python", name, *sys.argv[1:]])


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def tool_version(cmd: list[str]) -> str:
    """The line of `cmd`'s output that names its version."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    except OSError:
        return "?"
    return next((ln.strip() for ln in out.splitlines() if "version" in ln), "?")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def source_state() -> str:
    """The commit of the epass that was imported, and whether its epass/ differed from it."""
    tree = Path(epass.__file__).resolve().parents[1]

    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                              check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("diff", "--name-only", "HEAD", "--", "epass")
    except OSError:
        head = changed = ""
    where = "" if tree == ROOT else " (imported from outside this checkout)"
    if not head:
        return "unknown commit" + where
    return f"commit {head}{where}" + (f" with uncommitted changes to {', '.join(changed.split())}"
                                      if changed else ", no uncommitted changes to epass/")
