"""A test hook: kill this process with SIGKILL at a named point, to test crash safety."""

from __future__ import annotations

import os
import signal

# Set by the crash tests in the subprocess they kill; never by a user.
CRASH_AT = "MYSETLIST_SLO_CRASH_AT"


def crash_point(name: str) -> None:
    """SIGKILL this process if ``$MYSETLIST_SLO_CRASH_AT`` names this point; else nothing.

    A real SIGKILL (no cleanup, no ``finally``), so the test sees what a killed writer leaves.
    """
    if os.environ.get(CRASH_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
