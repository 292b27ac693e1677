"""Output formats: full (ruff-like, with source), concise (flake8-like) and json (ruff's schema)."""

from __future__ import annotations

FORMATS = ("full", "concise", "json")
