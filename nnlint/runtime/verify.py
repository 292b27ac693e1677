"""``--verify``: check each fixed class at run time before its fix is written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nnlint.engine.config import Config
from nnlint.engine.model import Finding
from nnlint.engine.notebook import is_notebook
from nnlint.engine.project import module_name

if TYPE_CHECKING:
    from nnlint.engine.runner import LintRun
    from nnlint.fixes.apply import FileFix

STRUCTURAL_PREFIX = "NN2"
#: the codes whose fixes repair a crash of the original (a weight stored in the wrong layout)
REPAIRING_CODES = frozenset({"NN603"})


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
    #: attributes whose plain containers the fixes register (their keys are new, their weights carried)
    adds_state_of: list[str] = field(default_factory=list)
    keeps_modes: list[str] = field(default_factory=lambda: ["eval", "train"])
    eval_deterministic: bool = False
    structural: bool = False
    #: codes of the run-time shape errors of the original the fixes repair (NN603): when the original
    #: fails its first batch with one of them, the fixed model only has to run, with finite outputs
    repairs: list[str] = field(default_factory=list)
    #: state_dict keys whose 2-D tensors are carried transposed from the original to the fixed module
    transposed: list[str] = field(default_factory=list)


def resolve_device(option: str) -> str:
    """``auto`` → cuda when available; ``cuda`` without CUDA is an error."""
    try:
        import torch
    except ImportError:
        from nnlint.install import missing_extra

        raise VerifyError(missing_extra("torch", "--verify")) from None
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
        check.adds_state_of.extend(name for name in fix.adds_state_of if name not in check.adds_state_of)
        if finding.code in REPAIRING_CODES and finding.code not in check.repairs:
            check.repairs.append(finding.code)
        if fix.state_dict is not None:
            check.renames.update(dict(fix.state_dict.renames))
            check.added.extend(fix.state_dict.added)
            check.new_children.extend(fix.state_dict.new_children)
            transposed = getattr(fix.state_dict, "transposed", ())
            check.transposed.extend(key for key in transposed if key not in check.transposed)
    return list(checks.values())


#: Another file the run fixes: its path, its fixed text, and its classes' checks.
OtherFix = tuple[str, str, list[ClassCheck]]


def verify_file(
    path: str,
    fixed_text: str,
    checks: list[ClassCheck],
    device: str,
    timeout: float,
    others: list[OtherFix] | None = None,
) -> list[Verification]:
    """Run the worker for one file's classes.

    ``others``: the other files the run fixes. The fixed text imports their fixed text (the fixes
    are checked together), and instances of their fixed classes nested in this file's classes
    change their keys as those fixes say.
    """
    module, is_package, root = module_name(Path(os.path.abspath(path)))
    notebook = is_notebook(path)
    if notebook:  # built from its imports and definitions (nnlint.runtime.notebook), not imported
        module = os.path.basename(path)
    sources, related = [], []
    for other_path, other_text, other_checks in others or []:
        if is_notebook(other_path):
            continue  # nothing imports a notebook
        other, other_is_package, other_root = module_name(Path(os.path.abspath(other_path)))
        if other_root != root or other == module:
            continue  # another source root: the worker could not import it under that name
        sources.append(
            {
                "module": other,
                "is_package": other_is_package,
                "path": os.path.abspath(other_path),
                "fixed_text": other_text,
            }
        )
        related.extend({"module": other, **asdict(check)} for check in other_checks)
    job = {
        "path": os.path.abspath(path),
        "module": module,
        "is_package": is_package,
        "notebook": notebook,
        "source_root": str(root),
        "fixed_text": fixed_text,
        "device": device,
        "classes": [asdict(check) for check in checks],
        "others": sources,
        "related": related,
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


def check_renamed_reads(run: LintRun, outcomes: list[FileFix]) -> dict[tuple[str, str], str]:
    """Classes whose renamed attributes other code does not follow after fixing: (path, class) -> why.

    Static, before anything runs: every linted file that names a renamed class or may read one of
    its old attribute names must still compile (when the fixes changed it), and none of its reads
    of an old name may still resolve to the class.
    """
    from nnlint.engine.source import SourceFile
    from nnlint.fixes.cross_file import mentions, uses_left

    renamed: dict[tuple[str, str], dict[str, str]] = {}
    for outcome in outcomes:
        for qualname, change in outcome.state_dict_changes:
            if change.renames:
                renamed.setdefault((outcome.path, qualname), {}).update(change.renames)
    if not renamed:
        return {}
    fixed = {outcome.path: outcome for outcome in outcomes}
    texts = {result.path: _final_text(run, fixed, result.path) for result in run.results}
    failures: dict[tuple[str, str], str] = {}
    for key, renames in renamed.items():
        name = re.compile(rf"\b{re.escape(key[1].rsplit('.', 1)[-1])}\b")
        # ``token_table`` -> ``token_table.weight``: the old name is the new layer's, reading it is right
        stale = [old for old, new in renames.items() if not new.startswith(f"{old}.")]
        for result in run.results:
            text, outcome = texts[result.path], fixed.get(result.path)
            touched = outcome is not None and any(edit.owner == key for edit in outcome.renamed_reads)
            if text is None or not (touched or result.path == key[0] or name.search(text) or mentions(text, renames)):
                continue
            problem = _compile_problem(text, result.path) if outcome is not None and outcome.changed else None
            if problem is None:
                source = SourceFile(result.path, text)
                left = uses_left(run.model, key[1], stale, source, result.module)
                problem = f"{left[0]} after the fix" if left else None
            if problem is not None:
                failures[key] = problem
                break
    return failures


def _final_text(run: LintRun, fixed: dict[str, FileFix], path: str) -> str | None:
    from nnlint.engine.runner import read_source
    from nnlint.engine.source import SourceFile

    if path in fixed:
        return fixed[path].fixed_text
    source = run.sources.get(path) or read_source(path)
    return source.text if isinstance(source, SourceFile) else None


def _compile_problem(text: str, path: str) -> str | None:
    from nnlint.output.paths import display_path

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, path, "exec", dont_inherit=True)
    except SyntaxError as error:
        return f"{display_path(path)} does not compile after the fix ({error.msg}, line {error.lineno})"
    except (ValueError, RecursionError, MemoryError) as error:
        return f"{display_path(path)} does not compile after the fix ({type(error).__name__})"
    return None
