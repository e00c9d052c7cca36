"""Hand-worked cases for slo/budgets.py, written for the survivors of the mutation run of
issue 20 (bench/MUTATION.md): each number is worked on paper."""

from __future__ import annotations
