"""What the collectors of HTTP APIs (Prometheus, PostHog, Sentry) share: secrets read from a
file or the environment and never shown, one client with timeouts and retries, and the check
that a next page stays on the server the credentials are for."""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import tenacity

from mysetlist_slo.collect._secrets import scrub
from mysetlist_slo.errors import CollectError


def secret_file(path: Path, what: str) -> str:
    """Return the first line of ``path`` (a token, a key, ``user:password``), stripped; raise
    CollectError naming the file when it cannot be read or is empty."""
    try:
        lines = path.read_text("utf-8").strip().splitlines()
    except OSError as exc:
        raise CollectError(str(path), f"cannot read the {what}: {exc.strerror}") from None
    if not lines or not lines[0].strip():
        raise CollectError(str(path), f"{what} file is empty")
    return lines[0].strip()


def secret_env(names: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
    """Return the value of the first of the variables ``names`` that is set and not blank in
    ``env`` (default: the process environment), stripped; None when none is."""
    env = os.environ if env is None else env
    return next((env[name].strip() for name in names if env.get(name, "").strip()), None)


class Credentials(httpx.Auth):
    """An Authorization header, and the secrets in it (to scrub from any error text)."""

    def __init__(self, header: str, secret: str) -> None:
        self.header = header
        self.secrets = [secret, header]

    @classmethod
    def bearer(cls, token: str) -> Credentials:
        """Return the credentials of a bearer token."""
        return cls(f"Bearer {token}", token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.header
        yield request


class _Transient(Exception):
    """A failure worth retrying: a timeout, a dropped connection, a 429 or 5xx answer."""


class ApiClient:
    """One HTTP API: a base URL, timeouts, retries with exponential backoff (tenacity), and
    errors that name the server (``source``) without any secret."""

    def __init__(self, url: str, source: str, *, auth: httpx.Auth | None = None,
                 timeout_s: float = 30.0, retries: int = 4, backoff_s: float = 1.0) -> None:
        """Open a client of the API at ``url`` (no credentials in it: the callers refuse
        those, each naming where its secret comes from instead)."""
        base = httpx.URL(url)
        self.origin = (base.scheme, base.host, base.port)
        self.source = source
        self.retries, self.backoff_s = retries, backoff_s
        # Credentials name their secrets; any other httpx.Auth is scrubbed of nothing.
        self.secrets: list[str] = list(getattr(auth, "secrets", []))
        self.client = httpx.Client(base_url=url.rstrip("/"), auth=auth,
                                   timeout=httpx.Timeout(timeout_s))

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()

    def _once(self, method: str, url: str | httpx.URL, detail: str,
              kwargs: dict[str, Any]) -> httpx.Response:
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise _Transient(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Transient(f"cannot connect: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code != 200:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            reason = answer.get(detail) if isinstance(answer, dict) else None
            raise CollectError(self.source, scrub(
                f"HTTP {response.status_code}: {reason or response.reason_phrase}"[:300],
                self.secrets))
        return response

    def request(self, method: str, url: str | httpx.URL, *, what: str, detail: str = "detail",
                **kwargs: Any) -> httpx.Response:
        """Return the 200 answer to one request (``kwargs`` as httpx takes them). Timeouts,
        connection failures, 429 and 5xx answers are retried with exponential backoff; after
        the last attempt raises CollectError (``what`` failed after N attempts), and at once
        on any other answer (HTTP status and the answer's ``detail`` field, secrets hidden)."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retries),
            wait=tenacity.wait_exponential(multiplier=self.backoff_s, max=60),
            retry=tenacity.retry_if_exception_type(_Transient), reraise=True)
        try:
            return retrying(self._once, method, url, detail, kwargs)
        except _Transient as exc:
            raise CollectError(self.source, f"{what} failed after {self.retries} attempts: "
                               f"{scrub(str(exc), self.secrets)}") from None

    def json(self, response: httpx.Response) -> Any:
        """Return the answer's JSON; raise CollectError when it is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise CollectError(self.source, f"{response.url.path}: answer is not JSON") from None

    def next_page(self, link: str, what: str) -> httpx.URL:
        """Return the absolute URL of a next page the server linked to; raise CollectError
        when it is on another host: the credentials go to no other server."""
        following = httpx.URL(link)
        if not following.is_relative_url and (
                following.scheme, following.host, following.port) != self.origin:
            raise CollectError(self.source, f"{what}: the next page is on another host "
                               f"({following.host}); not followed")
        return self.client.base_url.join(following)
