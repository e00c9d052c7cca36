"""Regex text shared by the sources and route normalisation (RE2, as DuckDB and Arrow use)."""

_SPECIAL = set("\\.^$|?*+()[]{}")


def escape(literal: str) -> str:
    """Return ``literal`` as a regex matching itself, for both RE2 and Python's ``re``.

    Only metacharacters are escaped: RE2 rejects some escapes that ``re.escape`` writes.
    """
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in literal)
