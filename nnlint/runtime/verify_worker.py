"""The subprocess behind ``--verify``: build the original and the fixed class, compare them.

Reads one JSON job on stdin, writes a JSON list of results on stdout. It runs
user code, which is why ``--verify`` is opt-in and why this runs in its own
process with a timeout.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

#: (atol, rtol) per device; TF32 is turned off on CUDA for the comparison
TOLERANCES = {"cpu": (1e-5, 1e-4), "cuda": (1e-4, 1e-3)}


def main() -> int:
    job = json.loads(sys.stdin.read())
    try:
        results = verify_file(job)
    except Exception as error:
        results = [_result(c, "skipped", f"{type(error).__name__}: {error}") for c in job["classes"]]
    sys.stdout.write(json.dumps(results))
    return 0


def _result(check: dict, status: str, reason: str | None, diff: float | None = None) -> dict:
    return {"qualname": check["qualname"], "status": status, "reason": reason, "max_abs_diff": diff}


def verify_file(job: dict) -> list[dict]:
    import torch

    from nnlint.runtime.models import RuntimeProblem, import_fixed, import_original

    device = job["device"]
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    others = {other["module"]: other for other in job.get("others", [])}
    unverifiable: dict[str, str] = {}
    try:
        if job.get("notebook"):
            original, fixed, loaded, unverifiable = _build_notebook(job, others)
        else:
            original = import_original(job["module"], job["source_root"])
            fixed, loaded = import_fixed(job["module"], job["is_package"], job["path"], job["fixed_text"], others)
    except RuntimeProblem as problem:
        return [_result(check, "skipped", str(problem)) for check in job["classes"]]
    related = _fixed_classes({job["module"]: fixed, **loaded}, [*job["classes"], *job.get("related", [])], job)
    return [
        _result(check, "skipped", unverifiable[check["qualname"]])
        if check["qualname"] in unverifiable
        else verify_class(check, original, fixed, device, related)
        for check in job["classes"]
    ]


def _build_notebook(job: dict, others: dict[str, dict]) -> tuple[Any, Any, dict[str, Any], dict[str, str]]:
    """The original and the fixed module of a notebook's imports and definitions, the other fixed
    modules the fixed one imported, and why each class that cannot be built from them cannot
    (by qualname): such a class is never built."""
    from nnlint.runtime.notebook import load_notebook

    original = load_notebook(job["path"], name=job["module"])
    fixed = load_notebook(job["path"], job["fixed_text"], f"{job['module']}__nnlint_fixed", others)
    unverifiable = {}
    for check in job["classes"]:
        problem = original.problem(check["qualname"]) or fixed.problem(check["qualname"])
        if problem is not None:
            unverifiable[check["qualname"]] = problem
    return original.module, fixed.module, fixed.loaded, unverifiable


def _fixed_classes(modules: dict[str, Any], checks: list[dict], job: dict) -> dict[int, dict]:
    """What the run's fixes change in each fixed class, by the identity of the class object (the
    fixed text's classes; the original ones are other objects)."""
    from nnlint.runtime.models import classes_of

    by_name = {(check.get("module", job["module"]), check["qualname"]): check for check in checks}
    return {
        id(cls): by_name[(name, cls.__qualname__)]
        for name, module in modules.items()
        for cls in classes_of(module)
        if (name, cls.__qualname__) in by_name
    }


def verify_class(check: dict, original: Any, fixed: Any, device: str, related: dict[int, dict] | None = None) -> dict:
    """Verify one class; ``related``: what the run's fixes change in every fixed class, by the id of
    the fixed class object (instances nested in this one change their keys too)."""
    import torch

    from nnlint.runtime.models import RuntimeProblem, build, configured_input, example_input, find_class

    try:
        old_class, new_class = find_class(original, check["qualname"]), find_class(fixed, check["qualname"])
        old = build(old_class, original, check.get("init"))
        new = build(new_class, fixed, check.get("init"))
    except RuntimeProblem as problem:
        return _result(check, "skipped", str(problem))
    problem = _carry_weights(old, new, related if related is not None else {id(new_class): check})
    if problem:
        return _result(check, "failed", problem)
    old.to(device)
    new.to(device)
    try:
        configured = configured_input(check["input"], original, old_class) if check.get("input") else None
        arguments = example_input(old, new, configured)
    except RuntimeProblem as problem:
        found = None if check.get("input") else _input_the_original_fails(old, new, check, device)
        if found is None:
            return _result(check, "skipped", str(problem))
        arguments, failure = found
        return _failing_original(check, new, arguments, failure)
    arguments = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in arguments)
    try:
        return _compare(check, old, new, arguments, device)
    except Exception as error:
        failure = _original_failure(old, arguments, check)
        if failure is not None:
            return _failing_original(check, new, arguments, failure)
        return _result(check, "failed", f"running the models failed: {type(error).__name__}: {error}")


def _modes(check: dict) -> list[str]:
    return sorted(check["keeps_modes"]) or ["eval"]


