"""Allows ``python -m mysetlist_slo``; ``run`` is the ``mysetlist-slo`` command's entry."""

import sys

from mysetlist_slo._terminal import EXIT_INTERRUPTED


def run() -> int:
    """Run the command line and return its exit status. A Ctrl-C while the command line's
    modules are still being imported (a second or so: duckdb, pandas, rich) is one line and
    130, as it is once the command runs (cli.main), not a traceback."""
    try:
        from mysetlist_slo.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; nothing was done\n")
        return EXIT_INTERRUPTED
    return main()


if __name__ == "__main__":
    sys.exit(run())
