"""scripts/bench/report.py: the benchmark's report rendered from made-up rows (no Docker)."""

from __future__ import annotations

from argparse import Namespace
from types import SimpleNamespace

from scripts.bench.report import View, fr, human, ratio, render, stat3

MIB = 1 << 20


def row(method, rep, downtime, wall, **more):
    return {"method": method, "rep": rep, "downtime": downtime, "stop_to_start": downtime / 2,
            "start_to_up": downtime / 2, "wall": wall, "written": MIB, "rss_kib": 2048,
            **more}  # fmt: skip


def made_up_run(**extra):
    """Two repetitions of F, P, H1, bare-H1, H2, bare-H2; no peers, no cuts."""
    per_rep = {  # method: ((downtime, wall) of rep 1, of rep 2)
        "F": ((2.0, 2.0), (3.0, 3.0)),
        "P": ((10.0, 10.0), (12.0, 12.0)),
        "H1": ((3.0, 20.0), (3.2, 22.0)),
        "bare-H1": ((3.5, 25.0), (3.5, 20.0)),
        "H2": ((3.0, 10.0), (3.4, 12.0)),
        "bare-H2": ((3.1, 10.0), (3.3, 10.0)),
    }
    results = [row(m, rep, d, w) for rep in (1, 2) for m, reps in per_rep.items()
               for d, w in [reps[rep - 1]]]  # fmt: skip
    a = Namespace(files=600, docs_gib=1 / 16, db_mib=48, write_rate=15.0, change_percent=1.0,
                  reps=2, settle=5.0, scaling_reps=1)  # fmt: skip
    size = {"total": 100 * MIB, "files": 700, "documents": 64 * MIB, "database": 30 * MIB,
            "index": 6 * MIB, "rows": 650}  # fmt: skip
    return SimpleNamespace(a=a, results=results, extra=extra, notes=[], size_start=size,
                           size_end=None, code_digest="abc123", probe_period=0.06)  # fmt: skip


MACHINE = {"nproc": 4, "cpu": "Made-up CPU", "mem": 8 << 30, "kernel": "6.0", "os": "Linux",
           "disk": "/dev/x (ext4, 100G, 99G free at start)", "docker": "27", "compose": "2.29",
           "rsync": "rsync 3.2", "restic": "restic 0.16", "rsnapshot": "rsnapshot 1.4",
           "git": "abc1234"}  # fmt: skip
TIMING = {"date": "2026-01-01 00:00 UTC", "repetitions": 600.0, "total": 720.0}


def rendered(**extra) -> str:
    return render(View(made_up_run(**extra), MACHINE, TIMING, ["--quick"]))


