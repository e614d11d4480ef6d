"""systemd.py: the unit texts are data; writing them is the only side effect."""

from __future__ import annotations

import pytest

from klink_sync import systemd


def _settings(text: str) -> dict[str, list[str]]:
    """key -> values of a unit file (a key may repeat)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_service_runs_hot_cold_once_with_the_config_at_low_priority() -> None:
    unit = _settings(systemd.service_unit("/usr/local/bin/klink-sync"))
    assert unit["Type"] == ["oneshot"]
    assert unit["ExecStart"] == ["/usr/local/bin/klink-sync hot-cold --config "
                                 "/etc/klink-sync/config.yml"]  # fmt: skip
    assert unit["Nice"] == ["10"] and unit["IOSchedulingClass"] == ["idle"]
    assert unit["TimeoutStartSec"] == ["12h"]
    assert "User" not in unit  # root: the Docker socket, numeric owners of every file


@pytest.mark.parametrize("mode, words", [("cold", "cold"), ("hot-cold-pause", "hot-cold --pause"),
                                         ("live", "live")])  # fmt: skip
def test_the_service_runs_the_mode_chosen_and_recovers_after_any_end(mode: str, words: str) -> None:
    unit = _settings(systemd.service_unit("/k", mode=mode))
    assert unit["ExecStart"] == [f"/k {words} --config /etc/klink-sync/config.yml"]
    # after the run, by any path (a SIGKILL too): nothing left stopped or frozen
    assert unit["ExecStopPost"] == ["/k recover --config /etc/klink-sync/config.yml"]


def test_service_hardening_leaves_docker_and_the_destination_reachable() -> None:
    unit = _settings(systemd.service_unit("/k", writable=["/mnt/backup", "/home/kl/backup"]))
    assert unit["ProtectSystem"] == ["full"]  # /usr, /boot, /etc read-only; /run, /var, /mnt not
    assert unit["ProtectHome"] == ["read-only"]  # deployments under /home are read
    assert unit["PrivateTmp"] == ["yes"] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["ReadWritePaths"] == ["-/mnt/backup", "-/home/kl/backup"]
    assert unit["UMask"] == ["0077"]  # backups are as secret as the deployment
    for key in ("PrivateDevices", "PrivateNetwork", "ProtectProc", "RestrictAddressFamilies",
                "PrivateUsers", "DynamicUser", "RestrictSUIDSGID"):  # fmt: skip
        assert key not in unit  # the Docker socket, owners, setgid folders in volumes


def test_writable_paths_are_the_destination_and_the_metrics_folder() -> None:
    assert systemd.writable_paths("/mnt/b", "/var/lib/node/klink.prom") == [
        "/mnt/b", "/var/lib/node"]  # fmt: skip
    assert systemd.writable_paths(None, None) == []


def test_an_offsite_repository_on_this_host_is_writable_too() -> None:
    assert systemd.writable_paths("/mnt/b", None, "/srv/restic") == ["/mnt/b", "/srv/restic"]
    assert systemd.writable_paths(None, None, "local:/srv/r") == ["/srv/r"]
    assert systemd.writable_paths(None, None, "s3:https://s3.example/b") == []
    assert systemd.writable_paths(None, None, "sftp:u@h:/srv/r") == []


def test_repeated_paths_appear_once() -> None:
    unit = _settings(systemd.service_unit("/k", writable=["/mnt/b", "/mnt/b"]))
    assert unit["ReadWritePaths"] == ["-/mnt/b"]


def test_spaces_percent_and_dollar_are_written_so_systemd_reads_them_back() -> None:
    text = systemd.service_unit("/opt/klink sync/bin/klink-sync", config="/etc/k%s/$HOME.yml",
                                writable=["/mnt/my backups"])  # fmt: skip
    unit = _settings(text)
    assert unit["ExecStart"] == ['"/opt/klink sync/bin/klink-sync" hot-cold --config '
                                 "/etc/k%%s/$$HOME.yml"]  # fmt: skip
    assert unit["ReadWritePaths"] == ['"-/mnt/my backups"']


@pytest.mark.parametrize("bad", ["/opt/it's/klink-sync", '/a"b', "/a\\b", "/a\nb"])
def test_paths_systemd_cannot_take_are_refused(bad: str) -> None:
    with pytest.raises(systemd.UnitValueError):
        systemd.service_unit(bad)
    with pytest.raises(systemd.UnitValueError):
        systemd.service_unit("/k", writable=[bad])


def test_timer_daily_persistent_spread() -> None:
    unit = _settings(systemd.timer_unit())
    assert unit["OnCalendar"] == ["daily"] and unit["Persistent"] == ["true"]
    assert unit["RandomizedDelaySec"] == ["30m"] and unit["Unit"] == ["klink-sync.service"]
    assert unit["WantedBy"] == ["timers.target"]
    assert _settings(systemd.timer_unit("*-*-* 03:15"))["OnCalendar"] == ["*-*-* 03:15"]


def test_units_by_file_name_and_the_commands_to_enable_them() -> None:
    files = systemd.units("/k", "/etc/k.yml", "weekly", ["/mnt/b"])
    assert list(files) == ["klink-sync.service", "klink-sync.timer", "klink-sync-recover.service"]
    assert "--config /etc/k.yml" in files["klink-sync.service"]
    assert "OnCalendar=weekly" in files["klink-sync.timer"]
    recover = _settings(files["klink-sync-recover.service"])
    assert recover["ExecStart"] == ["/k recover --config /etc/k.yml"]
    assert recover["WantedBy"] == ["multi-user.target"]
    assert systemd.enable_commands() == ["systemctl daemon-reload",
                                         "systemctl enable --now klink-sync.timer",
                                         "systemctl enable klink-sync-recover.service"]  # fmt: skip


def test_write_units_replaces_files_and_leaves_no_temporary(tmp_path) -> None:
    unit_dir = tmp_path / "system"
    systemd.write_units(unit_dir, {"a.service": "old\n"})
    written = systemd.write_units(unit_dir, {"a.service": "new\n", "a.timer": "t\n"})
    assert written == [unit_dir / "a.service", unit_dir / "a.timer"]
    assert (unit_dir / "a.service").read_text() == "new\n"
    assert sorted(p.name for p in unit_dir.iterdir()) == ["a.service", "a.timer"]
    assert (unit_dir / "a.timer").stat().st_mode & 0o777 == 0o644
