"""Per-file facts: what one file says about its classes and functions (cached with its result).

Facts hold no ast nodes, only names, :class:`~nnlint.semantic.values.Value` summaries and
positions, so they pickle small and can be combined across files by the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from nnlint.semantic.values import Value


class Assignment(NamedTuple):
    """``self.<name> = <value>`` (or ``register_buffer``, ``setattr``, ``.append``) in a method."""

    name: str
    value: Value
    method: str
    #: inside an ``if``/``for``/``while``/``with``/``try``/``match`` block of the method
    conditional: bool
    row: int
    #: ``self.<name>.append(v)`` / ``self.<name>[k] = v``: ``value`` is one element
    element: bool = False


class Use(NamedTuple):
    """How a method reads ``self.<name>``.

    ``how``: ``moved`` (``.to(device)``, ``.cuda()``, ``.type_as(x)``, ``.cpu()``), ``meta``
    (``.shape``, ``.device``, ``len()``, ``is None``), ``index`` (used as a subscript),
    ``call`` (``self.name(...)``) or ``read`` (any other use of its values).
    """

    name: str
    method: str
    how: str


class SelfCall(NamedTuple):
    """``self.<name>(...)`` in a method; ``lazy`` when under a run-once guard (``if self.x is None:``)."""

    name: str
    lazy: bool


class FunctionFacts(NamedTuple):
    """A function or method: what it returns and which methods of ``self`` it calls."""

    name: str
    returns: tuple[Value, ...] = ()
    self_calls: tuple[SelfCall, ...] = ()
    #: a method with an instance parameter (not a static or class method)
    is_instance_method: bool = True
    #: makes tensors with torch factories and no ``device=`` (it relies on the default device)
    default_device: bool = False


@dataclass
class LossSite:
    """A loss call (``F.cross_entropy(a, y)``, ``criterion(a, y)``) whose input the model must resolve."""

    row: int
    column: int
    end_row: int
    end_column: int
    #: what the loss applies itself: "softmax" (cross-entropy) or "sigmoid" (with-logits losses)
    applies: str
    loss: Value
    argument: Value
    loss_text: str
    argument_text: str
    #: the class whose ``self`` the site sees (for ``self(x)``, ``self.head``), None outside methods
    owner: str | None
    function: str


@dataclass
class ClassFacts:
    """A class: its methods, the attributes they assign and how they read them."""

    qualname: str
    bases: list[str]
    methods: dict[str, FunctionFacts] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)
    #: attributes an override of ``_apply``/``to``/``cuda`` moves by hand (``self.stride = fn(self.stride)``)
    moved_by_override: frozenset[str] = frozenset()

    def assigned(self, name: str) -> list[Assignment]:
        return [assignment for assignment in self.assignments if assignment.name == name]

    def uses_of(self, name: str) -> list[Use]:
        return [use for use in self.uses if use.name == name]


class RoutineCall(NamedTuple):
    """A call that hands a model to a function of another module (``evaluate(model, loader)``), for NN702/NN703.

    A chain lists the calls from this one up to module-level code, as (caller, place) pairs:
    ``("`main`", "line 30 of train.py"), ("module-level code", "line 41 of train.py")``; None when
    every path switches the model to eval mode (``eval_chain``) or disables gradients (``grad_chain``) first.
    """

    callee: str  # the function's qualified name, as the calling file imports it
    eval_chain: tuple[tuple[str, str], ...] | None
    grad_chain: tuple[tuple[str, str], ...] | None
    #: the calling code may need gradients through the call (attacks, saliency maps)
    needs_grad: bool


class ModeEffect(NamedTuple):
    """A function leaves the module passed as one of its parameters in eval mode (for NN701 in its callers)."""

    parameter: str
    position: int | None  # among the positional parameters; None: keyword-only
    call: str  # ``model.eval()``
    place: str  # ``line 8 of utils.py``


@dataclass
class FileFacts:
    """Everything one file contributes to the project model."""

    classes: list[ClassFacts] = field(default_factory=list)
    #: functions (module level and nested), by qualified name
    functions: dict[str, FunctionFacts] = field(default_factory=dict)
    loss_sites: list[LossSite] = field(default_factory=list)
    routine_calls: list[RoutineCall] = field(default_factory=list)
    #: module-level functions that leave a parameter in eval mode, by qualified name
    mode_effects: dict[str, tuple[ModeEffect, ...]] = field(default_factory=dict)
