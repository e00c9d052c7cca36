"""Making text safe to print: control characters in input-derived text are shown, not obeyed."""

from __future__ import annotations

# What a shell reports for a program stopped by Ctrl-C (128 + SIGINT): the command line's exit
# status after one, also while it is still importing (__main__.run).
EXIT_INTERRUPTED = 130

# What a terminal would act on instead of showing: C0 controls but tab and newline (CR rewrites
# the line, ESC starts colour, cursor, title and OSC 8 hyperlink sequences), DEL, the C1 range
# (0x9b is a one-byte CSI on some terminals), and the bidi embeddings, overrides and isolates
# that reorder what is shown (the "Trojan Source" characters, CVE-2021-42574).
_UNSAFE = (
    [c for c in range(0x20) if c not in (0x09, 0x0A)]
    + list(range(0x7F, 0xA0))
    + list(range(0x202A, 0x202F))
    + list(range(0x2066, 0x206A))
)
_ESCAPES = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE}


def terminal_safe(text: object) -> str:
    """Return ``str(text)`` with every control or bidi-override character written as a visible
    escape (ESC becomes ``\\x1b``, U+202E becomes ``\\u202e``); tabs and newlines are kept.
    Never raises."""
    return str(text).translate(_ESCAPES)
