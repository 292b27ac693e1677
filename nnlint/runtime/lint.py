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
class FailedCall:
    """A torch call the mode saw raise: the function, what it was given, the user code that called it."""

    error: BaseException
    func: Any
    args: tuple
    kwargs: dict
    site: Site | None


@dataclass
class Recorder:
    """What the mode observed during one run."""

    root_training: bool
    plain_tensors: dict[int, tuple[nn.Module, str]]
    findings: dict[tuple, Finding] = field(default_factory=dict)
    random_sites: list[tuple[str, Site]] = field(default_factory=list)
    #: the last torch call that raised (what the user's line passed it)
    failed_call: FailedCall | None = None

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
        start = len(self.captured.log) if self.captured is not None else 0
        try:
            result = func(*args, **kwargs)
        except Exception as error:
            with contextlib.suppress(Exception):
                site, _ = _user_site(sys._getframe(1))
                self.recorder.failed_call = FailedCall(error, func, args, kwargs, site)
            raise
        if self.captured is not None and len(self.captured.log) > start:
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
        # a layer failing on what another layer made (not on the input given) disagrees with it;
        # a parameter of the user's own module may contradict the function it is passed to (NN603)
        finding = shape_failure(error, recorder.failed_call, layer_ran=bool(finished))
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
#: how torch words a tensor of a rank a layer does not take
RANK_ERRORS = re.compile(
    r"Expected \d+D \(unbatched\) or \d+D \(batched\) input to \w+"  # convolutions
    r"|expected \d+D(?: or \d+D)? input \(got \d+D input\)"  # batch and instance norms
    r"|\d+D or \d+D \(batch mode\) tensor"  # max pooling
    r"|Expected \d+ to \d+ dimensions, but got \d+-dimensional tensor"  # average pooling
    r"|Expected \d+D or \d+D tensor, but got"  # adaptive pooling
    r"|Expected input to be \d+D or \d+D, got \d+D instead"  # recurrent layers
    r"|Expected at least \d+ dimensions for input tensor|expects input to have at least \d+ dimensions"
    r"|input Tensors supported \(got \d+D\)"  # upsampling
    r"|unbatched \d+D or batched \d+D tensor but received"  # attention
)
#: what torch says when a layer indexes a dimension its input lacks (a rank error when the layer's rank is known)
OUT_OF_RANGE = "Dimension out of range"
#: how torch words a weight or bias that does not fit the functional it is passed to
WEIGHT_ERRORS = re.compile(
    r"The expanded size of the tensor|weight should have at least \w+ dimensions|expected bias to be"
    r"|must be 2-D|size does not match weight size|Expected weight to be of same shape|should contain \d+ elements"
    r"|expected stride to be a single integer value or a list of \d+ values|expects a tensor with <= 2 dimensions"
)
#: the exceptions torch raises for a shape it does not take
SHAPE_EXCEPTIONS = (RuntimeError, ValueError, IndexError, NotImplementedError, AssertionError)


