"""What every part of the benchmark shares: paths, sizes, the log, errors, commands.

The one place that imports from klink_sync (CUTS) and from the sample stack (read_env).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "scripts" / "sample-stack"
sys.path.insert(0, str(SAMPLE))
from check import read_env  # noqa: E402,F401 (the sample stack's .env reader)

from klink_sync.passes import CUTS  # noqa: E402,F401 (the downtime cuts KLINK_SYNC_DISABLE knows)

SERVICES = ("database", "engine", "kbox")
GIB = 1 << 30
MIB = 1 << 20
REST_AFTER_CLEANUP = 10  # seconds of rest once a repetition's destinations are removed


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Masker:
    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, *values: str | None) -> None:
        self.values = sorted({*self.values, *(v for v in values if v)}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for v in self.values:
            text = text.replace(v, "********")
        return text


MASK = Masker()


def run(argv, cwd=None, env=None, check=True, capture=True, timeout=3600, stdin=None):
    """Run a command; on failure raise BenchError with its (masked) output tail."""
    p = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, text=True, timeout=timeout,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE if capture else subprocess.DEVNULL,
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
    )  # fmt: skip
    if check and p.returncode != 0:
        out = MASK(((p.stderr or "") + (p.stdout or "")).strip())[-3000:]
        raise BenchError(f"{' '.join(map(str, argv[:4]))} ... exited {p.returncode}: {out}")
    return p


def du_bytes(*paths: Path) -> list[int]:
    """Disk usage (blocks, in bytes) of each path, in one du: a hard-linked file counts once,
    for the first path that holds it; later paths show only their own new blocks."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return [0 for _ in paths]
    out = run(["du", "-s", "-B1", *existing]).stdout
    sizes = {}
    for line in out.splitlines():
        n, _, path = line.partition("\t")
        sizes[path] = int(n)
    return [sizes.get(str(p), 0) for p in paths]


def apparent_bytes(path: Path) -> int:
    return int(run(["du", "-s", "--bytes", path]).stdout.split()[0])


def rm_tree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        run(["rm", "-rf", "--one-file-system", path], timeout=3600)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