def test_small_formatters():
    assert stat3([]) == "–"
    assert stat3([None, 2.0]) == "2.00"
    assert stat3([3.0, 1.0, 2.0], "{:.1f}") == "2.0 (1.0–3.0)"
    assert human(None) == "–"
    assert human(512) == "512 B"
    assert human(3 * MIB // 2) == "1.5 MiB"
    assert ratio(1.0, 0) is None and ratio(None, 2.0) is None and ratio(3.0, 2.0) == 1.5
    assert fr(None) == "–" and fr(1.234) == "1.23" and fr(1.25, 1) == "1.2"


def test_view_medians_and_ratios_per_repetition():
    view = View(made_up_run(), MACHINE, TIMING, [])
    assert (view.F, view.P, view.H1, view.H2) == (2.5, 11.0, 3.1, 3.2)
    assert view.present == ["F", "P", "bare-H1", "H1", "bare-H2", "H2"]
    assert view.peers == []
    assert [round(x, 2) for x in view.ov1] == [0.8, 1.1]
    assert [round(x, 2) for x in view.ov2] == [1.0, 1.2]


def test_render_tables_and_targets():
    text = rendered()
    assert text.startswith("# Benchmarks: downtime of klink-sync, the guide's procedure")
    assert "(`python -m scripts.bench --quick`) on 2026-01-01 00:00 UTC" in text
    assert ("| **H2** | `klink-sync hot-cold`, incremental after the 1% change | "
            "3.20 (3.00–3.40) | – | 11.0 (10.0–12.0) | 1.0 MiB | 2 (2–2) |") in text  # fmt: skip
    assert "| H2/F | 1.28 |" in text
    assert "| H1 wall / bare-H1 wall | 0.80, 1.10 | 0.95 |" in text
    assert "| H2 wall / bare-H2 wall | 1.00, 1.20 | 1.10 |" in text
    assert "| H2 ≤ 1.3 × F | H2 3.20 s, F 2.50 s, H2/F = 1.28 | **yes** |" in text
    assert "H1 − F = 0.60 s" in text
    assert "| no peer has a shorter downtime than H2 | peers not run (--skip-peers) | – |" in text
    assert "| H2 wall ≤ 1.15 × bare script wall | 1.10 | **yes** |" in text
    assert "in this order: F, P, H1, bare-H1, H2, bare-H2 (the 1% change" in text
    assert "Probe period: median 60 ms" in text
    assert "- total: 12.0 min\n" in text
    assert text.endswith("![median downtime per method, min–max bars](downtime.png)\n")
    for absent in ("### What each downtime cut brings", "## A second snapshot", "## Scaling",
                   "## Notes"):  # fmt: skip
        assert absent not in text


def test_render_second_snapshot_and_scaling():
    second = {"first": "s3", "second": "s4", "first_bytes": 100 * MIB, "second_new": MIB // 2,
              "second_alone": 100 * MIB, "percent": 0.5, "changed_files": ["a (1 bytes)"],
              "verify": {"s1": {"exit": 0, "out": ""}, "s3": {"exit": 1, "out": "bad"}},
              "settle": "s2", "settle_changed_files": ["ib_logfile0 (9 bytes)"],
              "first_new": 2 * MIB}  # fmt: skip
    scaling = [{"files": 10000, "first_wall": 4.0, "runs": [
        {"wall": 2.0, "rss_kib": 51200, "downtime": 0.5, "phases": {"hot": 1.0},
         "checksums_s": 0.25}]}]  # fmt: skip
    text = rendered(second=second, scaling=scaling)
    assert "adds **512.0 KiB = 0.50%** of it" in text
    assert "- s3: exit 1 (bad)" in text
    assert "| second snapshot of unchanged data < 1% of the first | 0.50% | **yes** |" in text
    assert ("| a new run never changes an older snapshot's files (verify) | "
            "s1: exit 0, s3: exit 1 | **no** |") in text  # fmt: skip
    assert "| 10,000 | 4.0 | 2.0 | 200 | 0.50 | 50 | hot 1.0, checksums 0.2 |" in text
    assert "| unchanged incremental at 10,000 files fits in memory |" in text


def offsite_rows():
    """Two repetitions of the offsite push and its plain restic baseline, first and incremental."""
    times = {"offsite-1": (10.0, 12.0), "restic-plain-1": (10.0, 10.0),
             "offsite-2": (2.2, 2.6), "restic-plain-2": (2.0, 2.0)}  # fmt: skip
    summary = {"data_added": 2 * MIB, "files_new": 3, "files_changed": 6, "files_unmodified": 700}
    return [{"method": m, "rep": rep, "downtime": None, "wall": t[rep - 1] + 0.1,
             "cmd_s": t[rep - 1], "written": MIB, "summary": summary}
            for rep in (1, 2) for m, t in times.items()]  # fmt: skip


def test_render_offsite_push_rows():
    run = made_up_run(offsite={"changed_bytes": [MIB], "open_s": [0.5, 0.5], "start_s": [0.3]})
    run.results += offsite_rows()
    text = render(View(run, MACHINE, TIMING, []))
    assert "## Offsite push: klink-sync against plain restic (issue 14)" in text
    assert ("| offsite first push | 11.00 (10.00–12.00) | 10.00 (10.00–10.00) | "
            "1.00, 1.20 | 1.10 |") in text  # fmt: skip
    assert ("| offsite incremental push | 2.40 (2.20–2.60) | 2.00 (2.00–2.00) | "
            "1.10, 1.30 | 1.20 |") in text  # fmt: skip
    assert "| plain `restic backup` | 2.0 MiB | 3 | 6 | 700 | 1.0 MiB |" in text
    assert "Expected on top: first 0.80 s, incremental 0.30 s" in text
    assert "first 1.00 s, incremental 0.40 s" in text
    assert ("| offsite first push: klink-sync ≤ 1.15 × plain restic (issue 14) | 1.10 | "
            "**yes** |") in text  # fmt: skip
    assert ("| offsite incremental push: klink-sync ≤ 1.15 × plain restic (issue 14) | 1.20 | "
            "**no** |") in text  # fmt: skip
    assert "in this order: F, P, H1, bare-H1, H2, bare-H2 (the 1% change" in text  # no offsite rows
    assert "| **offsite-1**" not in text  # not in the downtime table


def stopless_rows():
    """Two repetitions of hot-cold --pause and live, first and incremental, with the HTTP
    probe's counts; F and H2 get theirs too (F's failures: the baseline)."""
    rows = []
    for rep in (1, 2):
        for n in (1, 2):
            rows.append(row(f"pause-{n}", rep, 0.0, 14.0 + rep, freeze=0.5 + 0.1 * rep,
                            self_freeze=0.55, frozen=["database", "engine", "kbox"],
                            http_requests=100, http_failed=0, http_slow=1,
                            http_max_latency=0.6 + 0.1 * rep, http_failing_s=0.0))  # fmt: skip
            rows.append(row(f"live-{n}", rep, 0.0, 18.0 + 2 * rep, freeze=0.2, frozen=["engine"],
                            self_freeze=0.25, commit_block=0.01 * rep, http_requests=120,
                            http_failed=0, http_slow=0, http_max_latency=0.3,
                            http_failing_s=0.0))  # fmt: skip
    return rows


def with_http(results):
    """F and H2 rows with the probe's counts."""
    for r in results:
        if r["method"] in ("F", "H2"):
            r.update(http_requests=60, http_failed=40 + r["rep"], http_slow=0,
                     http_max_latency=1.5, http_failing_s=r["downtime"])  # fmt: skip
    return results


RESTORE = {"source": "live-2", "snapshot": "2026-01-01T000000Z", "image": "db:1",
           "dump": {"bytes": 60 * MIB, "seconds": 3.0}, "datadir_bytes": 80 * MIB,
           "physical": [{"seconds": s, "copy_s": 1.0, "start_s": s - 1.0, "rows": 700}
                        for s in (4.0, 5.0, 6.0)],
           "logical": [{"seconds": s, "server_s": 5.0, "import_s": s - 5.5, "rows": 710}
                       for s in (20.0, 22.0, 30.0)]}  # fmt: skip


def stopless_run(**extra):
    run = made_up_run(**extra)
    run.a.http_interval = 0.05
    run.results = with_http(run.results) + stopless_rows()
    return run


def test_view_freeze_prefers_the_outside_measure():
    run = stopless_run()
    run.results[-1]["freeze"] = None  # live-2 rep 2: only self-reported
    view = View(run, MACHINE, TIMING, [])
    assert view.present[-4:] == ["pause-1", "pause-2", "live-1", "live-2"]
    assert view.freeze("live-2") == [0.2, 0.25]
    assert view.restore_ratio() is None


def test_render_stopless_rows_users_and_checks():
    text = render(View(stopless_run(restore=RESTORE), MACHINE, TIMING, []))
    assert ("| **pause-2** | `klink-sync hot-cold --pause`, incremental after the 1% change | "
            "0.00 (0.00–0.00) |") in text  # fmt: skip
    assert "### What the users saw: freeze and the kbox's HTTP answers" in text
    assert ("| F | 2.50 (2.00–3.00) | – | – | – | 42 (41–42) | 2.50 (2.00–3.00) | 0 (0–0) | "
            "1.50 (1.50–1.50) | 2.5 (2.0–3.0) |") in text  # fmt: skip
    assert ("| pause-2 | 0.00 (0.00–0.00) | 0.65 (0.60–0.70) (database, engine, kbox) | "
            "0.55 (0.55–0.55) | – | 0 (0–0) |") in text  # fmt: skip
    assert "| live-2 | 0.00 (0.00–0.00) | 0.20 (0.20–0.20) (engine) |" in text
    assert "| 0.015 (0.010–0.020) |" in text  # live's commit block
    assert "- **the kbox's users**: `scripts/sample-stack/probe.py`" in text
    # the restore comparison
    assert "## Restoring the database: physical against logical (issue 15)" in text
    assert "`live` snapshot (live-2): mariadb-backup's prepared datadir" in text
    assert "| physical | 5.00 (4.00–6.00) | copy 1.00 (1.00–1.00)" in text
    assert "| logical | 22.00 (20.00–30.00) | empty server ready 5.00 (5.00–5.00)" in text
    assert "| physical / logical | 0.23 | | |" in text
    # the checks: F downtime 2.5, pause-2 freeze 0.65 -> 0.26 x F; live-2 wall 21, H2 11
    assert "## Checks (issue 15" in text
    assert ("| `hot-cold --pause`: downtime 0 (every run) | pause-1 0.00 (0.00–0.00) s, "
            "pause-2 0.00 (0.00–0.00) s | PASS |") in text  # fmt: skip
    assert "| `live`: no failed HTTP request (every run) | live-1 0 (0–0), live-2 0 (0–0) " \
           "(F: 42 (41–42)) | PASS |" in text
    assert ("| `hot-cold --pause` freeze ≤ 0.3 × F downtime (medians; pause-2) | "
            "freeze 0.65 s, F 2.50 s: 0.26 × F | PASS |") in text  # fmt: skip
    assert ("| `live`: the index's pause and the database's commit block (medians; live-2) | "
            "index paused 0.20 s, commits blocked 0.015 s | – |") in text  # fmt: skip
    assert ("| `live` wall ≤ 2 × hot-cold wall (medians; live-2, H2) | "
            "live 21.0 s, hot-cold 11.0 s: 1.91 × | PASS |") in text  # fmt: skip
    assert ("| physical restore ≤ 0.5 × logical (medians; physical from a live snapshot) | "
            "physical 5.0 s, logical 22.0 s: 0.23 × | PASS |") in text  # fmt: skip
    assert "### Where pause-2's time goes" not in text  # no phases in the made-up rows


def test_checks_fail_and_missing_live():
    run = stopless_run()
    run.results = [r for r in run.results if not r["method"].startswith("live")]
    for r in run.results:
        if r["method"] == "pause-2":
            r["freeze"], r["http_failed"] = 2.0, 1
    text = render(View(run, MACHINE, TIMING, []))
    assert "| `live`: downtime 0 | not run | – |" in text
    assert "freeze 2.00 s, F 2.50 s: 0.80 × F | FAIL |" in text
    assert "| `hot-cold --pause`: no failed HTTP request (every run) |" in text
    assert "pause-2 1 (1–1) (F: 42 (41–42)) | FAIL |" in text
    assert "physical restore" not in text and "`live` wall" not in text


def test_report_without_the_new_rows_has_no_users_table():
    text = rendered()
    assert "### What the users saw" not in text
    assert "## Restoring the database" not in text
    assert "| `hot-cold --pause`: downtime 0 | not run | – |" in text


def test_offsite_rounds_pair_each_incremental_push_with_its_own_baseline():
    """Several incremental rounds in one repetition: the i-th push over the i-th plain run,
    every pair counted (not only each repetition's first)."""
    run = made_up_run(offsite={"changed_bytes": [MIB]})
    pushes = [("offsite-2", 1, 2.2), ("restic-plain-2", 1, 2.0), ("restic-plain-2", 1, 2.0),
              ("offsite-2", 1, 2.4), ("offsite-2", 2, 2.6), ("restic-plain-2", 2, 2.0)]
    run.results += [{"method": m, "rep": rep, "downtime": None, "wall": t, "cmd_s": t,
                     "written": MIB, "summary": {}} for m, rep, t in pushes]  # fmt: skip
    for r, inner in zip([r for r in run.results if r["method"] == "offsite-2"],
                        (2.1, 2.2, 2.3), strict=True):  # fmt: skip
        r["restic_s"] = inner
    view = View(run, MACHINE, TIMING, [])
    assert [round(x, 2) for x in view.off[2]] == [1.1, 1.2, 1.3]
    text = render(view)
    assert "| 1.10, 1.20, 1.30 | 1.20 |" in text
    assert "Where the incremental ratio comes from" not in text  # no restic-same rows
    run.results += [{"method": "restic-same-2", "rep": rep, "downtime": None, "wall": t,
                     "cmd_s": t, "written": MIB, "summary": {}}
                    for rep, t in ((1, 2.0), (1, 2.2), (2, 2.0))]  # fmt: skip
    text = render(View(run, MACHINE, TIMING, []))
    assert ("| klink-sync around restic: push / restic by hand | 2.40 (2.20–2.60) / "
            "2.00 (2.00–2.20) | 1.10, 1.09, 1.30 | 1.10 |") in text  # fmt: skip
    assert ("| the snapshot folder: restic by hand / plain restic | 2.00 (2.00–2.20) / "
            "2.00 (2.00–2.00) | 1.00, 1.10, 1.00 | 1.00 |") in text  # fmt: skip
    assert "| **restic-same-2**" not in text  # not in the downtime table
    assert ("less the restic command's, as its `--json` `seconds` gives it): "
            "0.20 (0.10–0.30) s") in text  # fmt: skip