def _original_failure(old: Any, arguments: tuple, check: dict) -> Any:
    """The NN601/NN602/NN603 finding for the shape error the original raises on ``arguments`` (as
    ``nnlint runtime`` maps it), in the first mode it fails; None when it is not one."""
    from nnlint.runtime.lint import first_batch_failure

    for mode in _modes(check):
        finding = first_batch_failure(old, arguments, mode == "train")
        if finding is not None:
            return finding
    return None


def _input_the_original_fails(old: Any, new: Any, check: dict, device: str) -> tuple[tuple, Any] | None:
    """With no input both models accept: the first candidate the fixed model accepts on which the
    original fails with a shape error of its own, and that error (None when there is none)."""
    import torch

    from nnlint.runtime.models import candidate_inputs, run

    for candidate in candidate_inputs(new, old):
        arguments = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in candidate)
        try:
            run(new, arguments, train=False, seed=0)
        except Exception:
            continue
        failure = _original_failure(old, arguments, check)
        if failure is not None:
            return arguments, failure
    return None


def _failing_original(check: dict, new: Any, arguments: tuple, failure: Any) -> dict:
    """The original fails its first batch with ``failure``: failed, unless the fixes repair exactly
    that (``repairs``) and the fixed model runs with finite outputs in every mode the fixes keep."""
    import torch

    from nnlint.runtime.models import run, tensors_of
    from nnlint.runtime.notebook import position

    where = f"{failure.code} at {position(failure.path, failure.span.row)}: {failure.message}"
    if failure.code not in check.get("repairs", []):
        return _result(check, "failed", f"the original model fails its first batch: {where}")
    before = f"the original failed its first batch ({where})"
    for mode in _modes(check):
        try:
            outputs = tensors_of(run(new, arguments, mode == "train", seed=1234))
        except Exception as error:
            lines = str(error).strip().splitlines()
            detail = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
            return _result(check, "failed", f"{before}; the fixed model fails too in {mode} mode: {detail}")
        if not all(torch.isfinite(t).all() for t in outputs if t.is_floating_point() or t.is_complex()):
            return _result(check, "failed", f"{before}; the fixed model gives non-finite outputs in {mode} mode")
    if check.get("eval_deterministic"):
        first = tensors_of(run(new, arguments, False, seed=1))
        second = tensors_of(run(new, arguments, False, seed=2))
        if not all(torch.equal(a, b) for a, b in zip(first, second, strict=True)):
            return _result(check, "failed", f"{before}; the fixed model still varies between two eval runs")
    return _result(check, "verified", f"{before}; the fixed model runs")


@dataclass
class Contract:
    """What the fixes promise about the state_dict of the whole fixed module (keys relative to it)."""

    renames: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    #: submodules a fix adds, all of whose keys are new
    fresh: list[str] = field(default_factory=list)
    #: keys whose 2-D tensors the fixed module holds transposed (a weight stored in the other layout)
    transposed: list[str] = field(default_factory=list)


def _contract(old: Any, new: Any, related: dict[int, dict]) -> Contract | str:
    """The renames, added keys and new submodules of the fixed class and of every instance of a class
    fixed in the same run nested in it (under its prefix); registers in ``old`` the plain containers
    that NN302/NN303 fixes register, as the fix will. A string: why the old module cannot mirror it."""
    contract = Contract()
    pending = [("", old, new)]
    seen: set[int] = set()
    while pending:
        prefix, old_module, new_module = pending.pop(0)
        if id(old_module) in seen:
            continue
        seen.add(id(old_module))
        for entry in _entries(new_module, related):
            contract.renames.update({prefix + a: prefix + b for a, b in entry.get("renames", {}).items()})
            contract.added.extend(prefix + key for key in entry.get("added", []))
            contract.fresh.extend(prefix + name for name in entry.get("new_children", []))
            contract.transposed.extend(prefix + key for key in entry.get("transposed", []))
            for attribute in entry.get("adds_state_of", []):
                problem = _register_plain(old_module, attribute)
                if problem:
                    return f"{type(old_module).__name__}.{attribute}: {problem}"
        new_children = getattr(new_module, "_modules", {}) if new_module is not None else {}
        for name, child in old_module._modules.items():
            if child is not None:
                pending.append((f"{prefix}{name}.", child, new_children.get(name)))
    return contract


def _entries(module: Any, related: dict[int, dict]) -> list[dict]:
    """What the fixes change in the classes ``module`` is an instance of, most derived first."""
    return [related[id(cls)] for cls in type(module).__mro__ if id(cls) in related]


