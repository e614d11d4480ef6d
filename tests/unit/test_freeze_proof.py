"""What Docker's events during a freeze say moved: a container that ran and went leaves no
state behind at the end, only its events."""

from klink_sync import docker
from klink_sync.stack import moved_in_events

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
