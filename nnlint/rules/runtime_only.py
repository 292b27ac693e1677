"""Rules found by running the model (``nnlint runtime``), where static analysis cannot see."""

from __future__ import annotations

from nnlint.rules.base import Rule


class _RuntimeRule(Rule):
    runtime_only = True


class LayerBuiltInForward(_RuntimeRule):
    code = "NN301"
    name = "layer-built-in-forward"
    summary = "An nn layer constructed during forward: new random weights each call, never trained or saved"


class EvalNotDeterministic(_RuntimeRule):
    code = "NN105"
    name = "eval-not-deterministic"
    summary = "The model's output in eval mode varies between two runs"
