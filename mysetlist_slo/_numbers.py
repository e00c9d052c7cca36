"""Numbers as prose shows them: one rule for significant digits, from the analysis up."""

from __future__ import annotations

import math


def significant(number: float, digits: int = 3) -> str:
    """Return ``number`` rounded to ``digits`` significant digits, thousands separated
    (``0.400``, ``12.3``, ``1,183``): a small rate keeps its digits instead of printing as 0."""
    if number == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(number)))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{round(number, decimals):,.{decimals}f}"


def whole(number: float) -> str:
    """Return a count rounded to a whole number with thousands separators (``1,105``), as
    every verdict and digest line writes counts."""
    return f"{round(number):,}"


def counted(number: int, noun: str) -> str:
    """Return a count with its noun, plural unless it is one (``1 failover``, ``1,105
    episodes``): ``noun`` is the singular, made plural with an ``s``."""
    return f"{whole(number)} {noun}{'' if number == 1 else 's'}"


def percent(share: float, decimals: int = 1) -> str:
    """Return the fraction ``share`` as a percent with a space before the sign (``20 %``,
    ``98.5 %``), as every table, verdict and digest line writes percentages."""
    return f"{share * 100:,.{decimals}f} %"


def signed(number: float, spec: str) -> str:
    """Return ``number`` formatted with ``spec`` (a ``+`` in it signs a positive number too),
    a negative one's minus as the reports write it: U+2212, the minus sign, not a hyphen.

    >>> [ord(signed(-3, "+.0f")[0]), signed(0.234, "+.2f"), signed(-0.05, "+.0%")[1:]]
    [8722, '+0.23', '5%']
    """
    return format(number, spec).replace("-", "\u2212")


def p_value_text(p: float | None) -> str:
    """Return a p-value as prose writes it, or ``p n/a`` when there is none (None or NaN).

    >>> p_value_text(1e-06), p_value_text(0.1316), p_value_text(float("nan"))
    ('p < 0.001', 'p = 0.132', 'p n/a')
    """
    if p is None or math.isnan(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
