"""The subprocess behind ``--verify``: build the original and the fixed class, compare them.

Reads one JSON job on stdin, writes a JSON list of results on stdout. It runs
user code, which is why ``--verify`` is opt-in and why this runs in its own
process with a timeout.
"""

from __future__ import annotations

import json
import sys
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

    from nnlint.runtime.models import RuntimeProblem, import_original, import_text

    device = job["device"]
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    try:
        original = import_original(job["module"], job["source_root"])
        fixed = import_text(job["module"], job["is_package"], job["path"], job["fixed_text"], "__nnlint_fixed")
    except RuntimeProblem as problem:
        return [_result(check, "skipped", str(problem)) for check in job["classes"]]
    return [verify_class(check, original, fixed, device) for check in job["classes"]]


def verify_class(check: dict, original: Any, fixed: Any, device: str) -> dict:
    import torch

    from nnlint.runtime.models import RuntimeProblem, build, configured_input, example_input, find_class

    try:
        old_class, new_class = find_class(original, check["qualname"]), find_class(fixed, check["qualname"])
        old = build(old_class, original, check.get("init"))
        new = build(new_class, fixed, check.get("init"))
    except RuntimeProblem as problem:
        return _result(check, "skipped", str(problem))
    problem = _carry_weights(old, new, check)
    if problem:
        return _result(check, "failed", problem)
    old.to(device)
    new.to(device)
    try:
        configured = configured_input(check["input"], original, old_class) if check.get("input") else None
        arguments = example_input(old, new, configured)
    except RuntimeProblem as problem:
        return _result(check, "skipped", str(problem))
    arguments = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in arguments)
    try:
        return _compare(check, old, new, arguments, device)
    except Exception as error:
        return _result(check, "failed", f"running the models failed: {type(error).__name__}: {error}")


def _carry_weights(old: Any, new: Any, check: dict) -> str | None:
    """Load the old weights into the new module through the renames; None when it fits.

    Submodules a fix adds (``new_children``) must be registered; their keys are new.
    """
    import torch

    children = dict(new.named_children())
    added_children = check.get("new_children", [])
    unregistered = [name for name in added_children if name not in children]
    if unregistered:
        return f"the fixed module does not register {', '.join(unregistered)}"
    fresh = {f"{name}.{key}" for name in added_children for key in children[name].state_dict()}
    renames = check.get("renames", {})
    migrated = {renames.get(key, key): value for key, value in old.state_dict().items()}
    for key in check.get("added", []):
        migrated.setdefault(key, torch.tensor(0, dtype=torch.long))
    expected, actual = set(migrated), set(new.state_dict()) - fresh
    if expected != actual:
        missing, unexpected = sorted(actual - expected), sorted(expected - actual)
        return f"state_dict keys differ from what the renames predict (missing: {missing}, unexpected: {unexpected})"
    old_count = sum(p.numel() for p in old.parameters())
    new_count = sum(p.numel() for p in new.parameters()) - sum(
        p.numel() for name in added_children for p in children[name].parameters()
    )
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
