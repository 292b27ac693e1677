"""``nnlint runtime --script train.py``: run a training script and report what it does to its models.

NN701 (eval never switched back) is a property of the script, not of a module: the script runs as
``__main__`` with hooks that see

- every ``Module.train()``/``.eval()`` call and the user line that made it,
- every forward of a mode-dependent layer (dropout, batch norm, instance norm with running stats),
  attributed to the top-level module the user called, and whether that module was training,
- every backward pass, and which of those modules' parameters it gave gradients.

A module that trained (a backward reached it while it was in training mode), was then put in eval
mode, and still receives gradients from a backward in eval mode is reported once per
(module, ``.eval()`` site), at the user's backward call.
"""

from __future__ import annotations

import ast
import contextlib
import linecache
import os
import runpy
import sys
import sysconfig
import traceback
import types
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as module_module

from nnlint.engine.model import Finding, Span
from nnlint.runtime.lint import NNLINT_DIR, TORCH_DIR, Site, _user_site
from nnlint.runtime.models import RuntimeProblem
from nnlint.runtime.notebook import position

#: layers whose forward depends on ``self.training``
MODE_DEPENDENT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
)
_CALL_IMPL = nn.Module._call_impl.__code__
#: where the code of the standard library and installed packages lives (not the user's)
_LIBRARY_DIRS = tuple(
    {
        os.path.join(path, "")
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (path := sysconfig.get_path(key))
    }
)


def _mode_dependent(layer: nn.Module) -> bool:
    if isinstance(layer, nn.modules.instancenorm._InstanceNorm):
        return bool(layer.track_running_stats)
    if isinstance(layer, nn.modules.dropout._DropoutNd):
        return layer.p != 0
    return isinstance(layer, MODE_DEPENDENT)


def _top_level(frame: types.FrameType | None) -> nn.Module | None:
    """The module whose ``__call__`` is outermost on the stack (the one the user's code called)."""
    outer = None
    while frame is not None:
        if frame.f_code is _CALL_IMPL:
            this = frame.f_locals.get("self")
            if isinstance(this, nn.Module):
                outer = this
        frame = frame.f_back
    return outer


def _call_text(site: Site, fallback: str) -> str:
    """The source of the call at ``site`` (``loss.backward()``), or ``fallback`` when it spans lines."""
    line = linecache.getline(site.path, site.row)
    text = line[site.column : site.end_column].strip() if site.end_column > site.column else ""
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return fallback
    return text or fallback


def _receiver(site: Site) -> str | None:
    """``model`` for a ``model.eval()`` (or ``model.train(False)``) call at ``site``."""
    text = _call_text(site, "")
    with contextlib.suppress(SyntaxError):
        node = ast.parse(text, mode="eval").body
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            return ast.unparse(node.func.value)
    return None


@dataclass
class _Forwards:
    """The grad-enabled forwards of one top-level module since the last backward."""

    module: nn.Module
    modes: set[bool] = field(default_factory=set)


