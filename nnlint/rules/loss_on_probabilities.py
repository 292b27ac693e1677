"""NN404: probabilities fed to a loss that applies softmax or sigmoid itself — in any code, across calls."""

from __future__ import annotations

from collections.abc import Iterable

from nnlint.engine.context import FileContext
from nnlint.engine.model import Finding, Span
from nnlint.rules.base import Rule
from nnlint.semantic.extract import LOSS_TRIGGERS
from nnlint.semantic.facts import FileFacts
from nnlint.semantic.requirements import WHERE, ProbabilitiesInto


class LossOnProbabilities(Rule):
    code = "NN404"
    name = "loss-on-probabilities"
    summary = "Softmax output fed to `cross_entropy`, or sigmoid output to a `...with_logits` loss"
    checks_facts = True
    triggers = frozenset(LOSS_TRIGGERS)

    def check_facts(self, file: FileContext, facts: FileFacts) -> Iterable[Finding]:
        """Every loss call whose input may be probabilities; the model decides which are."""
        for site in facts.loss_sites:
            unresolved = site.applies == "unresolved"  # ``self.criterion(...)``: the model looks it up
            message = (
                f"`{site.loss_text}` applies {{applies}} itself, but `{site.argument_text}` is already {{given}} "
                f"output{WHERE}: {{effect}}; pass the logits"
            )
            yield Finding(
                self.code,
                message,
                file.source.path,
                Span(site.row, site.column, site.end_row, site.end_column),
                requires=(
                    ProbabilitiesInto(
                        site.argument,
                        site.owner,
                        "" if unresolved else site.applies,
                        site.loss if unresolved else None,
                    ),
                ),
            )
