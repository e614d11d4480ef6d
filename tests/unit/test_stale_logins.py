"""A killed live run's database login (a root password on disk) is removed by the next
`klink-sync recover`, unless a live run of that deployment holds it now."""

import pytest

from klink_sync import state
from klink_sync.errors import KlinkSyncError


def test_a_killed_run_s_login_is_removed_a_running_one_s_is_not(tmp_path, monkeypatch):
    monkeypatch.setenv("KLINK_SYNC_STATE_DIR", str(tmp_path / "state"))
    left, running = tmp_path / "killed", tmp_path / "running"
    state.state_dir()
    for folder in (left, running):
        folder.mkdir()
        state.login_path(folder).write_text("[client]\npassword=x\n")
    with state.deployment_locked(running):
        assert state.remove_stale_logins() == [state.login_path(left).name]
    assert not state.login_path(left).exists() and state.login_path(running).exists()
    assert state.remove_stale_logins() == [state.login_path(running).name]


def test_a_folder_docker_made_at_a_login_s_path_is_removed(tmp_path, monkeypatch):
    """A killed run's `docker run` that started after recover removed the login: dockerd
    makes an empty folder at a bind mount's missing source. recover removes it, no
    traceback, and the next live run can write its login there."""
    monkeypatch.setenv("KLINK_SYNC_STATE_DIR", str(tmp_path / "state"))
    state.state_dir()
    folder = tmp_path / "deployment"
    folder.mkdir()
    state.login_path(folder).mkdir()
    assert state.remove_stale_logins() == [state.login_path(folder).name]
    assert not state.login_path(folder).exists()
    state.login_path(folder).mkdir()
    (state.login_path(folder) / "x").write_text("")
    with pytest.raises(KlinkSyncError, match="not a login file"):
        state.remove_login(state.login_path(folder))
