"""The sample stack's own scripts (scripts/sample-stack/check.py, probe.py), loaded by
their path: scripts/ is not a package, and the e2e and unit tests share one copy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "scripts" / "sample-stack"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"sample_{name}", SAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = load("check")
probe = load("probe")
