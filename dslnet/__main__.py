"""`python -m dslnet`, and the `dslnet` command (its entry point in pyproject.toml)."""

import gc
import sys


def run() -> int:
    """Run the command line of this process.

    The imports every command starts with make a few hundred thousand objects that live
    as long as the process. The cyclic collector is kept off while they are made, then
    told to leave them out of its scans (`gc.freeze`): it would otherwise walk them all
    again and again, which costs a short command like `dslnet check` about a twentieth
    of its time. Only here, never in `dslnet.cli.main`, which tests and programs call in
    their own processes.
    """
    gc.disable()
    try:
        from dslnet.cli import main
    finally:
        gc.freeze()
        gc.enable()
    return main()


if __name__ == "__main__":
    sys.exit(run())
