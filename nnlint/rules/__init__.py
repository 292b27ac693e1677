"""The rule registry: every rule nnlint knows, by code."""

from __future__ import annotations

from nnlint.rules.base import Rule, Severity
from nnlint.rules.built_in_forward import LayerBuiltInForward
from nnlint.rules.call_correctness import (
    BadTorchArguments,
    DeprecatedFunctional,
    LayerOutputUnused,
    SoftmaxWithoutDim,
    SubmoduleCallArity,
)
from nnlint.rules.eval_routines import EvaluationInTrainingMode, InferenceBuildsGraphs
from nnlint.rules.loss_on_probabilities import LossOnProbabilities
from nnlint.rules.manual_weights import (
    ManualConv,
    ManualConvTranspose,
    ManualEmbedding,
    ManualLinear,
    ManualNorm,
    ManualPReLU,
)
from nnlint.rules.nonexistent_names import NonexistentTorchName
from nnlint.rules.noqa_codes import UnusedNoqa
from nnlint.rules.registration import (
    ModulesInPlainContainer,
    ParametersInPlainContainer,
)
from nnlint.rules.runtime_only import EvalNotDeterministic
from nnlint.rules.shapes import InputShapeMismatch, LayerRankMismatch, LayerSizeMismatch
from nnlint.rules.style import StatelessFunctionalInForward
from nnlint.rules.super_init import MissingSuperInit
from nnlint.rules.tensor_attributes import PlainTensorAttribute
from nnlint.rules.train_mode import (
    AttentionDropoutIgnoresEval,
    DropoutIgnoresEval,
    HardCodedTrainingFlag,
    OppositeTrainingDefault,
)
from nnlint.rules.training_loops import EvalNeverSwitchedBack, GradientsNeverCleared, LossGraphKeptAlive
from nnlint.rules.unused_submodule import UnusedSubmodule
from nnlint.rules.weight_layout import WeightLayoutMismatch

#: Pseudo-codes for problems with a file itself, not a rule's finding.
PARSE_ERROR = "NN001"

ALL_RULES: tuple[type[Rule], ...] = (
    UnusedNoqa,
    DropoutIgnoresEval,
    HardCodedTrainingFlag,
    OppositeTrainingDefault,
    AttentionDropoutIgnoresEval,
    EvalNotDeterministic,
    ManualLinear,
    ManualConv,
    ManualConvTranspose,
    ManualNorm,
    ManualEmbedding,
    ManualPReLU,
    LayerBuiltInForward,
    ModulesInPlainContainer,
    ParametersInPlainContainer,
    PlainTensorAttribute,
    MissingSuperInit,
    UnusedSubmodule,
    SubmoduleCallArity,
    BadTorchArguments,
    SoftmaxWithoutDim,
    LossOnProbabilities,
    DeprecatedFunctional,
    LayerOutputUnused,
    NonexistentTorchName,
    StatelessFunctionalInForward,
    LayerSizeMismatch,
    LayerRankMismatch,
    WeightLayoutMismatch,
    InputShapeMismatch,
    EvalNeverSwitchedBack,
    EvaluationInTrainingMode,
    InferenceBuildsGraphs,
    LossGraphKeptAlive,
    GradientsNeverCleared,
)

RULES_BY_CODE: dict[str, type[Rule]] = {rule.code: rule for rule in ALL_RULES}
ALL_CODES: tuple[str, ...] = (PARSE_ERROR, *RULES_BY_CODE)


def get_rule(code: str) -> type[Rule] | None:
    """The rule class for ``code`` (None for NN001 and unknown codes)."""
    return RULES_BY_CODE.get(code)


def severity_of(code: str) -> Severity:
    """How severe a finding of ``code`` is; NN001 (a file that cannot be read) is an error."""
    rule = RULES_BY_CODE.get(code)
    return rule.severity if rule is not None else "error"
