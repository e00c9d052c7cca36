"""MkDocs hook: the command-line reference, written from the parser itself so it cannot drift.

The example pages are the notebooks themselves (docs/examples/ links to notebooks/).
"""

from __future__ import annotations

import argparse

def _help(parser: argparse.ArgumentParser, title: str) -> list[str]:
    lines = [f"## `{title}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:  # argparse has no public accessor for subcommands
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                lines += _help(sub, f"{title} {name}")
    return lines


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the cli-help marker with the help text of every command."""
    if "<!-- cli-help -->" not in markdown:
        return markdown
    from mysetlist_slo.cli import build_parser

    return markdown.replace("<!-- cli-help -->", "\n".join(_help(build_parser(), "mysetlist-slo")))
