"""NN101-NN104: functional calls whose train/eval behaviour is not tied to the module's mode."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import ClassVar

from nnlint import torch_facts
from nnlint.engine.context import Argument, CallSite, Mode, find_argument, mentions_training
from nnlint.engine.model import AddKeywordArgument, Finding, Fix, GuardArgumentWithTraining, ReplaceArgument
from nnlint.rules.base import Rule

FUNCTIONAL = "torch.nn.functional"

#: Functional dropouts (training=True by default) and the name of their probability argument.
DROPOUT_PROBABILITY = {
    f"{FUNCTIONAL}.dropout": "p",
    f"{FUNCTIONAL}.dropout1d": "p",
    f"{FUNCTIONAL}.dropout2d": "p",
    f"{FUNCTIONAL}.dropout3d": "p",
    f"{FUNCTIONAL}.alpha_dropout": "p",
    f"{FUNCTIONAL}.feature_alpha_dropout": "p",
    f"{FUNCTIONAL}.multi_head_attention_forward": "dropout_p",
}
#: ``torch.dropout`` and friends: the training flag is called ``train`` and has no default.
TORCH_DROPOUTS = frozenset(
    f"torch.{name}" for name in ("dropout", "alpha_dropout", "feature_dropout", "feature_alpha_dropout")
)
#: Functional ops whose training flag defaults to False.
TRAINING_FALSE_BY_DEFAULT = {
    f"{FUNCTIONAL}.batch_norm": (
        "always normalises with the running statistics and never updates them, even in training"
    ),
    f"{FUNCTIONAL}.rrelu": "uses the fixed eval-mode slope even in training",
    f"{FUNCTIONAL}.rrelu_": "uses the fixed eval-mode slope even in training",
}
ATTENTION = f"{FUNCTIONAL}.scaled_dot_product_attention"


def training_parameter(qualname: str) -> str:
    """Name of the training flag of a dropout-like callable."""
    return "train" if qualname in TORCH_DROPOUTS else "training"


def is_zero(node: ast.expr | None) -> bool:
    """The literal ``0`` or ``0.0``."""
    return isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value == 0


def _probability_is_zero(site: CallSite, name: str) -> bool:
    signature = torch_facts.signature(site.qualname)
    return is_zero(find_argument(site.node, signature, name).value)


def _training_argument(site: CallSite) -> Argument:
    signature = torch_facts.signature(site.qualname)
    return find_argument(site.node, signature, training_parameter(site.qualname))


def _add_training_fix(site: CallSite, keeps: str, deterministic: bool) -> Fix | None:
    """``training=self.training``; ``keeps`` is the mode whose behaviour does not change."""
    if site.function.self_name is None:
        return None
    value = f"{site.function.self_name}.training"
    edit = AddKeywordArgument(site.file.span(site.node), "training", value)
    return Fix("safe", f"Add `training={value}`", (edit,), keeps_modes=(keeps,), makes_eval_deterministic=deterministic)


def _no_self_note(site: CallSite) -> str:
    return "" if site.function.self_name is not None else " (no fix: no `self` in this static or class method)"


class _MissingTrainingFlag(Rule):
    """A call that needs ``training=`` and falls back to a default that is right in one mode only."""

    fix = "safe"
    #: The mode in which the default is right: calls that can only run there are fine.
    default_mode: ClassVar[Mode]

    def effect(self, site: CallSite) -> str:
        """What goes wrong in the other mode."""
        raise NotImplementedError

    def is_no_op(self, site: CallSite) -> bool:
        return False

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        training = _training_argument(site)
        if training.present or training.unknown or site.mode is self.default_mode or self.is_no_op(site):
            return
        default = self.default_mode is Mode.TRAIN
        yield site.finding(
            self.code,
            f"`{site.short_name}` defaults to `training={default}`: it {self.effect(site)}; "
            f"pass `training=self.training`{_no_self_note(site)}",
            fix=_add_training_fix(site, self.default_mode.value, self.default_mode is Mode.TRAIN),
        )


class DropoutIgnoresEval(_MissingTrainingFlag):
    code = "NN101"
    name = "dropout-ignores-eval-mode"
    summary = "Functional dropout without `training=` keeps dropping after `model.eval()`"
    calls = frozenset(DROPOUT_PROBABILITY)
    default_mode = Mode.TRAIN

    def effect(self, site: CallSite) -> str:
        return "keeps dropping after `model.eval()`"

    def is_no_op(self, site: CallSite) -> bool:
        return _probability_is_zero(site, DROPOUT_PROBABILITY[site.qualname])


class HardCodedTrainingFlag(Rule):
    """Opt-in: a literal flag is more often deliberate than not (MC dropout, a Tacotron prenet,
    inference-only ports); see rules/NN102.md for the count."""

    code = "NN102"
    name = "hard-coded-training-flag"
    summary = "Dropout called with a literal `training=True`/`False` instead of the module's mode"
    fix = "unsafe"
    default_enabled = False
    calls = frozenset(DROPOUT_PROBABILITY) | TORCH_DROPOUTS

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        training = _training_argument(site)
        value = training.value
        if not (isinstance(value, ast.Constant) and isinstance(value.value, bool)):
            return
        if (value.value and site.mode is Mode.TRAIN) or (not value.value and site.mode is Mode.EVAL):
            return  # the literal states what the guard already guarantees
        if _probability_is_zero(site, DROPOUT_PROBABILITY.get(site.qualname, "p")):
            return
        if value.value:
            effect = "applied even after `model.eval()`"
            deliberate = "if it must stay on at inference (MC dropout, a Tacotron prenet), add `# noqa: NN102`"
        else:
            effect = "never applied, not even in training"
            deliberate = "if the module only ever runs at inference, add `# noqa: NN102`"
        keyword = training_parameter(site.qualname)
        fix = None
        if site.function.self_name is not None:
            replacement = f"{site.function.self_name}.training"
            edit = ReplaceArgument(site.file.span(site.node), keyword, training.position, replacement)
            fix = Fix(
                "unsafe",
                f"Replace `{value.value}` with `{replacement}`",
                (edit,),
                keeps_modes=("train",) if value.value else ("eval",),
                makes_eval_deterministic=bool(value.value),
            )
        yield site.finding(
            self.code,
            f"`{site.short_name}` hard-codes `{keyword}={value.value}`: dropout is {effect}; "
            f"use `{keyword}=self.training`{_no_self_note(site)}, or {deliberate}",
            node=value,
            fix=fix,
        )


class OppositeTrainingDefault(_MissingTrainingFlag):
    code = "NN103"
    name = "functional-training-default-false"
    summary = "`F.batch_norm`/`F.rrelu` without `training=` behave as in eval mode even when training"
    calls = frozenset(TRAINING_FALSE_BY_DEFAULT)
    default_mode = Mode.EVAL

    def effect(self, site: CallSite) -> str:
        return TRAINING_FALSE_BY_DEFAULT[site.qualname]


class AttentionDropoutIgnoresEval(Rule):
    code = "NN104"
    name = "attention-dropout-ignores-eval-mode"
    summary = "`F.scaled_dot_product_attention` with a `dropout_p` that is not tied to `self.training`"
    fix = "safe"
    calls = frozenset({ATTENTION})

    def check_call(self, site: CallSite) -> Iterable[Finding]:
        signature = torch_facts.signature(site.qualname)
        argument = find_argument(site.node, signature, "dropout_p")
        value = argument.value
        if value is None or is_zero(value) or site.mode is Mode.TRAIN or _tied_to_mode(site, value):
            return
        fix = None
        self_name = site.function.self_name
        if self_name is not None:
            edit = GuardArgumentWithTraining(
                site.file.span(site.node), "dropout_p", argument.position, self_name, "0.0"
            )
            fix = Fix(
                "safe",
                f"Use `dropout_p=... if {self_name}.training else 0.0`",
                (edit,),
                keeps_modes=("train",),
                makes_eval_deterministic=True,
            )
        yield site.finding(
            self.code,
            f"`{site.short_name}` applies attention dropout `{site.file.text_of(value)}` in eval mode too; "
            f"use `dropout_p=... if self.training else 0.0`{_no_self_note(site)}",
            node=value,
            fix=fix,
        )


def _tied_to_mode(site: CallSite, value: ast.expr) -> bool:
    """The probability already depends on the mode, or is the caller's business."""
    if mentions_training(value):
        return True
    if isinstance(value, ast.Name):
        if site.function.is_parameter(value.id):
            return True  # forwarded from the caller, like training=training
        return any(
            guarded or mentions_training(assigned) for assigned, guarded in site.function.assignments_to(value.id)
        )
    return False