class ShapeFailure(RuntimeProblem):
    """The model crashed on a shape error: the NN601/NN602/NN603 finding at the user's line."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def shape_failure(error: BaseException, call: FailedCall | None = None, layer_ran: bool = True) -> Finding | None:
    """The finding for a shape error the model raised, at the user's line; None when it is none of these.

    NN603: a torch function the user's ``forward`` called directly (``call``, what the mode saw raise)
    with an ``nn.Parameter`` of the module whose shape contradicts it. NN601 (a size) or NN602 (a
    rank): a layer that cannot take what reaches it, at the line that called the layer. ``layer_ran``:
    whether a layer with weights ran first; when not, what does not fit may be the input given, and
    only a weight that contradicts another weight of the same call is reported.
    """
    if call is not None and call.error is error:
        finding = _weight_failure(call, layer_ran)
        if finding is not None:
            return finding
    return _layer_failure(error) if layer_ran else None


def _layer_failure(error: BaseException) -> Finding | None:
    """NN601/NN602 for a size or rank torch rejected inside a layer, at the user's line that called the layer."""
    text = str(error)
    size = isinstance(error, RuntimeError) and SHAPE_ERRORS.search(text) is not None
    rank = isinstance(error, SHAPE_EXCEPTIONS) and (RANK_ERRORS.search(text) is not None or OUT_OF_RANGE in text)
    if not (size or rank):
        return None
    caller: tuple[types.FrameType, int] | None = None
    layer: nn.Module | None = None
    received: torch.Tensor | None = None
    for frame, row in traceback.walk_tb(error.__traceback__):
        filename = frame.f_code.co_filename
        this = frame.f_locals.get("self")
        if filename.startswith(TORCH_DIR):
            if caller is not None and layer is None and isinstance(this, nn.Module) and not list(this.children()):
                layer = this
            if layer is not None and this is layer and received is None:
                received = _first_argument(frame)
        elif not filename.startswith(NNLINT_DIR):
            caller, layer, received = (frame, row), None, None
    if caller is None or layer is None:
        return None
    frame, row = caller
    owner = frame.f_locals.get("self")
    name = next((n for n, m in owner.named_children() if m is layer), None) if isinstance(owner, nn.Module) else None
    shown = f"`self.{name}`" if name else f"a `{type(layer).__name__}`"
    shown += f" (`{_layer_repr(layer)}`)"
    problem = text.strip().splitlines()[0]
    if size:
        code = "NN601"
        message = f"{shown} cannot take what reaches it: {problem}"
    else:
        code = "NN602"
        ranks = expected_ranks(layer)
        if RANK_ERRORS.search(text) is None and (received is None or ranks is None or received.dim() in ranks):
            return None  # an index out of range that is not the input's rank
        got = f"a {received.dim()}-D tensor of shape {_shape(received)}" if received is not None else "what reaches it"
        if ranks is not None and received is not None:
            message = f"{shown} expects {_ranks_text(ranks)} input but gets {got}"
        else:
            message = f"{shown} cannot take {got}: {problem}"
    _, column, end_column = _position(frame) if frame.f_lineno == row else (row, 0, 1)
    span = Span(row, column, row, max(end_column, column + 1))
    return Finding(code, f"{message} (found by running the model)", frame.f_code.co_filename, span, noqa_row=row)


def _first_argument(frame: types.FrameType) -> torch.Tensor | None:
    """The tensor a module's call received (``Module._call_impl(self, *args)`` or ``forward(self, input)``)."""
    arguments = frame.f_locals.get("args")
    if isinstance(arguments, tuple):
        return arguments[0] if arguments and isinstance(arguments[0], torch.Tensor) else None
    code = frame.f_code
    if code.co_name == "forward" and code.co_argcount >= 2:
        value = frame.f_locals.get(code.co_varnames[1])
        return value if isinstance(value, torch.Tensor) else None
    return None


#: layers that take an unbatched (N-D) or a batched ((N+1)-D) input, their N by the suffix ``1d``/``2d``/``3d``
_SPATIAL_LAYERS: tuple[type, ...] = (
    nn.modules.conv._ConvNd,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.pooling._LPPoolNd,
    nn.modules.pooling._MaxUnpoolNd,
    nn.modules.instancenorm._InstanceNorm,
)


def expected_ranks(layer: nn.Module) -> tuple[int, ...] | None:
    """The ranks of input a torch layer takes (``nn.BatchNorm1d``: 2 or 3), None when not known."""
    if isinstance(layer, nn.RNNBase):
        return (2, 3)
    base = next((c for c in type(layer).__mro__ if c.__module__.startswith("torch.nn.")), None)
    match = re.search(r"([123])d$", base.__name__) if base is not None else None
    if match is None:
        return None
    dims = int(match.group(1))
    if isinstance(layer, nn.modules.batchnorm._BatchNorm) and not isinstance(layer, nn.SyncBatchNorm):
        return (2, 3) if dims == 1 else (dims + 2,)
    if isinstance(layer, _SPATIAL_LAYERS):
        return (dims + 1, dims + 2)
    return None


def _ranks_text(ranks: tuple[int, ...]) -> str:
    return "a " + " or ".join(f"{rank}-D" for rank in ranks)


def _shape(tensor: torch.Tensor) -> str:
    return str(list(tensor.shape))


def _layer_repr(layer: nn.Module) -> str:
    text = repr(layer)
    return text if len(text) <= 80 else f"{type(layer).__name__}(...)"


# -- NN603: a hand-made weight that contradicts the function it is passed to ----------------------


#: the functions whose weight layout is known, with the number of spatial dimensions of a convolution
_CONVOLUTIONS = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}
_TRANSPOSED_CONVOLUTIONS = {F.conv_transpose1d: 1, F.conv_transpose2d: 2, F.conv_transpose3d: 3}
#: the operators a tensor method is called by (``x @ w`` reaches the mode as ``Tensor.matmul``)
_OPERATORS = {"matmul": "@", "mul": "*", "add": "+", "sub": "-", "div": "/"}


