"""The sample checker's file comparison: a crash-consistent copy may hold the writer's
one uncommitted rewrite, which its rewrite-intent record names, and nothing else."""

import hashlib

import pytest

from tests.sample import checker


def _doc(data, rel, content):
    (data / rel).parent.mkdir(parents=True, exist_ok=True)
    (data / rel).write_bytes(content)


def _row(rel, content):
    return (1, rel, len(content), hashlib.sha256(content).hexdigest(), "")


@pytest.fixture
def data(tmp_path):
    _doc(tmp_path, "documents/a.bin", b"A" * 10)
    _doc(tmp_path, "documents/b.bin", b"new content")  # rewritten, row not yet updated
    return tmp_path


ROWS = [_row("documents/a.bin", b"A" * 10), _row("documents/b.bin", b"old content")]


def test_the_rewrite_its_intent_names_is_in_flight_in_a_crash_consistent_copy(data):
    (data / "rewrite-intent").write_text("documents/b.bin\n")
    found = checker.compare_files(data, ROWS, crash_ok=True)
    assert found == {"missing_files": [], "bad_sha256": [], "rewrite_in_flight": "documents/b.bin"}


def test_a_difference_is_bad_without_crash_ok_even_with_its_intent(data):
    (data / "rewrite-intent").write_text("documents/b.bin\n")
    assert checker.compare_files(data, ROWS)["bad_sha256"] == ["documents/b.bin"]


@pytest.mark.parametrize("intent", [None, "documents/a.bin\n"])
def test_a_difference_the_intent_does_not_name_is_bad(data, intent):
    if intent:
        (data / "rewrite-intent").write_text(intent)
    found = checker.compare_files(data, ROWS, crash_ok=True)
    assert found["bad_sha256"] == ["documents/b.bin"] and found["rewrite_in_flight"] is None


def test_a_missing_file_is_missing_whatever_the_intent(data):
    (data / "documents/b.bin").unlink()
    (data / "rewrite-intent").write_text("documents/b.bin\n")
    assert checker.compare_files(data, ROWS, crash_ok=True)["missing_files"] == ["documents/b.bin"]
