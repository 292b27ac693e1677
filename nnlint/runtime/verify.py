"""``--verify``: check each fixed class at run time before its fix is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nnlint.engine.config import Config
from nnlint.engine.model import Finding
from nnlint.engine.project import module_name

STRUCTURAL_PREFIX = "NN2"


class VerifyError(Exception):
    """``--verify`` cannot run at all (no torch, no CUDA): one line, exit 2."""


@dataclass
class Verification:
    """The outcome for one class (the ``--verify-report`` schema)."""

    target: str
    status: str  # verified | failed | skipped
    device: str
    reason: str | None = None
    max_abs_diff: float | None = None


@dataclass
class ClassCheck:
    """What the worker needs to verify one class."""

    qualname: str  # inside its module
    class_qualname: str  # dotted, as the findings name it
    target: str
    init: str | None = None
    input: str | None = None
    renames: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    new_children: list[str] = field(default_factory=list)
    keeps_modes: list[str] = field(default_factory=lambda: ["eval", "train"])
    eval_deterministic: bool = False
    structural: bool = False


def resolve_device(option: str) -> str:
    """``auto`` → cuda when available; ``cuda`` without CUDA is an error."""
    try:
        import torch
    except ImportError:
        raise VerifyError("--verify needs torch: pip install 'nnlint[torch]'") from None
    available = torch.cuda.is_available()
    if option == "cuda" and not available:
        raise VerifyError("--device cuda: CUDA is not available on this machine")
    if option == "auto":
        return "cuda" if available else "cpu"
    return option


def target_name(path: str, qualname: str, config: Config) -> str:
    try:
        relative = Path(os.path.relpath(os.path.abspath(path), config.root)).as_posix()
    except ValueError:
        relative = path
    return f"{relative}::{qualname}"


def plan_checks(path: str, module: str, applied: list[Finding], config: Config) -> list[ClassCheck]:
    """One check per class the file's fixes change, combining what each fix promises."""
    checks: dict[str, ClassCheck] = {}
    for finding in applied:
        if finding.fix is None or not finding.module_class:
            continue
        qualname = finding.module_class.removeprefix(f"{module}.") if module else finding.module_class
        check = checks.get(qualname)
        if check is None:
            target = target_name(path, qualname, config)
            options = config.verify.get(target, {})
            check = ClassCheck(qualname, finding.module_class, target, options.get("init"), options.get("input"))
            checks[qualname] = check
        fix = finding.fix
        check.keeps_modes = sorted(set(check.keeps_modes) & set(fix.keeps_modes))
        check.eval_deterministic |= fix.makes_eval_deterministic
        check.structural |= finding.code.startswith(STRUCTURAL_PREFIX)
        if fix.state_dict is not None:
            check.renames.update(dict(fix.state_dict.renames))
            check.added.extend(fix.state_dict.added)
            check.new_children.extend(fix.state_dict.new_children)
    return list(checks.values())


def verify_file(
    path: str, fixed_text: str, checks: list[ClassCheck], device: str, timeout: float
) -> list[Verification]:
    """Run the worker for one file's classes."""
    module, is_package, root = module_name(Path(os.path.abspath(path)))
    job = {
        "path": os.path.abspath(path),
        "module": module,
        "is_package": is_package,
        "source_root": str(root),
        "fixed_text": fixed_text,
        "device": device,
        "classes": [asdict(check) for check in checks],
    }
    skipped = [Verification(check.target, "skipped", device) for check in checks]
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "nnlint.runtime.verify_worker"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=str(root),
        )
    except subprocess.TimeoutExpired:
        for result in skipped:
            result.reason = f"timed out after {timeout:g} s"
        return skipped
    try:
        answers = json.loads(completed.stdout)
    except json.JSONDecodeError:
        lines = completed.stderr.strip().splitlines()
        for result in skipped:
            result.reason = f"the verification process failed: {lines[-1] if lines else completed.returncode}"
        return skipped
    return [
        Verification(check.target, answer["status"], device, answer["reason"], answer["max_abs_diff"])
        for check, answer in zip(checks, answers, strict=True)
    ]


def describe(result: Verification) -> str:
    """One line for the text output."""
    detail = f" (max |diff| {result.max_abs_diff:.3g})" if result.max_abs_diff is not None else ""
    reason = f": {result.reason}" if result.reason else ""
    return f"{result.status:<9} {result.target} [{result.device}]{detail}{reason}"
