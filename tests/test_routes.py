"""Route normalisation: templates from the config, collapsed ids, bounded cardinality."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mysetlist_slo import RouteNormaliser, load_config
from mysetlist_slo.store.routes import INVALID_ROUTE, OTHER_ROUTE, clean_paths

PATTERNS = load_config().routes.patterns


@pytest.fixture(name="routes")
def fixture_routes() -> RouteNormaliser:
    """A normaliser with the shipped patterns."""
    return RouteNormaliser(PATTERNS)


@pytest.mark.parametrize(("target", "route"), [
    ("/artist/radiohead", "/artist/[slug]"),
    ("/artist/radiohead/", "/artist/[slug]"),
    ("/artist/radiohead?tab=setlists#top", "/artist/[slug]"),
    ("/artist/radiohead/setlists", "/artist/[slug]/setlists"),
    ("/show/123456", "/show/[id]"),
    ("/_next/static/chunks/app/page-3f9a.js", "/_next/static/[...path]"),
    ("https://mysetlist.example/show/9?x=1", "/show/[id]"),
    ("//show//9", "/show/[id]"),
    ("/", "/"),
    ("/robots.txt", "/robots.txt"),
    ("/users/42/orders/7", "/users/[id]/orders/[id]"),
    ("/files/0f8fad5b-d9cb-469f-a165-70867728950e", "/files/[uuid]"),
    ("/assets/9f86d081884c7d659a2feaa0c55ad015", "/assets/[hash]"),
    ("/reset/aB3dEf9hIj2kLmN0pQr7sTuV", "/reset/[token]"),
    ("/about-us", "/about-us"),
    ("-", INVALID_ROUTE),
    ("\\x16\\x03\\x01", INVALID_ROUTE),
])
def test_templates(routes: RouteNormaliser, target: str, route: str) -> None:
    """Paths map to Next.js-style templates; unmatched ids are collapsed segment by segment."""
    assert routes.template(target) == route


def test_static_pattern_beats_dynamic() -> None:
    """Next.js precedence: a static route wins over a dynamic one at the same place."""
    routes = RouteNormaliser(["/artist/[slug]", "/artist/new"])
    assert routes.template("/artist/new") == "/artist/new"
    assert routes.template("/artist/old") == "/artist/[slug]"


def test_optional_catch_all() -> None:
    """[[...slug]] matches the bare path and any depth below it."""
    routes = RouteNormaliser(["/docs/[[...slug]]"])
    assert {routes.template(p) for p in ("/docs", "/docs/a", "/docs/a/b/c")} == {
        "/docs/[[...slug]]"}


def test_scanner_cannot_blow_up_cardinality() -> None:
    """100,000 random URLs from a scanner end in a bounded set of routes."""
    rng = np.random.default_rng(1)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 8)) for _ in range(100_000)]
    targets = [f"/{w}/{w[::-1]}.php?id={i}" for i, w in enumerate(words)]
    real = ["/show/1", "/artist/x", "/venue/y"] * 1000
    routes = RouteNormaliser(PATTERNS, max_routes=50)
    out = routes.normalise(pa.array(targets + real)).to_pylist()
    assert len(set(out)) <= 50 + 1 + len(PATTERNS)
    assert out.count(OTHER_ROUTE) == 100_000  # each seen once: never admitted as a route
    assert set(out[100_000:]) == {"/show/[id]", "/artist/[slug]", "/venue/[slug]"}


def test_max_routes_caps_admission() -> None:
    """Once max_routes templates are known, new frequent ones go to (other) as well."""
    routes = RouteNormaliser([], max_routes=3, min_requests=1)
    out = routes.normalise(pa.array(["/a", "/a", "/b", "/c", "/d", "/e"])).to_pylist()
    assert out[0] == "/a" and out.count(OTHER_ROUTE) == 2
    assert len(routes.known) == 3
    # Known routes stay routes in later batches even when rare; new ones past the cap do not.
    admitted = sorted(routes.known)
    later = routes.normalise(pa.array([admitted[0], "/z"])).to_pylist()
    assert later == [admitted[0], OTHER_ROUTE]


def test_missing_target_is_invalid(routes: RouteNormaliser) -> None:
    """A record without a target (an unreadable request line) gets the route "(invalid)"."""
    out = routes.normalise(pa.array([None, "/show/1", None], pa.string())).to_pylist()
    assert out == [INVALID_ROUTE, "/show/[id]", INVALID_ROUTE]


def test_thin_route_admitted_across_files(store, write_log) -> None:
    """A route seen 3, then 6, then 2 times in three files becomes a route once it has its
    5 requests in all; the first 3, counted under (other) before, move to it."""
    import json

    from mysetlist_slo import ingest_file

    for hour, (name, count) in enumerate((("a", 3), ("b", 6), ("c", 2)), 10):
        rows = [json.dumps({"timestamp": f"2026-11-10T{hour}:00:00Z", "path": "/about",
                            "status": 200})] * count
        ingest_file(store, write_log(f"{name}.jsonl", rows))
    stored = store.execute("SELECT route, sum(requests) FROM request_counts GROUP BY 1 "
                           "ORDER BY 1").fetchall()
    assert stored == [("/about", 11)]
    assert store.execute("SELECT count(*) FROM route_candidates").fetchall() == [(0,)]


# Absolute-form request targets (RFC 9112 3.2.2) worked by hand: the path is what follows the
# authority up to "?" or "#", and an empty path is "/" (RFC 9110 4.2.3); a query or fragment
# is dropped even when it holds slashes.
ABSOLUTE_TARGETS = [
    ("https://example.com", "/"),
    ("http://host:8080", "/"),
    ("https://example.com/", "/"),
    ("https://example.com?x=1", "/"),
    ("http://host:8080?x=1", "/"),
    ("https://example.com#top", "/"),
    ("HTTPS://Example.COM:443?x=1#f", "/"),
    ("https://example.com?next=/show/9", "/"),
    ("https://example.com#/show/9", "/"),
    ("https://user@example.com", "/"),
    ("http://[::1]:8080", "/"),
    ("https://example.com/show/9?x=//y", "/show/9"),
    ("https://example.com//show//9/", "/show/9"),
    ("example.com", None),
    ("example.com:443", None),
]


@pytest.mark.parametrize(("target", "path"), ABSOLUTE_TARGETS)
def test_absolute_form_targets(routes: RouteNormaliser, target: str, path: str | None) -> None:
    """A target of only a scheme and host (with a port, query or fragment) has the path "/",
    and is the route of "/", not "(invalid)"; a query never lends the target its path."""
    assert clean_paths(pa.array([target], pa.string())).to_pylist() == [path]
    assert routes.template(target) == (INVALID_ROUTE if path is None else
                                       routes.template(path))


def _clean_by_hand(target: str | None) -> str | None:
    """The README's cleaning rules with Python's re: scheme and host (up to the first "/",
    "?" or "#") made "/", then query and fragment dropped, repeated slashes made one, a
    trailing slash dropped; what does not start with a slash then (no path at all) is None."""
    if target is None:
        return None
    path = re.sub(r"\A[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*", "/", target)
    path = re.sub(r"[?#][^\n]*\Z", "", path)  # RE2's "." is no newline, its "$" the end
    path = re.sub(r"//+", "/", path)
    path = re.sub(r"([^\n])/\Z", r"\1", path)
    return path if path.startswith("/") else None


_TARGET_TEXT = st.text(alphabet="/?#:.-+aZ09\n é", max_size=24)


@given(st.lists(st.one_of(st.none(), _TARGET_TEXT, _TARGET_TEXT.map(lambda t: "http://" + t)),
                max_size=30))
def test_clean_paths_against_the_rules(targets: list[str | None]) -> None:
    """Every target, clean or not (only the untidy ones go through the regexes), comes out as
    the rules written with Python's re say."""
    assert clean_paths(pa.array(targets, pa.string())).to_pylist() == [
        _clean_by_hand(t) for t in targets]