@dataclass
class TrainingWatch:
    """The hooks of one script run and what they saw."""

    #: (module, its ``.eval()`` site) -> the finding and that site
    findings: dict[tuple, tuple[Finding, Site | None]] = field(default_factory=dict)
    #: module -> the user's ``.eval()`` that put it (or an ancestor) in eval mode
    eval_sites: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)
    #: modules a backward reached while they were training
    trained: weakref.WeakSet = field(default_factory=weakref.WeakSet)
    pending: dict[int, _Forwards] = field(default_factory=dict)
    _depth: int = 0
    _in_backward: bool = False

    # -- the hooks --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def installed(self) -> Iterator[TrainingWatch]:
        original_train = nn.Module.train
        original_tensor_backward = torch.Tensor.backward
        original_autograd_backward = torch.autograd.backward
        watch = self

        def train(module: nn.Module, mode: bool = True) -> nn.Module:
            outermost = watch._depth == 0
            watch._depth += 1
            try:
                return original_train(module, mode)
            finally:
                watch._depth -= 1
                if outermost and isinstance(mode, bool):
                    with contextlib.suppress(Exception):
                        watch._switched(module, mode, sys._getframe(1))

        def tensor_backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            return watch._backward(original_tensor_backward, (tensor, *args), kwargs, sys._getframe(1))

        def autograd_backward(*args: Any, **kwargs: Any) -> Any:
            return watch._backward(original_autograd_backward, args, kwargs, sys._getframe(1))

        handle = module_module.register_module_forward_pre_hook(self._forward)
        nn.Module.train = train  # type: ignore[method-assign]
        torch.Tensor.backward = tensor_backward  # type: ignore[method-assign]
        torch.autograd.backward = autograd_backward  # type: ignore[assignment]
        try:
            yield self
        finally:
            handle.remove()
            nn.Module.train = original_train  # type: ignore[method-assign]
            torch.Tensor.backward = original_tensor_backward  # type: ignore[method-assign]
            torch.autograd.backward = original_autograd_backward  # type: ignore[assignment]

    def _switched(self, module: nn.Module, mode: bool, frame: types.FrameType | None) -> None:
        if mode:
            for each in module.modules():
                self.eval_sites.pop(each, None)
            return
        while frame is not None and frame.f_code.co_name in ("train", "eval") and frame.f_locals.get("self") is module:
            frame = frame.f_back  # a subclass's own ``train``/``eval`` calling ``super()``: its caller's line
        site, _ = _user_site(frame)
        if site is None:
            return
        for each in module.modules():
            self.eval_sites[each] = site

    def _forward(self, layer: nn.Module, _inputs: Any) -> None:
        if not torch.is_grad_enabled() or not _mode_dependent(layer):
            return
        with contextlib.suppress(Exception):  # watching must never break the script
            top = _top_level(sys._getframe(1)) or layer
            entry = self.pending.get(id(top))
            if entry is None or entry.module is not top:
                entry = self.pending[id(top)] = _Forwards(top)
            entry.modes.add(top.training)

    def _backward(self, original: Any, args: tuple, kwargs: dict, frame: types.FrameType | None) -> Any:
        if self._in_backward:  # Tensor.backward calls torch.autograd.backward
            return original(*args, **kwargs)
        pending, self.pending = self.pending, {}
        before = {key: _gradients(entry.module) for key, entry in pending.items()}
        self._in_backward = True
        try:
            result = original(*args, **kwargs)
        finally:
            self._in_backward = False
        with contextlib.suppress(Exception):
            site = None
            for key, entry in pending.items():
                if not _received(entry.module, before[key]):
                    continue
                if True in entry.modes:
                    self.trained.add(entry.module)
                if False in entry.modes and not entry.module.training and entry.module in self.trained:
                    site = site or _user_site(frame)[0]
                    if site is not None:
                        self._report(entry.module, site)
        return result

    def _report(self, module: nn.Module, site: Site) -> None:
        where = self.eval_sites.get(module)
        key = (id(module), (where.path, where.row, where.column) if where else None)
        if key in self.findings:
            return
        name = _receiver(where) if where is not None else None
        shown = f"`{name}` ({type(module).__name__})" if name else f"`{type(module).__name__}`"
        since = f"was put in eval mode at {position(where.path, where.row)}" if where else "is in eval mode"
        and_still = " and is still in eval mode" if where else ""
        call = _call_text(site, "the backward pass")
        call = f"`{call}`" if call != "the backward pass" else call
        message = (
            f"{shown} {since}{and_still} when {call} runs at {position(site.path, site.row)}: "
            "dropout and batch norm train in inference mode (found by running the script)"
        )
        span = Span(site.row, site.column, site.row, max(site.end_column, site.column + 1))
        self.findings[key] = (Finding("NN701", message, site.path, span, noqa_row=site.row), where)


def _gradients(module: nn.Module) -> list[tuple[nn.Parameter, torch.Tensor | None, int]]:
    return [(p, p.grad, p.grad._version if p.grad is not None else -1) for p in module.parameters() if p.requires_grad]


