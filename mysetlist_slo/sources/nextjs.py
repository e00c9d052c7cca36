"""Next.js build output (``.next``): the JavaScript each route loads first, with the sizes
``next build`` reports, and every static file of the build.

What is read, as Next.js writes it (``packages/next/src/build/utils.ts``):

* ``build-manifest.json`` (pages router): ``pages`` maps a page (``/``, ``/artist/[slug]``,
  ``/_app``) to the files it loads; a page's First Load JS is its ``.js`` files together with
  ``/_app``'s, each counted once (``getJsPageSizeInKb``).
* ``app-build-manifest.json`` (app router): ``pages`` maps an entry (``/page``,
  ``/artist/[slug]/page``, ``/layout``) to its files, root layout and runtime included; a
  route is an entry ending in ``/page``, named without it and without route groups
  (``(marketing)``) or parallel slots (``@modal``), as ``normalizeAppPath`` does.
* sizes: each file's bytes and its gzip size at level 9 (the ``gzip-size`` package Next.js
  uses); Next.js prints them in kB of 1000 bytes.
* ``BUILD_ID``: the build's id.

A file a manifest names but the build lacks is an error naming it: a partial copy of a build
would otherwise look smaller than it is.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from mysetlist_slo.errors import IngestError

MANIFESTS = ("build-manifest.json", "app-build-manifest.json")
# Pages Next.js leaves out of its route table (``filterAndSortList``): /_app's files are in
# every page's total instead.
_HIDDEN_PAGES = {"/_app", "/_document", "/_error"}
MAX_MANIFEST_BYTES = 64 << 20
_GIT_HASH = re.compile(r"[0-9a-f]{7,40}")


@dataclass(frozen=True)
class BuildFile:
    """One file of the build: path relative to the build dir, bytes and gzip bytes."""

    file: str
    bytes: int
    gzip_bytes: int


@dataclass(frozen=True)
class RouteFile:
    """A file a route loads first."""

    route: str
    router: str  # "pages" or "app"
    file: str


@dataclass(frozen=True)
class NextBuild:
    """A Next.js build read from disk: its id, commit, time, first-load files per route and
    every static file with its sizes."""

    directory: str
    build_id: str
    commit: str
    built_at: datetime
    routes: tuple[RouteFile, ...]
    files: tuple[BuildFile, ...]  # every file under static/, and every file a route loads

    def size_of(self, file: str) -> BuildFile:
        """Return the sizes of ``file`` (a path relative to the build dir)."""
        return next(f for f in self.files if f.file == file)

    @property
    def fingerprint(self) -> str:
        """Return a digest of what the build holds (ids, routes, file sizes): the same build
        read twice has the same fingerprint."""
        text = json.dumps([self.build_id, self.commit, self.built_at.isoformat(),
                           sorted((r.route, r.router, r.file) for r in self.routes),
                           sorted((f.file, f.bytes, f.gzip_bytes) for f in self.files)])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def gzip_size(data: bytes) -> int:
    """Return the gzip size of ``data`` at level 9, as Next.js measures First Load JS."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def is_next_build(path: str | Path) -> bool:
    """Return True when ``path`` is a Next.js build folder (or a project holding one)."""
    path = Path(path)
    return any((folder / name).is_file() for folder in (path, path / ".next")
               for name in MANIFESTS)


def build_dir(path: str | Path) -> Path:
    """Return the ``.next`` directory of ``path`` (the build dir itself or a project holding
    one); raise IngestError when neither holds a build manifest."""
    path = Path(path)
    for candidate in (path, path / ".next"):
        if any((candidate / name).is_file() for name in MANIFESTS):
            return candidate
    raise IngestError(str(path), "no Next.js build here: neither it nor its .next folder has "
                      "build-manifest.json or app-build-manifest.json (run next build)")


