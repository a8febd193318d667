"""Shared fixtures: built test programs, bpf() permission, a bpffs directory.

Fixtures
--------
``built_progs`` (session)
    ``BuiltProgs`` mapping ``(name, cpu) -> Path`` of every program of
    ``progs.PROGS`` built for every cpu from its ``min_cpu`` up, compiled once
    per session in parallel into a session temp dir. A pair that failed to
    build raises KeyError carrying clang's stderr.
``bpf_permitted`` (session)
    Skips the test when bpf() is not permitted here; otherwise returns None.
``bpffs`` (function)
    A fresh empty directory on a mounted bpffs (``/sys/fs/bpf`` is mounted
    if necessary); removed with everything pinned in it afterwards.
``requires_clang`` (session)
    Skips when clang-19 is missing (use as an argument or with
    ``@pytest.mark.usefixtures("requires_clang")``); ``progs.skip_without_clang``
    is the same check as a plain ``skipif`` marker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from epass.kernel.syscall import bpf_permitted as bpf_permitted_reason

import progs

BPFFS_ROOT = Path("/sys/fs/bpf")


# --- clang ------------------------------------------------------------------


@pytest.fixture(scope="session")
def requires_clang() -> None:
    """Skip when clang-19 (needed to build tests/progs) is missing."""
    reason = progs.clang_missing_reason()
    if reason:
        pytest.skip(reason)


class BuiltProgs(dict):
    """``(name, cpu) -> Path`` of built objects.

    ``failures`` maps the pairs that did not build to clang's message;
    looking one of them up raises KeyError with that message.
    ``elapsed`` is the wall-clock build time of the whole set in seconds.
    """

    def __init__(self, out_dir: Path) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.failures: dict[tuple[str, str], str] = {}
        self.elapsed = 0.0
        self.workers = 0

    def __missing__(self, key: tuple[str, str]) -> Path:
        if key in self.failures:
            raise KeyError(f"{key} did not build:\n{self.failures[key]}")
        raise KeyError(f"{key} is not a (name, cpu) pair of progs.PROGS (see progs.builds())")


_BUILD_STATS: dict[str, float] = {}


@pytest.fixture(scope="session")
def built_progs(tmp_path_factory: pytest.TempPathFactory, requires_clang: None) -> BuiltProgs:
    """Every table program built for every cpu from its min_cpu, once per session."""
    out_dir = tmp_path_factory.mktemp("progs")
    result = BuiltProgs(out_dir)
    pairs = list(progs.builds())
    # clang is CPU-bound and single-threaded per file; a few extra workers hide
    # process start-up and I/O.
    result.workers = min(len(pairs), (os.cpu_count() or 1) + 2)

    def one(pair: tuple[str, str]) -> tuple[tuple[str, str], Path | str]:
        name, cpu = pair
        try:
            return pair, progs.build(name, cpu, out_dir)
        except (progs.BuildError, FileNotFoundError) as e:
            return pair, str(e)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=result.workers) as pool:
        for pair, res in pool.map(one, pairs):
            if isinstance(res, Path):
                result[pair] = res
            else:
                result.failures[pair] = res
    result.elapsed = time.perf_counter() - start
    _BUILD_STATS.update(
        elapsed=result.elapsed,
        objects=len(result),
        failures=len(result.failures),
        workers=result.workers,
    )
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _BUILD_STATS:
        s = _BUILD_STATS
        terminalreporter.write_line(
            f"tests/progs: built {int(s['objects'])} objects "
            f"({int(s['failures'])} failed) in {s['elapsed']:.1f} s "
            f"with {int(s['workers'])} threads"
        )


# --- bpf() permission -------------------------------------------------------

def skip_without_bpf(reason: str) -> None:
    """Skip, or fail where CI demands the kernel (EPASS_REQUIRE_BPF=1, see docs/decisions.md)."""
    if os.environ.get("EPASS_REQUIRE_BPF") == "1":
        pytest.fail(f"bpf() is required here (EPASS_REQUIRE_BPF=1) but {reason}")
    pytest.skip(f"bpf() not permitted: {reason}")


@pytest.fixture(scope="session")
def bpf_permitted() -> None:
    """Skip unless bpf() works here (a tiny array map can be created)."""
    reason = bpf_permitted_reason()
    if reason:
        skip_without_bpf(reason)


# --- bpffs ------------------------------------------------------------------


def _bpffs_mounted(path: Path = BPFFS_ROOT) -> bool:
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[1] == str(path) and fields[2] == "bpf":
                    return True
    except OSError:
        pass
    return False


@pytest.fixture(scope="session")
def _bpffs_root() -> Path:
    """/sys/fs/bpf, mounted if it was not (left mounted: others may use it)."""
    if not _bpffs_mounted():
        if not BPFFS_ROOT.is_dir():
            pytest.skip(f"{BPFFS_ROOT} does not exist; cannot mount bpffs")
        proc = subprocess.run(
            ["mount", "-t", "bpf", "bpf", str(BPFFS_ROOT)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not _bpffs_mounted():
            msg = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
            pytest.skip(f"bpffs not mounted at {BPFFS_ROOT} and mounting failed: {msg}")
    return BPFFS_ROOT


@pytest.fixture
def bpffs(_bpffs_root: Path) -> Iterator[Path]:
    """A fresh directory on bpffs; removed (pins included) after the test."""
    try:
        path = Path(tempfile.mkdtemp(prefix="epass-test-", dir=_bpffs_root))
    except OSError as e:
        pytest.skip(f"cannot create a directory on {_bpffs_root}: {e}")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
