"""A killed live run's database login (a root password on disk) is removed by the next
`klink-sync recover`, unless a live run of that deployment holds it now."""

from klink_sync import state


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
