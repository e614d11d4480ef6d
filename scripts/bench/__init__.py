"""Downtime benchmark: klink-sync against the guide's procedure and peers (make bench).

Builds a deployment of the sample stack (scripts/sample-stack) of a chosen size in a
work folder of its own (Compose project bench-<pid>), with its writer and indexer
running, and measures, repetition after repetition in the same run:

  F        docker compose stop; docker compose up -d               (nothing copied)
  P        stop; cp -a of the whole folder to a fresh destination; up -d
  cold     klink-sync cold, fresh destination
  H1       klink-sync hot-cold, fresh destination
  pause-1, live-1   klink-sync hot-cold --pause / klink-sync live, each a fresh destination
           of its own (live: when the code measured has it)
  bare-H1  the rsync and compose commands klink-sync runs (from its --dry-run),
           as a plain shell script, fresh destination, as many hot rounds as H1 ran
  rsnapshot-1, restic-1   peers, first run (fresh snapshot root / repository)
  ... then 1% of the pre-filled documents are rewritten (new content, same size) ...
  H2       klink-sync hot-cold, incremental (same destination as H1)
  pause-2, live-2   incremental, each on its own destination (after its -1 run)
  bare-H2  the same script, incremental (--link-dest to its previous snapshot)
  rsnapshot-2, restic-2   peers, incremental

Downtime is measured from outside: every compose command goes through a small
wrapper that notes when a `stop` (and a `start`/`up`) command starts; a poller
thread asks the Docker API for the project's containers and, once all run, opens a
MariaDB connection to the database container and runs SELECT 1. Downtime = from the
stop command's start to the end of the first probe, begun after the last start
command, that sees every service running and the database answering (0 for the modes that
stop nothing, when no stop was seen). Freeze = from the project's first `pause` container
event to its last `unpause` (the Docker API's event stream). Through every measured run the
sample's HTTP probe (scripts/sample-stack/probe.py) asks the kbox, back to back: failed,
slow (> 1 s) and slowest requests.

Then: a second snapshot of unchanged data (writer stopped), `klink-sync verify` of
older snapshots; the database restored physically (the last live snapshot's datadir, or
H2's without live, copied and started) against logically (a `mariadb-dump
--single-transaction` imported into an empty server), writer and indexer stopped; the
offsite push (writer stopped): `klink-sync offsite push` of a
hot-cold snapshot into an empty restic repository against plain `restic backup` of the
deployment's folder into another, then after the 1% change and a second snapshot the
incremental push against restic's own incremental run; and unchanged incremental runs
at 10k / 100k / 1M small files
(a stand-in compose command, no Docker). Writes docs/benchmarks.md and
docs/downtime.png. Run as root (Docker, numeric owners): `make bench`, or from the
repository's root `python -m scripts.bench --help`.

The package:

  __main__.py  the command line (the options of `make bench BENCH_ARGS=...`) and the run's steps
  common.py    paths, sizes, log, errors, commands; the one import from klink_sync (CUTS)
  probe.py     the downtime probe: the compose wrapper's events, the Docker API + MariaDB poller;
               the container events (freeze); the sample's HTTP probe, loaded by its path
  stack.py     the deployment measured (Stack): set up, filled, changed, taken down
  measure.py   GNU time around a command; Bench: one method measured, raw.json
  methods.py   the methods: F, P, klink-sync cold / hot-cold / hot-cold --pause / live, the
               bare script, rsnapshot, restic; the offsite push and plain restic backup
  restore.py   a database restored: physical (a snapshot's datadir) against logical (a dump)
  rounds.py    their order: repetitions, the second snapshot, side tests, the restore
               comparison, offsite, scaling
  report.py    docs/benchmarks.md (render: pure) and docs/downtime.png
"""
