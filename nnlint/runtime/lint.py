"""``nnlint runtime``: run a model in train and eval mode and report what static analysis cannot see.

The model runs under a ``TorchFunctionMode`` that sees every torch call; each
finding is mapped to the file and line of the user code that made the call,
wherever it is (another module, a helper function).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import traceback
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from nnlint.engine.model import Finding, Span
from nnlint.runtime.models import RuntimeProblem, candidate_inputs, run, tensors_of
from nnlint.runtime.notebook import place_in_cells, position

TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
NNLINT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
#: functions a direct call of which is "the call" (frames of these files belong to the callee)
FUNCTIONAL_FILES = (os.path.join(TORCH_DIR, "nn", "functional.py"), os.path.join(TORCH_DIR, "overrides.py"))

#: function -> (training parameter, its position, its default, probability parameter, its position)
DROPOUTS = {
    F.dropout: ("training", 2, True, "p", 1),
    F.dropout1d: ("training", 2, True, "p", 1),
    F.dropout2d: ("training", 2, True, "p", 1),
    F.dropout3d: ("training", 2, True, "p", 1),
    F.alpha_dropout: ("training", 2, True, "p", 1),
    F.feature_alpha_dropout: ("training", 2, True, "p", 1),
    torch.dropout: ("train", 2, True, "p", 1),
    torch.alpha_dropout: ("train", 2, True, "p", 1),
    torch.feature_dropout: ("train", 2, True, "p", 1),
    torch.feature_alpha_dropout: ("train", 2, True, "p", 1),
}
OPPOSITE_DEFAULT = {F.batch_norm: ("training", 5), F.rrelu: ("training", 3)}
RANDOM_FUNCTIONS = frozenset(
    {
        "rand",
        "randn",
        "randint",
        "rand_like",
        "randn_like",
        "randint_like",
        "randperm",
        "bernoulli",
        "multinomial",
        "normal",
        "poisson",
        "uniform_",
        "normal_",
        "bernoulli_",
        "exponential_",
        "random_",
        "cauchy_",
        "log_normal_",
        "geometric_",
        "dropout",
        "dropout_",
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "alpha_dropout",
        "alpha_dropout_",
        "feature_dropout",
        "feature_dropout_",
        "feature_alpha_dropout",
        "feature_alpha_dropout_",
        "rrelu",
        "rrelu_",
        "scaled_dot_product_attention",
    }
)


@dataclass
class Site:
    """The user code that made a call."""

    path: str
    row: int
    column: int
    end_column: int
    owner: nn.Module | None
    #: the innermost module whose code made the call (a torch layer such as ``nn.Dropout`` too)
    actor: nn.Module | None = None


@dataclass
class Recorder:
    """What the mode observed during one run."""

    root_training: bool
    plain_tensors: dict[int, tuple[nn.Module, str]]
    findings: dict[tuple, Finding] = field(default_factory=dict)
    random_sites: list[tuple[str, Site]] = field(default_factory=list)

    def report(self, code: str, message: str, site: Site, key: tuple | None = None) -> None:
        """Record a finding once per ``key`` (default: per call site)."""
        key = key or (code, site.path, site.row, site.column)
        if key not in self.findings:
            span = Span(site.row, site.column, site.row, max(site.end_column, site.column + 1))
            self.findings[key] = Finding(code, message, site.path, span, noqa_row=site.row)


def _user_site(frame: types.FrameType | None) -> tuple[Site | None, bool]:
    """The first frame outside torch and nnlint, and whether it called the function directly
    (rather than through a torch layer such as ``nn.Dropout``); the site's ``actor`` is the
    innermost module on the way there."""
    direct = True
    actor = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(NNLINT_DIR):
            frame = frame.f_back
            continue
        in_torch = filename.startswith(TORCH_DIR)
        this = frame.f_locals.get("self") if actor is None or not in_torch else None
        if actor is None and isinstance(this, nn.Module):
            actor = this
        if in_torch:
            direct = direct and filename.startswith(FUNCTIONAL_FILES)
            frame = frame.f_back
            continue
        owner = this if isinstance(this, nn.Module) else None
        row, column, end_column = _position(frame)
        return Site(filename, row, column, end_column, owner, actor), direct
    return None, False


def _position(frame: types.FrameType) -> tuple[int, int, int]:
    """Row and columns of the instruction a frame is executing (columns need Python 3.11)."""
    row = frame.f_lineno or 1
    positions = getattr(frame.f_code, "co_positions", None)
    if positions is not None:
        try:
            line, _, column, end_column = list(positions())[frame.f_lasti // 2]
            if line == row and column is not None:
                return row, column, end_column or column + 1
        except (IndexError, ValueError):
            pass
    return row, 0, 1


def _argument(args: tuple, kwargs: dict, name: str, position: int, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else default


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


class CapturedWarnings:
    """The warnings raised while nnlint runs the user's model, each shown once at the user's line.

    A warning torch raises inside a call the mode intercepts points at nnlint's own frame (its
    ``stacklevel`` counts from the call): it is moved to the user code that made the call.
    """

    #: what Python does not show by default either
    HIDDEN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)

    def __init__(self) -> None:
        self._context = warnings.catch_warnings(record=True)
        self.log: list[warnings.WarningMessage] = []
        self.sites: dict[int, Site] = {}  # index in log -> the user code that made the torch call

    def __enter__(self) -> CapturedWarnings:
        self.log = self._context.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)

    def attribute(self, start: int, frame: types.FrameType | None) -> None:
        """The warnings logged from ``start`` on were raised inside the torch call ``frame`` made."""
        site = None
        for index in range(start, len(self.log)):
            if site is None:
                site, _ = _user_site(frame)
                if site is None:
                    return
            self.sites[index] = site

    def notes(self) -> list[str]:
        """``path:row: Category: message``, once each, none pointing into nnlint."""
        notes: list[str] = []
        for index, warning in enumerate(self.log):
            if issubclass(warning.category, self.HIDDEN):
                continue
            path, row = warning.filename, warning.lineno
            site = self.sites.get(index)
            if site is not None and path.startswith((NNLINT_DIR, TORCH_DIR)):
                path, row = site.path, site.row
            elif path.startswith(NNLINT_DIR):
                continue
            text = str(warning.message).strip().splitlines() or [""]
            note = f"{position(path, row)}: {warning.category.__name__}: {text[0]}"
            if note not in notes:
                notes.append(note)
        return notes


class InspectingMode(TorchFunctionMode):
    """Sees every torch call the model makes."""

    def __init__(self, recorder: Recorder, captured: CapturedWarnings | None = None) -> None:
        super().__init__()
        self.recorder = recorder
        self.captured = captured

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        with contextlib.suppress(Exception):  # inspection must never break the model's run
            self._inspect(func, args, kwargs)
        if self.captured is None:
            return func(*args, **kwargs)
        start = len(self.captured.log)
        result = func(*args, **kwargs)
        if len(self.captured.log) > start:
            self.captured.attribute(start, sys._getframe(1))
        return result

    def _inspect(self, func: Any, args: tuple, kwargs: dict) -> None:
        recorder = self.recorder
        site, direct = _user_site(sys._getframe(2))
        if site is None:
            return
        mode_training = site.owner.training if site.owner is not None else recorder.root_training
        owner = f"`{type(site.owner).__name__}`" if site.owner is not None else "the model"
        name = getattr(func, "__name__", "")
        if not recorder.root_training and name in RANDOM_FUNCTIONS and _is_random(func, name, args, kwargs):
            recorder.random_sites.append((name, site))  # its module may be training: not registered
        if direct and func in DROPOUTS:
            flag, position, default, p_name, p_position = DROPOUTS[func]
            training = _argument(args, kwargs, flag, position, default)
            probability = _argument(args, kwargs, p_name, p_position, 0.5)
            if training is True and not mode_training and probability != 0:
                recorder.report(
                    "NN101",
                    f"`{name}` ran with `{flag}=True` while {owner} was in eval mode; pass `{flag}=self.training`",
                    site,
                )
        elif direct and func in OPPOSITE_DEFAULT:
            flag, position = OPPOSITE_DEFAULT[func]
            if _argument(args, kwargs, flag, position, False) is False and mode_training:
                recorder.report(
                    "NN103",
                    f"`{name}` ran with `training=False` while {owner} was training; pass `training=self.training`",
                    site,
                )
        elif direct and func is F.scaled_dot_product_attention:
            dropout = _argument(args, kwargs, "dropout_p", 4, 0.0)
            if not mode_training and dropout:
                recorder.report(
                    "NN104",
                    f"`scaled_dot_product_attention` ran with `dropout_p={dropout}` while {owner} was in eval mode",
                    site,
                )
        for tensor in (*_tensors(args), *_tensors(kwargs)):
            holder = recorder.plain_tensors.get(id(tensor))
            if holder is not None:
                module, attribute = holder
                recorder.report(
                    "NN304",
                    f"`{type(module).__name__}.{attribute}` is a plain tensor attribute, not a buffer: "
                    "`.to(device)`, `.half()` and `state_dict` leave it behind; use `register_buffer`",
                    site,
                    key=("NN304", id(module), attribute),
                )


def _is_random(func: Any, name: str, args: tuple, kwargs: dict) -> bool:
    """Whether this call draws random numbers (a dropout with ``training=False`` or ``p=0`` does not)."""
    if name == "scaled_dot_product_attention":
        return bool(_argument(args, kwargs, "dropout_p", 4, 0.0))
    if name.startswith("rrelu"):
        return bool(_argument(args, kwargs, "training", 3, False))
    if "dropout" in name:  # F.dropout*(input, p, training), torch.*dropout*(input, p, train)
        flag = "training" if "training" in kwargs else "train"
        return bool(_argument(args, kwargs, flag, 2, True)) and _argument(args, kwargs, "p", 1, 0.5) != 0
    return True


def plain_tensor_attributes(model: nn.Module) -> dict[int, tuple[nn.Module, str]]:
    """Tensors kept in a module's ``__dict__`` (neither parameter nor buffer)."""
    found = {}
    for module in model.modules():
        for attribute, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                found[id(value)] = (module, attribute)
    return found


