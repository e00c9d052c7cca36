"""Delivery of a report's summary to where the team reads it, through apprise.

One apprise URL per target (``slack://…``, ``mailtos://…``, ``msteams://…``, ``json://…``; see
apprise's documentation). The body is the Markdown digest; apprise turns it into each service's
own format (Slack mrkdwn, HTML mail, Teams cards). Outside text in the digest is already
backslash-escaped, which apprise translates into each format's escapes, so a route cannot
become a link, a mention or markup on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import apprise

from mysetlist_slo.errors import SloError
from mysetlist_slo.report.summaries import summary_markdown


class DeliveryError(SloError):
    """Raised when a summary could not be delivered to one or more targets (the report itself
    was written)."""

    def __init__(self, failures: list[DeliveryResult]) -> None:
        self.failures = failures
        lines = [f"  {f.target}: {f.error}" for f in failures]
        super().__init__(f"{len(failures)} notification(s) not delivered:\n" + "\n".join(lines))


@dataclass(frozen=True)
class DeliveryResult:
    """One target: where (secrets hidden), whether it was delivered, and why not."""

    target: str
    delivered: bool
    error: str | None = None


def message(document: dict[str, Any], report_url: str | None = None) -> str:
    """Return the Markdown body sent for ``document``, with a link to the report when
    ``report_url`` (a URL or a path) is given."""
    body = summary_markdown(document)
    if report_url:
        # Spaces and parentheses would end a Markdown link target early.
        target = quote(report_url, safe=":/?#[]@!$&'*+,;=%~")
        body += f"\n[Open the report]({target})\n"
    return body


def deliver(document: dict[str, Any], urls: list[str],
            report_url: str | None = None) -> list[DeliveryResult]:
    """Send the summary of ``document`` to every apprise URL in ``urls``; return one
    DeliveryResult per URL (a URL apprise does not know is a failure, not an exception)."""
    title = f"{document['title']} {document['period']['label']}"
    body = message(document, report_url)
    results = []
    for url in urls:
        target = apprise.Apprise()
        if not target.add(url):
            results.append(DeliveryResult(_hidden(url), False,
                                          "not a notification URL apprise knows"))
            continue
        shown = target[0].url(privacy=True)
        sent = target.notify(body=body, title=title, body_format=apprise.NotifyFormat.MARKDOWN)
        results.append(DeliveryResult(shown, bool(sent),
                                      None if sent else "the service refused or did not "
                                      "answer (see the log above)"))
    return results


def _hidden(url: str) -> str:
    """Return ``url`` with everything after the scheme hidden (it may hold a token)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://…" if rest else "(unreadable URL)"
