"""The Sentry collector against a local HTTP server answering like Sentry's API from the
fixtures: Link-header pagination, the token from the environment, retries, refusals."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import servers

from mysetlist_slo import ingest_file, load_config, open_store
from mysetlist_slo.cli import main
from mysetlist_slo.collect.sentry import collect_sentry
from mysetlist_slo.errors import CollectError
from mysetlist_slo.slo.app_errors import application_error_sli, release_health

FIXTURES = Path(__file__).parent / "fixtures" / "sentry"
TOKEN = "sntrys_SECRET-token-42"  # noqa: S105 - a made-up token for a local fake server
START, END = datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)
PAGE = 5


class FakeSentry(servers.LocalHttp):
    """A local server answering /api/0/organizations/ORG/{events,stats_v2,sessions}/ from the
    fixtures; events come PAGE a page with Sentry's Link header. ``fail`` lists HTTP statuses
    to answer the first requests with; ``next_host`` sends the next link elsewhere."""

    def __init__(self, fail: list[int] | None = None, next_host: str | None = None) -> None:
        self.fail = list(fail or [])
        self.requests: list[dict[str, Any]] = []
        fake = self
        events = json.loads((FIXTURES / "events.json").read_text())

        class Handler(servers.JsonHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = parse_qs(parts.query)
                fake.requests.append({"path": parts.path, "params": params,
                                      "auth": self.headers["Authorization"]})
                if fake.fail:
                    self.answer(fake.fail.pop(0), {"detail": "try later"}, {})
                    return
                if self.headers["Authorization"] != f"Bearer {TOKEN}":
                    self.answer(401, {"detail": "Invalid token"}, {})
                    return
                kind = parts.path.rstrip("/").rsplit("/", 1)[-1]
                if kind == "stats_v2":
                    self.answer(200, json.loads((FIXTURES / "stats_v2.json").read_text()), {})
                elif kind == "sessions":
                    self.answer(200, json.loads((FIXTURES / "sessions.json").read_text()), {})
                else:
                    offset = int(params.get("cursor", ["0:0:0"])[0].split(":")[1])
                    page = events["data"][offset:offset + PAGE]
                    more = offset + PAGE < len(events["data"])
                    host = next_host or f"127.0.0.1:{fake.server.server_address[1]}"
                    base = f"http://{host}{parts.path}?per_page={PAGE}&cursor="
                    link = (f'<{base}0:{max(offset - PAGE, 0)}:1>; rel="previous"; '
                            f'results="{str(offset > 0).lower()}"; cursor="0:{offset}:1", '
                            f'<{base}0:{offset + PAGE}:0>; rel="next"; '
                            f'results="{str(more).lower()}"; cursor="0:{offset + PAGE}:0"')
                    self.answer(200, {"data": page, "meta": events["meta"]}, {"Link": link})

        super().__init__(Handler)


@pytest.fixture(name="fake")
def fixture_fake(local_http: Callable[..., Any]) -> Callable[..., FakeSentry]:
    """Start fake Sentry servers (stopped after the test)."""
    return functools.partial(local_http, FakeSentry)


def test_collected_equals_the_files(fake: Callable[..., FakeSentry], tmp_path: Path) -> None:
    """All three pages of events, stats_v2 and sessions are collected; the SLI and the
    release view from the collected store equal those from the same answers loaded as files."""
    server = fake()
    collected, loaded = tmp_path / "collected.duckdb", tmp_path / "loaded.duckdb"
    result = collect_sentry(collected, server.url, "mysetlist", TOKEN, start=START, end=END)
    pages = [r for r in server.requests if r["path"].endswith("/events/")]
    assert len(pages) == 3  # 14 events, 5 a page, followed by the Link header
    assert pages[0]["params"]["field"][:3] == ["id", "timestamp", "level"]
    assert pages[0]["params"]["start"] == ["2026-11-09T00:00:00"]
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in server.requests)
    assert result.loaded == 14 + 4 * 7 + 2 * 7  # events; 4 outcome groups, 2 releases x 7 days
    with open_store(loaded) as con:
        for name in ("events.json", "stats_v2.json", "sessions.json"):
            ingest_file(con, FIXTURES / name)
        from_files = (application_error_sli(con, load_config(), START, END),
                      release_health(con, load_config(), START, END))
    with open_store(collected, read_only=True) as con:
        from_api = (application_error_sli(con, load_config(), START, END),
                    release_health(con, load_config(), START, END))
        registry = repr(con.execute("SELECT * FROM ingests").fetchall())
    assert from_api[0] == from_files[0]
    assert from_api[1].equals(from_files[1])
    assert TOKEN not in registry and "collect-sentry" in registry


def test_retries_then_succeeds(fake: Callable[..., FakeSentry], tmp_path: Path) -> None:
    """A 429 (Sentry's rate limit) and a 503 are retried; the collection then completes."""
    server = fake(fail=[429, 503])
    result = collect_sentry(tmp_path / "m.duckdb", server.url, "mysetlist", TOKEN,
                            start=START, end=END, backoff_s=0.01)
    assert result.loaded == 56 and len(server.requests) == 2 + 3 + 2


def test_next_page_on_another_host_is_not_followed(fake: Callable[..., FakeSentry],
                                                   tmp_path: Path) -> None:
    """A Link to another host would carry the token there: it is refused, nothing stored."""
    server = fake(next_host="evil.example:80")
    with pytest.raises(CollectError, match="another host"):
        collect_sentry(tmp_path / "m.duckdb", server.url, "mysetlist", TOKEN, start=START,
                       end=END)
    assert len(server.requests) == 1
    assert not (tmp_path / "m.duckdb").exists()  # the store is opened only to land


def test_cli_token_from_environment_never_shown(
        fake: Callable[..., FakeSentry], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`collect sentry` reads SENTRY_AUTH_TOKEN; a wrong token is a one-line HTTP 401 error
    and exit 1; no token is an error naming the variable; the token is never printed."""
    server = fake()
    db = tmp_path / "m.duckdb"
    args = ["collect", "sentry", "--db", str(db), "--url", server.url, "--org", "mysetlist",
            "--start", "2026-11-09T00:00Z", "--end", "2026-11-16T00:00Z"]
    monkeypatch.setenv("SENTRY_AUTH_TOKEN", TOKEN)
    assert main(args) == 0
    monkeypatch.setenv("SENTRY_AUTH_TOKEN", "wrong-" + TOKEN)
    assert main(args) == 1
    monkeypatch.delenv("SENTRY_AUTH_TOKEN")
    assert main(args) == 1
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    assert "56 rows stored" in captured.out + captured.err
    assert "HTTP 401: Invalid token" in captured.err
    assert "SENTRY_AUTH_TOKEN" in captured.err