class ConstructionTracker:
    """Records nn.Module constructions while active (NN301: a layer built during forward)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.original = nn.Module.__init__

    def __enter__(self) -> ConstructionTracker:
        original, recorder = self.original, self.recorder

        def tracking_init(module: nn.Module, *args: Any, **kwargs: Any) -> None:
            original(module, *args, **kwargs)
            frame = sys._getframe(1)
            while frame is not None and frame.f_locals.get("self") is module:
                frame = frame.f_back  # the constructors of this very object
            site, _ = _user_site(frame)
            if site is not None:
                recorder.report(
                    "NN301",
                    f"`{type(module).__name__}` is constructed during forward: new random weights at every call, "
                    "never trained, saved or moved; build it in `__init__`",
                    site,
                )

        nn.Module.__init__ = tracking_init  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        nn.Module.__init__ = self.original  # type: ignore[method-assign]


def inspect_run(
    model: nn.Module,
    arguments: tuple,
    train: bool,
    seed: int,
    recorder: Recorder,
    captured: CapturedWarnings | None = None,
) -> Any:
    """One run under the mode; an exception of the model's is a :class:`RuntimeProblem` naming its line."""
    finished: list[nn.Module] = []  # a layer with weights (a leaf module) that ran to the end

    def record(module: nn.Module, _inputs: Any, _output: Any) -> None:
        if not finished and next(module.children(), None) is None and next(module.parameters(False), None) is not None:
            finished.append(module)

    hook = nn.modules.module.register_module_forward_hook(record)
    try:
        with ConstructionTracker(recorder), InspectingMode(recorder, captured):
            return run(model, arguments, train, seed)
    except Exception as error:
        # a layer failing on what another layer made (not on the input given) disagrees with it
        finding = shape_failure(error) if finished else None
        if finding is not None:
            raise ShapeFailure(finding) from None
        raise model_failure(error, "train" if train else None) from None
    finally:
        hook.remove()


