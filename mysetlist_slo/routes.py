"""Route normalisation: request paths become a bounded set of route templates, for every source."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

OTHER_ROUTE = "(other)"
INVALID_ROUTE = "(invalid)"
MAX_TEMPLATE_LENGTH = 200

_SEGMENT_RULES = [
    # Checked in order; the first that matches names the placeholder.
    (re.compile(r"^\d+$"), "[id]"),
    (re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
     "[uuid]"),
    (re.compile(r"^(?=[^/]*\d)[0-9a-fA-F]{12,}$"), "[hash]"),
    # Long opaque tokens (session ids, keys): letters and digits mixed, 20 characters or more.
    (re.compile(r"^(?=[^/]*\d)(?=[^/]*[A-Za-z])[A-Za-z0-9_\-=]{20,}$"), "[token]"),
]


def _pattern_regex(pattern: str) -> tuple[re.Pattern[str], tuple[int, int, int]]:
    """Compile a Next.js-style route template; return its regex and its precedence key."""
    parts = []
    static = dynamic = catch_all = 0
    for segment in pattern.strip("/").split("/"):
        if not segment:
            continue
        if segment.startswith("[[...") and segment.endswith("]]"):
            parts.append(r"(?:/.+)?")
            catch_all += 1
        elif segment.startswith("[...") and segment.endswith("]"):
            parts.append(r"/.+")
            catch_all += 1
        elif segment.startswith("[") and segment.endswith("]"):
            parts.append(r"/[^/]+")
            dynamic += 1
        else:
            parts.append("/" + re.escape(segment))
            static += 1
    regex = re.compile("^" + "".join(parts) + ("" if parts else "/") + "$")
    # Next.js precedence: static routes before dynamic ones before catch-alls.
    return regex, (catch_all, dynamic, -static)


def clean_path(target: str) -> str | None:
    """Return the path of a request target without query or fragment, or None if it is no path."""
    if target.startswith(("http://", "https://")):
        # Absolute-form targets (proxies, scanners): keep only the path.
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    if not target.startswith("/"):
        return None
    path = target.split("?", 1)[0].split("#", 1)[0]
    path = re.sub(r"/{2,}", "/", path)
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


class RouteNormaliser:
    """Maps request paths to route templates, keeping at most ``max_routes`` distinct ones."""

    def __init__(self, patterns: Iterable[str] = (), max_routes: int = 500,
                 known_routes: Iterable[str] = (), min_requests: int = 5) -> None:
        compiled = [(p, *_pattern_regex(p)) for p in patterns]
        compiled.sort(key=lambda item: item[2])
        self._patterns = [(p, regex) for p, regex, _ in compiled]
        self._configured = {p for p, _ in self._patterns}
        self.max_routes = max_routes
        self.min_requests = min_requests
        self.known: set[str] = set(known_routes)
        self.added: list[str] = []
        self._cache: dict[str, str] = {}

    def template(self, target: str) -> str:
        """Return the route template of one request target, before the cardinality bound."""
        cached = self._cache.get(target)
        if cached is not None:
            return cached
        path = clean_path(target)
        result = INVALID_ROUTE if path is None else self._match(path)
        if len(self._cache) < 200_000:
            self._cache[target] = result
        return result

    def _match(self, path: str) -> str:
        for pattern, regex in self._patterns:
            if regex.match(path):
                return pattern
        segments = []
        for segment in path.split("/")[1:]:
            for rule, placeholder in _SEGMENT_RULES:
                if rule.match(segment):
                    segment = placeholder
                    break
            segments.append(segment)
        return ("/" + "/".join(segments))[:MAX_TEMPLATE_LENGTH]

    def _admit(self, templates: Counter[str]) -> dict[str, str]:
        """Decide the stored route of each template of a batch.

        Configured and already known templates stay. A new one becomes a route only when it
        was seen ``min_requests`` times in the batch and fewer than ``max_routes`` are known;
        one-off paths (scanners probing random URLs) go to "(other)".
        """
        decided = {}
        for template, count in templates.most_common():
            if template in self.known or template in self._configured or template in (
                    OTHER_ROUTE, INVALID_ROUTE):
                decided[template] = template
            elif count >= self.min_requests and len(self.known) < self.max_routes:
                self.known.add(template)
                self.added.append(template)
                decided[template] = template
            else:
                decided[template] = OTHER_ROUTE
        return decided

    def normalise(self, targets: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Return the route template of every request target in ``targets`` (nulls stay null)."""
        encoded = pc.dictionary_encode(targets)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        distinct = encoded.dictionary.to_pylist()
        counts = pc.value_counts(encoded.indices)
        frequency: Counter[str] = Counter()
        templates = [self.template(t) for t in distinct]
        for item in counts.to_pylist():
            if item["values"] is not None:
                frequency[templates[item["values"]]] += item["counts"]
        decided = self._admit(frequency)
        routes = pa.array([decided.get(t, OTHER_ROUTE) for t in templates], pa.string())
        return pc.take(routes, encoded.indices)