def _manifest(folder: Path, name: str) -> dict[str, list[str]] | None:
    """Return the ``pages`` map of a manifest, or None when the build has no such file."""
    path = folder / name
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise IngestError(str(path), f"larger than {MAX_MANIFEST_BYTES >> 20} MiB: not a "
                          "build manifest")
    try:
        document: Any = json.loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IngestError(str(path), f"not valid JSON: {str(exc)[:120]}") from None
    pages = document.get("pages") if isinstance(document, dict) else None
    if not isinstance(pages, dict):
        raise IngestError(str(path), "pages: missing or not an object")
    for page, files in pages.items():
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise IngestError(str(path), f"pages.{page[:80]}: not a list of file names")
    return pages


def app_route(entry: str) -> str | None:
    """Return the route of an app-router manifest entry (``/artist/[slug]/page`` ->
    ``/artist/[slug]``, ``/(shop)/cart/page`` -> ``/cart``), or None for a layout or other
    non-page entry."""
    if entry != "/page" and not entry.endswith("/page"):
        return None
    segments = [s for s in entry.removesuffix("page").split("/")
                if s and not (s.startswith("(") and s.endswith(")")) and not s.startswith("@")]
    return "/" + "/".join(segments)


def _route_files(pages: dict[str, list[str]] | None,
                 app: dict[str, list[str]] | None) -> list[RouteFile]:
    out: list[RouteFile] = []
    if pages is not None:
        shared = [f for f in pages.get("/_app", []) if f.endswith(".js")]
        for page, files in pages.items():
            if page in _HIDDEN_PAGES:
                continue
            js = [f for f in files if f.endswith(".js")]
            out += [RouteFile(page, "pages", f) for f in dict.fromkeys(js + shared)]
    if app is not None:
        for entry, files in app.items():
            route = app_route(entry)
            if route is None:
                continue
            js = [f for f in files if f.endswith(".js")]
            out += [RouteFile(route, "app", f) for f in dict.fromkeys(js)]
    return out


def _safe_relative(folder: Path, name: str) -> Path:
    """Return the build file ``name`` under ``folder``; refuse a name that leaves it."""
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise IngestError(str(folder), f"manifest names a file outside the build: {name[:120]!r}")
    return folder / relative


def read_build(path: str | Path, commit: str | None = None,
               built_at: datetime | None = None) -> NextBuild:
    """Return the NextBuild in ``path`` (a ``.next`` folder or a project holding one).

    ``commit`` defaults to the CI's commit variable (GITHUB_SHA, CI_COMMIT_SHA,
    VERCEL_GIT_COMMIT_SHA), else the build id when it is a git hash (``generateBuildId``
    set to the commit, a common next.config.js), else "unknown"; ``built_at`` to the time
    BUILD_ID was written.
    Raises IngestError naming the file for a missing build, a malformed manifest or a file
    a manifest names that is not there.
    """
    folder = build_dir(path)
    pages = _manifest(folder, "build-manifest.json")
    app = _manifest(folder, "app-build-manifest.json")
    id_file = folder / "BUILD_ID"
    build_id = (id_file.read_text("utf-8", errors="replace").strip()[:200]
                if id_file.is_file() else "")
    if not build_id:
        raise IngestError(str(id_file), "missing or empty: not a complete Next.js build")
    if commit is None:
        commit = next((os.environ[v] for v in ("GITHUB_SHA", "CI_COMMIT_SHA",
                                               "VERCEL_GIT_COMMIT_SHA") if os.environ.get(v)),
                      build_id if _GIT_HASH.fullmatch(build_id) else "unknown")
    when = built_at or datetime.fromtimestamp(id_file.stat().st_mtime, UTC)
    routes = _route_files(pages, app)
    names = {r.file for r in routes}
    static = folder / "static"
    if static.is_dir():
        names |= {p.relative_to(folder).as_posix() for p in static.rglob("*") if p.is_file()}
    files = []
    for name in sorted(names):
        target = _safe_relative(folder, name)
        if not target.is_file():
            raise IngestError(str(target), "named in the build manifest but missing from the "
                              "build (a partial copy?)")
        data = target.read_bytes()
        files.append(BuildFile(name, len(data), gzip_size(data)))
    return NextBuild(str(folder), build_id, commit[:80], when.astimezone(UTC), tuple(routes),
                     tuple(files))