#: how torch words a size that does not match what a layer expects
SHAPE_ERRORS = re.compile(
    r"mat1 and mat2 shapes cannot be multiplied|to have \d+ channels, but got \d+ channels"
    r"|running_mean should contain \d+ elements|Given normalized_shape=|input\.size\(-1\) must be equal to input_size"
)


class ShapeFailure(RuntimeProblem):
    """The model crashed on a size mismatch inside a layer: the NN601 finding at the line that called it."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def shape_failure(error: BaseException) -> Finding | None:
    """NN601 for a size mismatch torch raised inside a layer, at the user's line that called the layer."""
    if not isinstance(error, RuntimeError) or not SHAPE_ERRORS.search(str(error)):
        return None
    caller: tuple[types.FrameType, int] | None = None
    layer: nn.Module | None = None
    for frame, row in traceback.walk_tb(error.__traceback__):
        filename = frame.f_code.co_filename
        this = frame.f_locals.get("self")
        if filename.startswith(TORCH_DIR):
            if caller is not None and layer is None and isinstance(this, nn.Module) and not list(this.children()):
                layer = this
        elif not filename.startswith(NNLINT_DIR):
            caller, layer = (frame, row), None
    if caller is None or layer is None:
        return None
    frame, row = caller
    owner = frame.f_locals.get("self")
    name = next((n for n, m in owner.named_children() if m is layer), None) if isinstance(owner, nn.Module) else None
    shown = f"`self.{name}`" if name else f"a `{type(layer).__name__}`"
    _, column, end_column = _position(frame) if frame.f_lineno == row else (row, 0, 1)
    problem = str(error).strip().splitlines()[0]
    message = f"{shown} (`{_layer_repr(layer)}`) cannot take what reaches it: {problem} (found by running the model)"
    span = Span(row, column, row, max(end_column, column + 1))
    return Finding("NN601", message, frame.f_code.co_filename, span, noqa_row=row)


