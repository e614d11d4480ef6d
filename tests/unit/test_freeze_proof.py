"""What Docker's events during a freeze say moved: a container that ran and went leaves no
state behind at the end, only its events."""

import pytest

from klink_sync import docker
from klink_sync.errors import RunFailed
from klink_sync.stack import FreezeWindow, check_frozen, moved_in_events

EVENTS = [
    "pause\tdb1\tdatabase",
    "pause\tix1\tengine",
    "exec_create: /bin/sh -c healthcheck\tdb1\tdatabase",
    "create\tone1\tkbox",
    "start\tone1\tkbox",
    "die\tone1\tkbox",
    "destroy\tone1\tkbox",
    "health_status: healthy\tix1\tengine",
]


def test_a_one_off_that_ran_and_went_moved_in_a_whole_project_freeze():
    assert set(moved_in_events(EVENTS, None)) == {"one1"}


def test_a_partial_freeze_looks_at_its_own_services_only():
    assert moved_in_events(EVENTS, {"engine"}) == []
    assert set(moved_in_events(EVENTS, {"kbox"})) == {"one1"}


def test_a_thaw_and_a_restart_by_someone_else_moved():
    lines = ["unpause\tix1\tengine", "restart\tix2\tengine", "pause\tix1\tengine"]
    assert moved_in_events(lines, {"engine"}) == ["ix1", "ix2"]


def test_the_events_asked_for_are_the_project_s_containers_from_the_pause_on():
    argv = docker.events_argv("k-link", 1700000000.25)
    assert argv[:4] == (docker.DOCKER, "events", "--since", "1700000000.250000")
    assert "label=com.docker.compose.project=k-link" in argv and "type=container" in argv


def test_a_copy_into_a_paused_container_moved():
    """`docker cp` works on a paused container: it writes into its volumes meanwhile."""
    assert moved_in_events(["extract-to-dir\tdb1\tdatabase"], None) == ["db1"]


class _Stream:
    def __init__(self, lines):
        self.lines = lines

    def alive(self):
        return True


class _Project:
    """A stack whose project's containers are as given: id -> (state, service)."""

    def __init__(self, states):
        self.states = states

    def project_states(self, project):
        return self.states


def _window(frozen, lines):
    return FreezeWindow(frozen=list(frozen), events=_Stream(lines))


def test_a_one_off_of_a_paused_service_running_through_the_copy_fails_it():
    """live pauses the index's service only: a `compose run` of that service, running
    before the pause and never frozen, wrote during the copy."""
    stack = _Project({"ix1": ("paused", "engine"), "run1": ("running", "engine"),
                      "db1": ("running", "database")})  # fmt: skip
    with pytest.raises(RunFailed, match="run1"):
        check_frozen(stack, "p", _window(["ix1"], ["pause\tix1\tengine"]), {"engine"})
    check_frozen(_Project({"ix1": ("paused", "engine"), "db1": ("running", "database")}), "p",
                 _window(["ix1"], ["pause\tix1\tengine"]), {"engine"})  # fmt: skip


def test_a_service_started_during_a_copy_with_nothing_to_freeze_fails_it():
    """Nothing ran at the freeze (nothing paused); the service started meanwhile."""
    stack = _Project({"ix2": ("running", "engine")})
    with pytest.raises(RunFailed, match="ix2"):
        check_frozen(stack, "p", _window([], []), {"engine"})
    with pytest.raises(RunFailed, match="ix2"):
        check_frozen(stack, "p", _window([], []))
