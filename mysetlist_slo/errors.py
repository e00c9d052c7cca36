"""Exception types raised by mysetlist_slo; each carries the data a caller needs to act on it."""

from __future__ import annotations

from dataclasses import dataclass


class SloError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SloError):
    """Raised when a configuration file is missing, not YAML, or fails validation."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: invalid configuration\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class RowProblem:
    """One rejected input row: where it is and what is wrong with it."""

    file: str
    line: int
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.problem}"


class IngestError(SloError):
    """Raised when a file cannot be loaded; nothing of it was stored."""

    def __init__(self, file: str, message: str, problems: list[RowProblem] | None = None,
                 rejected: int = 0) -> None:
        self.file = file
        self.problems = problems or []
        self.rejected = rejected
        self.kind: str | None = None  # set once the file's kind is known
        lines = [f"{file}: {message}"] + [f"  {p}" for p in self.problems]
        if rejected > len(self.problems):
            lines.append(f"  ... and {rejected - len(self.problems)} more")
        super().__init__("\n".join(lines))


class StoreBusyError(SloError):
    """Raised when another process holds the database's write lock."""

    def __init__(self, path: str, holder: str, waited: float = 0.0) -> None:
        self.path = path
        self.holder = holder
        self.waited = waited
        advice = (f"still busy after waiting {waited:g} s" if waited
                  else "try again when it finishes, or pass --wait")
        super().__init__(f"{path}: database is busy (held by {holder}); {advice}")


class SchemaVersionError(SloError):
    """Raised when a database was written by a newer schema version than this package knows."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"{path}: database schema version {found} is newer than this mysetlist-slo "
            f"supports ({supported}); upgrade the package to read it"
        )


class InsufficientDataError(SloError):
    """Raised when a window holds too few events to compute what was asked."""

    def __init__(self, window: str, count: int, minimum: int, unit: str = "events") -> None:
        self.window = window
        self.count = count
        self.minimum = minimum
        self.unit = unit
        super().__init__(f"{window}: {count} {unit}, fewer than the {minimum} required")


class CollectError(SloError):
    """Raised when a live system cannot be read (unreachable, wrong credentials, refused query);
    nothing of that snapshot was stored. The message never holds a password or token."""

    def __init__(self, target: str, message: str) -> None:
        self.target = target
        super().__init__(f"{target}: {message}")


class StoreNotFoundError(SloError):
    """Raised when a report or notebook finds no store where the lookup rule points."""

    def __init__(self, path: object, how: str) -> None:
        self.path = str(path)
        self.how = how
        super().__init__(
            f"{path}: no store here (found from {how}); create it with "
            f"`mysetlist-slo demo` (demo data) or `mysetlist-slo ingest --db {path} FILE...`, "
            "or point $MYSETLIST_SLO_DB or the db parameter at an existing store")


class LakeError(SloError):
    """Raised when a Parquet lake cannot be opened or written: not a lake, busy, remote, damaged
    manifest; what was in the lake stays as it was."""

    def __init__(self, lake: str, message: str) -> None:
        self.lake = lake
        super().__init__(f"{lake}: {message}")


class RollupError(SloError):
    """Raised when a lake cannot be rolled up (no files, unusable output folder, engine
    missing); nothing of the output is marked complete."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")
