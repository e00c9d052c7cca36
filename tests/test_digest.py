"""The registry's digest of a file's content, checked against Python's own bytes methods."""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

import pytest

from mysetlist_slo.sources._lines import content_digest

CHUNK = 1 << 20  # the digest reads this much at a time


def _content(seed: int, size: int, last: bytes) -> bytes:
    """Return ``size`` random bytes, dense in newlines and carriage returns, a newline and a
    carriage return on each side of every chunk boundary, ending with ``last``."""
    rng = random.Random(seed)
    data = bytearray(rng.choice(b"ab\n\r\x00\xff") for _ in range(size))
    for edge in range(CHUNK, size, CHUNK):
        data[edge - 1:edge + 1] = b"\n\r"
    return bytes(data[:-1]) + last


@pytest.mark.parametrize(("seed", "size", "last", "packed"), [
    (1, 10, b"\n", False),
    (2, 3 * CHUNK + 17, b"\n", False),
    (3, 2 * CHUNK + 5, b"x", False),
    (4, 2 * CHUNK + 5, b"\r", True),
    (5, 1, b"\n", True),
])
def test_digest_counts_as_bytes_methods_do(tmp_path: Path, seed: int, size: int, last: bytes,
                                           packed: bool) -> None:
    """Lines, carriage returns, size, complete bytes, the newline at the end and both hashes
    equal what bytes.count, rfind and hashlib give for the whole content (read through gzip
    when the file is one), across the digest's chunk boundaries."""
    content = _content(seed, size, last)
    path = tmp_path / ("f.gz" if packed else "f.log")
    path.write_bytes(gzip.compress(content) if packed else content)
    digest = content_digest(path)
    first_end = content.find(b"\n")
    first_line = content if first_end < 0 else content[:first_end + 1]
    assert (digest.lines, digest.carriage_returns) == (content.count(b"\n"),
                                                      content.count(b"\r"))
    assert (digest.size, digest.complete_bytes) == (len(content), content.rfind(b"\n") + 1)
    assert digest.ends_with_newline == content.endswith(b"\n")
    assert digest.sha256 == hashlib.sha256(content).hexdigest()
    assert digest.first_line_sha256 == hashlib.sha256(first_line).hexdigest()