def _received(module: nn.Module, before: list[tuple[nn.Parameter, torch.Tensor | None, int]]) -> bool:
    """Whether the backward gave one of ``module``'s parameters a gradient."""
    for parameter, grad, version in before:
        now = parameter.grad
        if now is not None and (now is not grad or now._version != version):
            return True
    return False


# -- running the script ---------------------------------------------------------------------------


@dataclass
class ScriptRun:
    findings: list[Finding]
    #: the script stopped on Ctrl-C: the findings are those up to that point
    interrupted: bool = False


def run_script(path: str, arguments: list[str]) -> ScriptRun:
    """Run ``path`` as ``__main__`` (its directory first on ``sys.path``, ``sys.argv`` its arguments,
    the working directory unchanged; what it prints goes to stderr) under the hooks.

    An exception the script raises, or a non-zero ``sys.exit``, is a :class:`RuntimeProblem` naming
    the user's line.
    """
    path = os.path.abspath(path)
    watch = TrainingWatch()
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [path, *arguments]
    sys.path.insert(0, os.path.dirname(path))
    interrupted = False
    try:
        with watch.installed(), contextlib.redirect_stdout(sys.stderr):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as done:
        if done.code not in (None, 0):
            raise RuntimeProblem(_exit_problem(path, done)) from None
    except KeyboardInterrupt:
        interrupted = True
    except SyntaxError as error:
        if os.path.abspath(error.filename or "") != path:
            raise RuntimeProblem(script_failure(error)) from None
        raise RuntimeProblem(f"{position(path, error.lineno or 1)}: the script does not parse: {error.msg}") from None
    except Exception as error:
        raise RuntimeProblem(script_failure(error)) from None
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    findings = [_compared_with_static(finding, where) for finding, where in watch.findings.values()]
    return ScriptRun(sorted(findings, key=Finding.sort_key), interrupted)


def _exit_problem(path: str, done: SystemExit) -> str:
    frames = [(frame, row) for frame, row in traceback.walk_tb(done.__traceback__)]
    user = [(f, row) for f, row in frames if not f.f_code.co_filename.startswith((TORCH_DIR, NNLINT_DIR))]
    where = position(user[-1][0].f_code.co_filename, user[-1][1]) if user else position(path, 1)
    status = done.code if isinstance(done.code, int) else 1
    detail = f": {done.code}" if not isinstance(done.code, int) else ""
    return f"{where}: the script exited with status {status}{detail}"


def script_failure(error: BaseException) -> str:
    """``train.py:12: train_one_epoch raised ValueError: ...``: the deepest frame of the user's own code
    (not torch's, nnlint's, the standard library's or an installed package's when one of the user's is
    on the way)."""
    frames = [(frame, row) for frame, row in traceback.walk_tb(error.__traceback__)]
    outside = [(f, row) for f, row in frames if not f.f_code.co_filename.startswith((TORCH_DIR, NNLINT_DIR))]
    own = [(f, row) for f, row in outside if not f.f_code.co_filename.startswith((*_LIBRARY_DIRS, "<"))]
    lines = str(error).strip().splitlines()
    detail = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    chosen = own or outside
    if not chosen:
        return f"the script raised {detail}"
    frame, row = chosen[-1]
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    who = "the script" if name == "<module>" else f"`{name}`"
    return f"{position(code.co_filename, row)}: {who} raised {detail}"


def _compared_with_static(finding: Finding, where: Site | None) -> Finding:
    """Say whether ``nnlint check`` reports NN701 for this backward call or its ``.eval()`` too."""
    from nnlint.api import lint_text
    from nnlint.engine.config import ConfigError

    places = {(finding.path, finding.span.row)}
    if where is not None:
        places.add((where.path, where.row))
    seen = False
    for path in {place[0] for place in places}:
        try:
            with open(path, "rb") as stream:
                static = lint_text(stream.read(), filename=path, select=["NN701"]).findings
        except (ConfigError, OSError, ValueError):
            continue
        seen = seen or any(other.code == "NN701" and (path, other.span.row) in places for other in static)
    note = "reports it too" if seen else "did not see it (a flow it does not follow)"
    return replace(finding, message=f"{finding.message}; `nnlint check` {note}")
