"""Rules found by running the model (``nnlint runtime``), where static analysis cannot see."""

from __future__ import annotations

from nnlint.rules.base import Rule


class _RuntimeRule(Rule):
    runtime_only = True


class EvalNotDeterministic(_RuntimeRule):
    code = "NN105"
    name = "eval-not-deterministic"
    summary = "The model's output in eval mode varies between two runs"
