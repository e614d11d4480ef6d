"""A hold record is data: what it says of the stop is read back as written, and a value
of the wrong kind is refused in one line, never taken for true."""

import json

import pytest

from klink_sync import state
from klink_sync.errors import UsageError


def _hold(folder: str, **extra: object) -> state.Hold:
    return state.Hold(folder, ("docker", "compose"), (), ("database",), state.STOPPED, 1,
                      state.now(), **extra)  # fmt: skip


def test_the_stop_s_end_is_read_back_as_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("KLINK_SYNC_STATE_DIR", str(tmp_path / "state"))
    state.record(_hold(str(tmp_path), stop_timeout=30))
    assert state.held(tmp_path).stop_ended is False
    state.record(_hold(str(tmp_path), stop_timeout=30, stop_ended=True))
    assert state.held(tmp_path) == _hold(str(tmp_path), stop_timeout=30, stop_ended=True)


@pytest.mark.parametrize("key, value", [("stop_ended", "yes"), ("stop_ended", 1),
                                        ("stop_timeout", "120"), ("stop_timeout", -1)])
def test_a_value_of_the_wrong_kind_is_refused(tmp_path, monkeypatch, key, value):
    monkeypatch.setenv("KLINK_SYNC_STATE_DIR", str(tmp_path / "state"))
    state.record(_hold(str(tmp_path)))
    path = next((tmp_path / "state" / "holds").glob("*.json"))
    path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    with pytest.raises(UsageError, match=f"cannot read klink-sync's record .*{key}"):
        state.held(tmp_path)