def _register_plain(module: Any, attribute: str) -> str | None:
    """Register the plain list/dict ``module.<attribute>`` (the same objects) as the fix will.

    The plain container stays the attribute ``forward`` reads; the registered wrapper makes its
    contents appear in ``state_dict``/``parameters()`` and follow ``.to()``/``.train()``.
    """
    from torch import nn

    value = vars(module).get(attribute)
    if value is None or attribute in module._modules:
        return None  # not set on this instance, or registered already
    if not isinstance(value, (list, tuple, dict)):
        return f"not a plain list or dict ({type(value).__name__})"
    items = list(value.values()) if isinstance(value, dict) else list(value)
    modules = all(isinstance(item, nn.Module) for item in items)
    if not modules and not all(isinstance(item, nn.Parameter) for item in items):
        return "holds neither only modules nor only parameters"
    wrapper = {
        (True, False): nn.ModuleList,
        (True, True): nn.ModuleDict,
        (False, False): nn.ParameterList,
        (False, True): nn.ParameterDict,
    }[(modules, isinstance(value, dict))]
    try:
        module._modules[attribute] = wrapper(value)
    except (TypeError, ValueError) as error:
        return f"cannot register it as `nn.{wrapper.__name__}`: {error}"
    return None


def _carry_weights(old: Any, new: Any, related: dict[int, dict]) -> str | None:
    """Load the old weights into the new module through what the fixes promise; None when it fits.

    Renamed keys move; keys a fix transposes (``transposed``: a weight the fix stores in the layout
    its function takes) carry their 2-D tensors transposed; keys a fix adds (``num_batches_tracked``)
    are filled; submodules a fix adds (``new_children``) must be registered, their keys are new;
    containers a fix registers (``adds_state_of``) bring their old contents' keys and weights.
    Nothing else may change.
    """
    import torch

    contract = _contract(old, new, related)
    if isinstance(contract, str):
        return contract
    fresh_modules = []
    for name in contract.fresh:
        try:
            fresh_modules.append((name, new.get_submodule(name)))
        except AttributeError:
            return f"the fixed module does not register {name}"
    fresh = {f"{name}.{key}" for name, module in fresh_modules for key in module.state_dict()}
    migrated = {contract.renames.get(key, key): value for key, value in old.state_dict().items()}
    for key in contract.transposed:  # an old key, or the key it is renamed to
        carried = contract.renames.get(key, key)
        carried = carried if carried in migrated else key
        value = migrated.get(carried)
        if value is None:
            return f"the fixes transpose {key}, which the original state_dict lacks"
        if value.dim() != 2:
            return f"the fixes transpose {key}, which is not 2-D (shape {list(value.shape)})"
        migrated[carried] = value.t().contiguous()
    for key in contract.added:
        migrated.setdefault(key, torch.tensor(0, dtype=torch.long))
    expected, actual = set(migrated), set(new.state_dict()) - fresh
    if expected != actual:
        sides = (("has", actual - expected), ("lacks", expected - actual))
        differences = [f"{what} {sorted(keys)}" for what, keys in sides if keys]
        return f"state_dict keys differ from what the fixes predict: the fixed module {' and '.join(differences)}"
    fresh_parameters = {id(p) for _, module in fresh_modules for p in module.parameters()}
    old_count = sum(p.numel() for p in old.parameters())
    new_count = sum(p.numel() for p in new.parameters() if id(p) not in fresh_parameters)
    if old_count != new_count:
        return f"parameter count changed: {old_count} -> {new_count}"
    try:
        outcome = new.load_state_dict(migrated, strict=not fresh)
    except RuntimeError as error:
        return f"the old weights do not load: {str(error).splitlines()[0]}"
    if fresh and (set(outcome.missing_keys) - fresh or outcome.unexpected_keys):
        return f"the old weights do not load: missing {outcome.missing_keys}, unexpected {outcome.unexpected_keys}"
    return None


def _compare(check: dict, old: Any, new: Any, arguments: tuple, device: str) -> dict:
    import torch

    from nnlint.runtime.models import run, tensors_of

    atol, rtol = TOLERANCES[device]
    exact = not check.get("structural") and device == "cpu"
    worst = 0.0
    for mode in sorted(check["keeps_modes"]):  # "eval" before "train": train moves running statistics
        train = mode == "train"
        expected = tensors_of(run(old, arguments, train, seed=1234))
        actual = tensors_of(run(new, arguments, train, seed=1234))
        if len(expected) != len(actual) or any(a.shape != b.shape for a, b in zip(expected, actual, strict=True)):
            return _result(check, "failed", f"outputs have different shapes in {mode} mode")
        for a, b in zip(expected, actual, strict=True):
            diff = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
            worst = max(worst, diff)
            same = torch.equal(a, b) if exact else torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol)
            if not same:
                return _result(check, "failed", f"outputs differ in {mode} mode", worst)
    if check.get("eval_deterministic"):
        first = tensors_of(run(new, arguments, False, seed=1))
        second = tensors_of(run(new, arguments, False, seed=2))
        if not all(torch.equal(a, b) for a, b in zip(first, second, strict=True)):
            return _result(check, "failed", "the fixed model still varies between two eval runs", worst)
    return _result(check, "verified", None, worst)


if __name__ == "__main__":
    raise SystemExit(main())
