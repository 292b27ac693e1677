"""Output formats: full (ruff-like, with source), concise (flake8-like), json (ruff's schema),
sarif (2.1.0, for code scanning) and github (workflow annotations)."""

from __future__ import annotations

FORMATS = ("full", "concise", "json", "sarif", "github")
