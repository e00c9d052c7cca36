"""The long-running mode: pull every interval until SIGTERM, holding no store lock in between,
logging failures and going on (a missed pull is a gap: no rows, never zeros)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from mysetlist_slo.errors import SloError


def run_every(pull: Callable[[], str], interval_s: float, log: Callable[[str], None], *,
              stop: threading.Event | None = None, max_pulls: int | None = None) -> int:
    """Call ``pull`` every ``interval_s`` seconds (on a fixed grid from the first call) until
    SIGTERM or SIGINT arrives, ``stop`` is set, or ``max_pulls`` pulls were made; return the
    number of pulls that failed.

    ``pull`` returns a line to log. A pull that raises SloError (the target went away, wrong
    credentials, the store busy) is logged and the loop goes on; a pull already under way when
    the signal arrives finishes (its transaction commits or rolls back whole) before the loop
    ends.
    """
    stop = stop or threading.Event()
    previous: dict[int, Any] = {}

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log(f"received {signal.Signals(signum).name}: stopping after the current pull")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, request_stop)
    failures = pulls = 0
    started = time.monotonic()
    try:
        while not stop.is_set():
            try:
                log(pull())
            except SloError as exc:
                failures += 1
                log(f"failed, will retry: {exc}")
            pulls += 1
            if max_pulls is not None and pulls >= max_pulls:
                break
            # Next tick on the grid; a pull longer than the interval skips the ticks it missed.
            elapsed = time.monotonic() - started
            stop.wait(interval_s - elapsed % interval_s)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return failures