def _weight_failure(call: FailedCall, layer_ran: bool) -> Finding | None:
    """NN603 when a parameter the user's own ``forward`` passed to a torch function does not fit it."""
    site = call.site
    if site is None or site.owner is None or site.actor is not site.owner:
        return None  # not called directly by the user's module (a torch layer made the call)
    if not isinstance(call.error, SHAPE_EXCEPTIONS) or not _raised_at(call.error, site):
        return None
    names = _parameter_names(site.owner)
    if not any(id(tensor) in names for tensor in (*_tensors(call.args), *_tensors(call.kwargs))):
        return None
    verdict = _explain(call, names)
    if verdict is None:
        return None
    message, needs_input = verdict
    if needs_input and not layer_ran:
        return None  # the first call on the input given: the input may be what is wrong
    span = Span(site.row, site.column, site.row, max(site.end_column, site.column + 1))
    return Finding("NN603", f"{message} (found by running the model)", site.path, span, noqa_row=site.row)


def _raised_at(error: BaseException, site: Site) -> bool:
    """Whether torch raised the error for the call at ``site`` itself (no user code ran inside the call)."""
    user = [
        (frame.f_code.co_filename, row)
        for frame, row in traceback.walk_tb(error.__traceback__)
        if not frame.f_code.co_filename.startswith((TORCH_DIR, NNLINT_DIR))
    ]
    return bool(user) and user[-1] == (site.path, site.row)


