"""Route normalisation: request paths become a bounded set of route templates, for every source.

Work is vectorised over the distinct targets of a batch (Arrow compute, RE2 regexes); Python
only looks at the distinct *templates*, of which there are few, to bound their number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from mysetlist_slo._regex import escape

OTHER_ROUTE = "(other)"
INVALID_ROUTE = "(invalid)"
MAX_TEMPLATE_LENGTH = 200
# The scheme and authority of an absolute-form request target (RFC 9112 3.2.2).
SCHEME_AND_HOST = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*"

# Applied in order to each path segment of a path no configured pattern matched. A replaced
# segment ("[id]") matches no later rule, so the first rule that fits wins.
_SEGMENT_RULES = [
    (r"^\d+$", "[id]"),
    (r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", "[uuid]"),
    (r"^[0-9a-fA-F]*[0-9][0-9a-fA-F]*$", None),  # hex with a digit: a hash when long, see below
    # Long opaque tokens (session ids, keys): letters and digits mixed, 20 characters or more.
    (r"^[A-Za-z0-9_=-]{20,}$", "[token]"),
]
_HASH_MIN_LENGTH = 12


def _pattern_regex(pattern: str, any_char: str = ".",
                   end: str = "$") -> tuple[str, tuple[int, int, int]]:
    """Return the regex of a Next.js-style route template and its precedence key.

    ``any_char`` and ``end`` spell "any character" and "end of text": RE2's ``.`` and ``$``
    here; the rollup engines spell them so that RE2 and Java regexes agree (engine/).
    """
    parts = []
    static = dynamic = catch_all = 0
    for segment in pattern.strip("/").split("/"):
        if not segment:
            continue
        if segment.startswith("[[...") and segment.endswith("]]"):
            parts.append(f"(/{any_char}*)?")
            catch_all += 1
        elif segment.startswith("[...") and segment.endswith("]"):
            parts.append(f"/{any_char}+")
            catch_all += 1
        elif segment.startswith("[") and segment.endswith("]"):
            parts.append(r"/[^/]+")
            dynamic += 1
        else:
            parts.append("/" + escape(segment))
            static += 1
    regex = "^" + ("".join(parts) or "/") + end
    # Next.js precedence: static routes before dynamic ones before catch-alls.
    return regex, (catch_all, dynamic, -static)


def ordered_patterns(patterns: Iterable[str], any_char: str = ".",
                     end: str = "$") -> list[tuple[str, str]]:
    """Return (pattern, regex) for the configured route patterns in the order they are tried
    (Next.js precedence, then configuration order); see _pattern_regex for the spelling."""
    compiled = [(p, *_pattern_regex(p, any_char, end)) for p in patterns]
    return [(p, regex) for p, regex, _ in sorted(compiled, key=lambda item: item[2])]


def clean_paths(targets: pa.Array) -> pa.Array:
    """Return each request target as a bare path (no scheme and host, query, fragment, double
    or trailing slash; "/" for a scheme and host alone); null where the target is not a path
    at all."""
    # Most targets are clean paths already; the regexes run only on those one of them could
    # change: a scheme or a double slash ("//"), a query or fragment, a trailing slash.
    untidy = pc.fill_null(pc.or_(
        pc.or_(pc.match_substring(targets, "//"), pc.match_substring(targets, "?")),
        pc.or_(pc.match_substring(targets, "#"),
               pc.and_(pc.ends_with(targets, "/"), pc.greater(pc.utf8_length(targets), 1)))),
        False)
    path = targets
    if pc.any(untidy).as_py():
        tidied = pc.filter(targets, untidy)
        # An absolute-form target's authority ends at "/", "?" or "#" (RFC 3986 3.2); it is
        # made "/", so that "https://host" and "https://host?x=1" have the path "/" (RFC 9110
        # 4.2.3: an empty path is "/") and the "//" before a path is made one below.
        tidied = pc.replace_substring_regex(tidied, SCHEME_AND_HOST, "/")
        tidied = pc.replace_substring_regex(tidied, r"[?#].*$", "")
        tidied = pc.replace_substring_regex(tidied, r"//+", "/")
        tidied = pc.replace_substring_regex(tidied, r"(.)/$", r"\1")
        path = pc.replace_with_mask(targets, untidy, tidied)
    return pc.if_else(pc.starts_with(path, "/"), path, pa.scalar(None, pa.string()))


def _collapse_segments(paths: pa.Array) -> pa.Array:
    """Return paths with id-like segments replaced by placeholders."""
    if len(paths) == 0:
        return paths
    segments = pc.split_pattern(paths, "/")
    # The rules run once per distinct segment ("api", "shows" and most ids repeat).
    encoded = pc.dictionary_encode(pc.list_flatten(segments))
    flat = encoded.dictionary
    for rule, placeholder in _SEGMENT_RULES:
        if placeholder is None:
            hashes = pc.and_(pc.match_substring_regex(flat, rule),
                             pc.greater_equal(pc.utf8_length(flat), _HASH_MIN_LENGTH))
            flat = pc.if_else(hashes, "[hash]", flat)
        else:
            flat = pc.replace_substring_regex(flat, rule, placeholder)
    flat = pc.take(flat, encoded.indices)
    joined = pc.binary_join(pa.ListArray.from_arrays(segments.offsets, flat), "/")
    return pc.utf8_slice_codeunits(joined, 0, MAX_TEMPLATE_LENGTH)


class RouteNormaliser:
    """Maps request targets to route templates, keeping at most ``max_routes`` distinct ones."""

    def __init__(self, patterns: Iterable[str] = (), max_routes: int = 500,
                 known_routes: Iterable[str] = (), min_requests: int = 5,
                 candidates: dict[str, int] | None = None) -> None:
        self._patterns = ordered_patterns(patterns)
        self._configured = {p for p, _ in self._patterns}
        self.max_routes = max_routes
        self.min_requests = min_requests
        self.known: set[str] = set(known_routes)
        self.added: list[str] = []
        # Requests seen so far of templates not admitted yet, across batches and files, so a
        # route spread thinly over many files is admitted once it has enough in all.
        self.candidates: dict[str, int] = dict(candidates or {})

    def admitted(self, template: str) -> bool:
        """Return whether ``template`` is a route (configured or admitted), not "(other)"."""
        return template in self.known or template in self._configured

    def templates(self, targets: pa.Array) -> pa.Array:
        """Return the route template of each target, before the cardinality bound."""
        paths = clean_paths(targets)
        result = pa.nulls(len(paths), pa.string())
        unmatched = pc.is_valid(paths)
        for pattern, regex in self._patterns:
            hit = pc.and_(unmatched, pc.fill_null(pc.match_substring_regex(paths, regex), False))
            result = pc.if_else(hit, pattern, result)
            unmatched = pc.and_(unmatched, pc.invert(hit))
        # Only the paths no pattern matched are collapsed (on a site with configured routes,
        # few are).
        if pc.any(unmatched).as_py():
            result = pc.replace_with_mask(
                result, unmatched, _collapse_segments(pc.filter(paths, unmatched)))
        return pc.fill_null(result, INVALID_ROUTE)

    def template(self, target: str) -> str:
        """Return the route template of one request target, before the cardinality bound."""
        return str(self.templates(pa.array([target], pa.string()))[0])

    def _admit(self, templates: Counter[str]) -> dict[str, str]:
        """Decide the stored route of each template of a batch.

        Configured and already known templates stay. A new one becomes a route once it has
        been seen ``min_requests`` times (in this batch and earlier ones together) while fewer
        than ``max_routes`` are known; until then, and for one-off paths (scanners probing
        random URLs), its requests go to "(other)". The candidates kept are bounded too.
        """
        decided = {}
        for template, count in templates.most_common():
            if template in self.known or template in self._configured or template in (
                    OTHER_ROUTE, INVALID_ROUTE):
                decided[template] = template
                continue
            seen = self.candidates.pop(template, 0) + count
            if seen >= self.min_requests and len(self.known) < self.max_routes:
                self.known.add(template)
                self.added.append(template)
                decided[template] = template
            else:
                self.candidates[template] = seen
                decided[template] = OTHER_ROUTE
        limit = 10 * self.max_routes
        if len(self.candidates) > limit:
            kept = sorted(self.candidates.items(), key=lambda item: (-item[1], item[0]))[:limit]
            self.candidates = dict(kept)
        return decided

    def route_map(self, targets: pa.Table) -> pa.Table:
        """Return (target, route, template) for a table of distinct ``target`` with their
        ``requests``.

        A null target (an unreadable request line) maps to "(invalid)". ``template`` is null
        but where the route is "(other)" for a template still tracked as a candidate: rows
        stored with it move to the route if the template is admitted later (see
        store/ingest.py), so "(other)" ends up holding only templates never admitted. The
        candidates are bounded (``10 x max_routes``), so are the templates kept.
        """
        target = targets.column("target").combine_chunks()
        templates = pc.dictionary_encode(self.templates(target))
        names = templates.dictionary.to_pylist()
        frequency: Counter[str] = Counter()
        by_template = pa.table({"template": templates.indices,
                                "requests": targets.column("requests")})
        for row in by_template.group_by("template").aggregate([("requests", "sum")]).to_pylist():
            frequency[names[row["template"]]] += row["requests_sum"]
        decided = self._admit(frequency)
        stored = pa.array([decided.get(name, OTHER_ROUTE) for name in names], pa.string())
        pending = pa.array([name if decided.get(name, OTHER_ROUTE) == OTHER_ROUTE
                            and name in self.candidates else None for name in names],
                           pa.string())
        return pa.table({"target": target, "route": pc.take(stored, templates.indices),
                         "template": pc.take(pending, templates.indices)})

    def normalise(self, targets: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Return the stored route of every request target (a null target is "(invalid)")."""
        counts = pc.value_counts(targets)
        mapping = self.route_map(pa.table({"target": counts.field("values"),
                                           "requests": counts.field("counts")}))
        index = pc.index_in(targets, mapping.column("target"), skip_nulls=False)
        return pc.take(mapping.column("route"), index)