def _layer_repr(layer: nn.Module) -> str:
    text = repr(layer)
    return text if len(text) <= 80 else f"{type(layer).__name__}(...)"


def model_failure(error: BaseException, mode: str | None = None) -> RuntimeProblem:
    """``file.py:12: Net.forward raised RuntimeError: ...``: the deepest frame of the user's code."""
    frames = [(frame, row) for frame, row in traceback.walk_tb(error.__traceback__)]
    user = [(f, row) for f, row in frames if not f.f_code.co_filename.startswith((TORCH_DIR, NNLINT_DIR))]
    real = [(f, row) for f, row in user if not f.f_code.co_filename.startswith("<")]
    lines = str(error).strip().splitlines()
    detail = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    during = f" (in {mode} mode)" if mode else ""
    if not (real or user):
        return RuntimeProblem(f"the model raised {detail}{during}")
    frame, row = (real or user)[-1]
    code = frame.f_code
    where = f"{position(code.co_filename, row)}: {getattr(code, 'co_qualname', code.co_name)}"
    return RuntimeProblem(f"{where} raised {detail}{during}")


def find_input(model: nn.Module, configured: tuple | None, captured: CapturedWarnings | None = None) -> tuple:
    """The configured input, or the first candidate the model accepts (the warnings of the
    candidates it rejects are forgotten)."""
    if configured is not None:
        return configured
    for arguments in candidate_inputs(model):
        start = len(captured.log) if captured is not None else 0
        try:
            run(model, arguments, train=False, seed=0)
        except Exception:
            if captured is not None:
                del captured.log[start:]
            continue
        return arguments
    raise RuntimeProblem("no example input found: pass --input")


def runtime_lint(
    model: nn.Module, arguments: tuple, class_path: str, class_row: int, captured: CapturedWarnings | None = None
) -> list[Finding]:
    """Run ``model`` in eval and train mode; findings mapped to source lines.

    An exception the model raises is a :class:`RuntimeProblem` naming the user's line.
    """
    plain = plain_tensor_attributes(model)
    eval_recorder = Recorder(False, plain)
    try:
        first = inspect_run(model, arguments, False, 1, eval_recorder, captured)
    except ShapeFailure as failure:
        findings = [_compared_with_static(failure.finding)]
        place_in_cells(findings)
        return findings
    second = inspect_run(model, arguments, False, 2, Recorder(False, plain), captured)
    train_recorder = Recorder(True, plain)
    inspect_run(model, arguments, True, 3, train_recorder, captured)
    model.eval()
    findings = {**train_recorder.findings, **eval_recorder.findings}
    varies = _difference(first, second)
    explained = any(code in ("NN101", "NN104", "NN301") for code, *_ in eval_recorder.findings)
    if varies is not None and not explained:
        findings.update(_nondeterminism(eval_recorder, varies, class_path, class_row, model))
    place_in_cells(list(findings.values()))  # a class of a notebook: positions in its cells
    return sorted(findings.values(), key=Finding.sort_key)


