"""The streaming line reader: every line comes out once, with its number, whatever the batch
size, the line cap per batch, overlong lines, blank lines, a BOM or a missing final newline."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mysetlist_slo.sources import _lines
from mysetlist_slo.sources._lines import read_lines

line_text = st.one_of(st.just(""), st.text("abc xyz", min_size=1, max_size=12),
                      st.just("L" * 40))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(line_text, min_size=1, max_size=40), final_newline=st.booleans(),
       bom=st.booleans(), batch_bytes=st.integers(1, 64), cap=st.integers(1, 5))
def test_every_line_once_with_its_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         lines: list[str], final_newline: bool, bom: bool,
                                         batch_bytes: int, cap: int) -> None:
    """Lines over 30 bytes are rejects, the others text, each under its own 1-based number."""
    monkeypatch.setattr(_lines, "MAX_BATCH_LINES", cap)
    data = "\n".join(lines).encode() + (b"\n" if final_newline else b"")
    if not data:
        return
    path = tmp_path / "lines.log"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    seen: dict[int, str] = {}
    for batch in read_lines(path, batch_bytes=batch_bytes, max_line_bytes=30):
        assert len(batch.numbers) <= cap
        for number, text in zip(batch.numbers.to_pylist(), batch.text.to_pylist(), strict=True):
            assert number not in seen
            seen[number] = text
        for reject in batch.rejects:
            assert reject.line not in seen
            seen[reject.line] = "<long>"
    # The oracle: str.split numbers the lines of the content (a last empty piece after the
    # final newline is no line).
    expected = data.decode().split("\n")
    if final_newline or expected[-1] == "":
        expected = expected[:-1]
    assert seen == {i + 1: ("<long>" if len(t) > 30 else t) for i, t in enumerate(expected)}
