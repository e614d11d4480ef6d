"""`klink-sync` and `python -m klink_sync`.

The objects the imports make live as long as the process: frozen out of the garbage
collector, no collection scans them again, at exit included. A short command (an offsite
push, whose time is set beside plain restic's) keeps that time for its work."""

import gc


def main() -> None:
    gc.disable()  # the imports make objects only, no garbage worth a collection
    from .cli import app

    gc.freeze()
    gc.enable()
    app(prog_name="klink-sync")


if __name__ == "__main__":
    main()