def _compared_with_static(finding: Finding) -> Finding:
    """The runtime NN601, saying whether static analysis found it too (and when not, that it could not)."""
    from nnlint.api import lint_text

    try:
        with open(finding.path, "rb") as stream:
            static = lint_text(stream.read(), filename=finding.path, select=["NN601"]).findings
    except (OSError, ValueError):
        return finding
    if any(other.span.row == finding.span.row for other in static):
        return replace(finding, message=f"{finding.message}; `nnlint check` reports it too")
    note = "; `nnlint check` did not see it (a size it cannot read or a flow it does not follow)"
    return replace(finding, message=finding.message + note)


def _difference(first: Any, second: Any) -> float | None:
    a, b = tensors_of(first), tensors_of(second)
    worst = None
    for x, y in zip(a, b, strict=False):
        if x.shape != y.shape or not torch.equal(x, y):
            diff = float((x.double() - y.double()).abs().max()) if x.shape == y.shape else float("inf")
            worst = diff if worst is None else max(worst, diff)
    return worst


def _nondeterminism(recorder: Recorder, varies: float, class_path: str, class_row: int, model: nn.Module) -> dict:
    """NN105 at the first random call (one whose module ``.eval()`` did not reach first), naming them."""
    sources = []
    where = None
    for name, site in recorder.random_sites:
        why = _left_training(site.actor, model)
        label = f"`{name}` at {position(site.path, site.row)}" + (f" ({why})" if why else "")
        if label not in sources:
            sources.append(label)
        if where is None or (why and where[1] is None):
            where = (site, why)
    cause = f"; random calls in eval: {', '.join(sources[:5])}" if sources else ""
    message = f"eval-mode output varies between two runs (max |diff| {varies:.3g}){cause}"
    result = Recorder(False, {})
    result.report("NN105", message, where[0] if where else Site(class_path, class_row, 0, 1, None))
    return result.findings


#: attributes every nn.Module has (its registries and hooks), not the user's containers
MODULE_INTERNALS = frozenset(vars(nn.Module()))
CONTAINER_FIXES = {"list": "nn.ModuleList", "tuple": "nn.ModuleList", "dict": "nn.ModuleDict"}


def _left_training(actor: nn.Module | None, model: nn.Module) -> str | None:
    """Why the module that made a random call was in training mode while the model was in eval."""
    if actor is None or not actor.training:
        return None
    name = f"`{type(actor).__name__}`"
    holder = _plain_holder(model, actor)
    if holder is None:
        return f"{name} was in training mode during eval"
    attribute, kind = holder
    return (
        f"{name} stays in training mode: it is reached through `{attribute}`, a plain {kind} that `.eval()` "
        f"does not reach; use `{CONTAINER_FIXES[kind]}`"
    )


def _plain_holder(model: nn.Module, target: nn.Module) -> tuple[str, str] | None:
    """``("Net.blocks", "list")``: the plain container attribute through which ``target`` is held."""
    for module in model.modules():
        for attribute, value in vars(module).items():
            if attribute not in MODULE_INTERNALS and isinstance(value, (list, tuple, dict)) and _holds(value, target):
                kind = "dict" if isinstance(value, dict) else "tuple" if isinstance(value, tuple) else "list"
                return f"{type(module).__name__}.{attribute}", kind
    return None


def _holds(container: Any, target: nn.Module, depth: int = 3) -> bool:
    items = container.values() if isinstance(container, dict) else container
    for item in items:
        if isinstance(item, nn.Module) and any(module is target for module in item.modules()):
            return True
        if depth and isinstance(item, (list, tuple, dict)) and _holds(item, target, depth - 1):
            return True
    return False