def _parameter_names(owner: nn.Module) -> dict[int, str]:
    """``id(parameter) -> "self.w"`` for the parameters of ``owner`` and its submodules (its own first)."""
    names: dict[int, str] = {}
    for name, parameter in owner.named_parameters():
        names.setdefault(id(parameter), "self." + re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", name))
    return names


def _explain(call: FailedCall, names: dict[int, str]) -> tuple[str, bool] | None:
    """What does not fit, and whether the input given takes part in it (None when no parameter is at fault)."""
    function = _function_name(call.func)
    if call.func is F.linear:
        return _explain_linear(call, names, function)
    if call.func in _CONVOLUTIONS or call.func in _TRANSPOSED_CONVOLUTIONS:
        return _explain_convolution(call, names, function)
    text = str(call.error)
    if not (SHAPE_ERRORS.search(text) or RANK_ERRORS.search(text) or WEIGHT_ERRORS.search(text)):
        return None
    tensors = [*_tensors(call.args), *_tensors(call.kwargs)]
    mine = [t for t in tensors if id(t) in names]
    others = [t for t in tensors if id(t) not in names]
    weights = " and ".join(f"`{names[id(t)]}` (shape {_shape(t)})" for t in mine)
    given = f" with a tensor of shape {_shape(others[0])}" if others else ""
    problem = text.strip().splitlines()[0]
    return f"{function} cannot take {weights}{given}: {problem}", bool(others)


def _explain_linear(call: FailedCall, names: dict[int, str], function: str) -> tuple[str, bool] | None:
    x = _argument(call.args, call.kwargs, "input", 0, None)
    weight = _argument(call.args, call.kwargs, "weight", 1, None)
    bias = _argument(call.args, call.kwargs, "bias", 2, None)
    if not isinstance(weight, torch.Tensor):
        return None
    if weight.dim() > 2:
        if id(weight) in names:
            layout = "a 2-D weight (out_features, in_features)"
            return f"{function} takes {layout} but `{names[id(weight)]}` has shape {_shape(weight)}", False
        return None
    if isinstance(x, torch.Tensor) and x.dim() and weight.dim() == 2 and x.shape[-1] != weight.shape[1]:
        if id(weight) not in names:
            return None
        name, features = names[id(weight)], x.shape[-1]
        message = (
            f"{function} takes its weight as (out_features, in_features) but `{name}` has shape "
            f"{_shape(weight)} for an input of shape {_shape(x)}"
        )
        if weight.shape[0] == features:
            fitting = [weight.shape[1], weight.shape[0]]
            return f"{message}: it is stored (in_features, out_features); {fitting} would fit", True
        return f"{message}: {weight.shape[1]} input features expected, {features} given", True
    if isinstance(bias, torch.Tensor) and weight.dim() == 2 and tuple(bias.shape) != (weight.shape[0],):
        return _bias_message(function, "feature", bias, weight, weight.shape[0], names)
    return None


def _explain_convolution(call: FailedCall, names: dict[int, str], function: str) -> tuple[str, bool] | None:
    transposed = call.func in _TRANSPOSED_CONVOLUTIONS
    dims = (_TRANSPOSED_CONVOLUTIONS if transposed else _CONVOLUTIONS)[call.func]
    x = _argument(call.args, call.kwargs, "input", 0, None)
    weight = _argument(call.args, call.kwargs, "weight", 1, None)
    bias = _argument(call.args, call.kwargs, "bias", 2, None)
    groups = _argument(call.args, call.kwargs, "groups", 6, 1)
    if not isinstance(weight, torch.Tensor) or not isinstance(groups, int) or groups < 1:
        return None
    layout = (
        "(in_channels, out_channels / groups, *kernel_size)"
        if transposed
        else "(out_channels, in_channels / groups, *kernel_size)"
    )
    if weight.dim() != dims + 2:
        if id(weight) in names:
            name = names[id(weight)]
            return f"{function} takes a {dims + 2}-D weight {layout} but `{name}` has shape {_shape(weight)}", False
        return None
    if not isinstance(x, torch.Tensor) or x.dim() not in (dims + 1, dims + 2):
        return None  # the input's rank is wrong, not the weight
    channels = x.shape[-(dims + 1)]
    expected = weight.shape[0] if transposed else weight.shape[1] * groups
    outputs = weight.shape[1] * groups if transposed else weight.shape[0]
    if channels != expected:
        if id(weight) not in names:
            return None
        message = (
            f"{function} takes its weight as {layout} but `{names[id(weight)]}` has shape {_shape(weight)} "
            f"for an input of shape {_shape(x)}: {expected} input channels expected, {channels} given"
        )
        return message + (f" (groups={groups})" if groups != 1 else ""), True
    if isinstance(bias, torch.Tensor) and tuple(bias.shape) != (outputs,):
        return _bias_message(function, "channel", bias, weight, outputs, names)
    return None


def _bias_message(
    function: str, unit: str, bias: torch.Tensor, weight: torch.Tensor, outputs: int, names: dict[int, str]
) -> tuple[str, bool] | None:
    if id(bias) not in names and id(weight) not in names:
        return None
    shown_bias = f"`{names[id(bias)]}`" if id(bias) in names else "the bias"
    shown_weight = f"`{names[id(weight)]}`" if id(weight) in names else "the weight"
    message = (
        f"{function} takes a bias of one value per output {unit} but {shown_bias} has shape {_shape(bias)} "
        f"while {shown_weight} has shape {_shape(weight)} ({outputs} output {unit}s)"
    )
    return message, False


def _function_name(func: Any) -> str:
    """How the call reads in user code, quoted: ```F.linear```, ```@` (`Tensor.matmul`)``."""
    name = getattr(func, "__name__", None) or type(func).__name__
    if getattr(F, name, None) is func:
        return f"`F.{name}`"
    if getattr(torch, name, None) is func:
        return f"`torch.{name}`"
    if getattr(torch.Tensor, name, None) is func:
        operator = _OPERATORS.get(name)
        return f"`{operator}` (`Tensor.{name}`)" if operator else f"`Tensor.{name}`"
    return f"`{name}`"


def first_batch_failure(model: nn.Module, arguments: tuple, train: bool) -> Finding | None:
    """The NN601/NN602/NN603 finding for the shape error ``model`` raises on ``arguments`` (under the
    mode, as ``nnlint runtime`` runs it); None when it runs, or fails otherwise."""
    try:
        inspect_run(model, arguments, train, 1234, Recorder(train, {}))
    except ShapeFailure as failure:
        return failure.finding
    except Exception:
        return None
    return None


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
    """The runtime NN601/NN602/NN603, saying whether static analysis found the same code at the same
    row too (and when not, that it could not)."""
    from nnlint.api import lint_text
    from nnlint.engine.config import ConfigError

    seen = False
    try:
        with open(finding.path, "rb") as stream:
            static = lint_text(stream.read(), filename=finding.path, select=[finding.code]).findings
        seen = any(other.code == finding.code and other.span.row == finding.span.row for other in static)
    except ConfigError:
        pass  # no static rule of that code (yet): it did not see it
    except (OSError, ValueError):
        return finding
    if seen:
        return replace(finding, message=f"{finding.message}; `nnlint check` reports it too")
    what = STATIC_BLIND_SPOTS.get(finding.code, "a shape it cannot read")
    note = f"; `nnlint check` did not see it ({what} or a flow it does not follow)"
    return replace(finding, message=finding.message + note)


#: what static analysis could not read when it misses a finding the run shows
STATIC_BLIND_SPOTS = {"NN601": "a size it cannot read", "NN602": "a rank it cannot read"}


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
