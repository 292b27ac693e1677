"""Applying fixes to files: iterate to a fixed point, verify, write atomically."""

from __future__ import annotations

import ast
import bisect
import copy
import difflib
import errno
import os
import stat
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nnlint.engine.model import Finding, Fix, StateDictChange
from nnlint.engine.runner import (
    LintRun,
    applicable_findings,
    file_input_shapes,
    forked_map,
    lint_source,
    make_rules,
    read_source,
)
from nnlint.engine.source import SourceFile
from nnlint.fixes.compatible import FixError, select_compatible
from nnlint.fixes.cross_file import ClassKey, ReadEdit, RenamePlan, plan_renames, renames_attributes
from nnlint.fixes.splice import Splice, Splicer, join, parsed
from nnlint.output.paths import display_path

if TYPE_CHECKING:
    from nnlint.fixes.transform import FixesAlone

#: Like ruff: re-lint after fixing, in case a fix enables another; stop if it does not settle.
MAX_ITERATIONS = 10
#: Fixing again without the classes whose renames did not go as planned: at most this many times.
MAX_RENAME_ROUNDS = 3


@dataclass
class FileFix:
    """The outcome of fixing one file."""

    path: str
    original: SourceFile
    fixed_text: str
    applied: int = 0
    error: str | None = None
    remaining: list[Finding] = field(default_factory=list)
    #: (class qualname, change) for each applied fix that renames state_dict keys
    state_dict_changes: list[tuple[str, StateDictChange]] = field(default_factory=list)
    #: the findings whose fixes were applied (for --verify)
    applied_findings: list[Finding] = field(default_factory=list)
    module: str | None = None
    #: reads of attributes that fixes rename (in this file, outside the renamed classes), rewritten
    renamed_reads: list[ReadEdit] = field(default_factory=list)
    #: why renaming fixes of classes defined in this file were withheld
    withheld: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.fixed_text != self.original.text

    def diff(self) -> str:
        """A unified diff (in a notebook: one per changed cell, named ``path:cell N``)."""
        notebook = self.original.notebook
        if notebook is None:
            return _unified(self.original.text, self.fixed_text, display_path(self.path))
        before, after = notebook.cell_texts(self.original.text), notebook.cell_texts(self.fixed_text)
        return "".join(
            _unified(before[index], after[index], f"{display_path(self.path)}:cell {index + 1}")
            for index in before
            if before[index] != after[index]
        )


def _unified(old: str, new: str, name: str) -> str:
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    lines = difflib.unified_diff(old_lines, new_lines, f"a/{name}", f"b/{name}")
    # a last line without a newline (a cell's, usually) is marked as ``diff`` marks it
    return "".join(line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines)


def is_applicable(fix: Fix | None, unsafe: bool) -> bool:
    return fix is not None and (fix.applicability == "safe" or unsafe)


Excluded = set[tuple[str, str | None]]


def fix_run(
    run: LintRun,
    unsafe: bool,
    exclude: Excluded | None = None,
    workers: int = 0,
    renames: RenamePlan | None = None,
) -> list[FileFix]:
    """Fix every file of ``run`` that has applicable fixes (nothing is written here).

    ``exclude`` holds (path, class) pairs whose fixes are held back (failed verification).
    Fixes that rename attributes take the reads of the old names in other files along
    (``renames``: :func:`~nnlint.fixes.cross_file.plan_renames`, computed when not given), or
    are withheld when a read cannot be tied to the class.
    Files are fixed in forked worker processes when there are several (LibCST is the slow part).
    """
    exclude = exclude or set()
    if not unsafe or (renames is None and not any(renames_attributes(finding.fix) for finding in run.findings)):
        return _fix_files(run, unsafe, exclude, None, workers)
    plan = renames if renames is not None else plan_renames(run)
    done: dict[str, tuple[object, FileFix]] = {}
    for _ in range(MAX_RENAME_ROUNDS):
        outcomes = _fix_files(run, unsafe, exclude, plan, workers, done=done)
        broken = _renames_gone_wrong(plan, outcomes, exclude | plan.withheld)
        if not broken:
            return _withheld_outcomes(run, plan, outcomes)
        for key, (renames_made, problem) in broken.items():
            plan.withhold(key, renames_made, problem)
    for key in list(plan.classes):  # renames that do not settle: none at all
        plan.withhold(key, {}, "its renames did not settle")
    return _withheld_outcomes(run, plan, _fix_files(run, unsafe, exclude, plan, workers, renaming=False))


def _fix_files(
    run: LintRun,
    unsafe: bool,
    exclude: Excluded,
    plan: RenamePlan | None,
    workers: int,
    renaming: bool = True,
    done: dict[str, tuple[object, FileFix]] | None = None,
) -> list[FileFix]:
    """Fix the files; ``done`` keeps each file's outcome by what it depends on, for the next round."""
    by_path: dict[str, list[Finding]] = {}
    for finding in run.findings:
        by_path.setdefault(finding.path, []).append(finding)
    withheld = plan.withheld if plan is not None else set()
    reads = {}
    if plan is not None and renaming:
        reads = {result.path: plan.edits_in(result.path, exclude | withheld) for result in run.results}
    tasks = [
        (result.path, result.module, by_path.get(result.path, []))
        for result in run.results
        if reads.get(result.path) or any(is_applicable(finding.fix, unsafe) for finding in by_path.get(result.path, []))
    ]
    rules = make_rules(run.settings.enabled)
    done = {} if done is None else done

    def inputs(path: str) -> object:  # what a file's outcome depends on besides its text
        return frozenset(key for key in withheld if key[0] == path), tuple(reads.get(path, [])), renaming

    def fix(task: tuple[str, str | None, list[Finding]]) -> FileFix:
        path, module, findings = task
        return _fix_file(run, path, module, findings, rules, unsafe, exclude, withheld, reads.get(path, []), renaming)

    todo = [task for task in tasks if task[0] not in done or done[task[0]][0] != inputs(task[0])]
    for task, outcome in zip(todo, forked_map(fix, todo, workers), strict=True):
        done[task[0]] = (inputs(task[0]), outcome)
    return [_copy(done[task[0]][1]) for task in tasks]


def _copy(outcome: FileFix) -> FileFix:
    """A copy whose lists later steps may change (they mark the findings of withheld classes)."""
    copied = copy.copy(outcome)
    copied.remaining, copied.withheld = list(outcome.remaining), list(outcome.withheld)
    return copied


def _renames_gone_wrong(
    plan: RenamePlan, outcomes: list[FileFix], skipped: set[ClassKey]
) -> dict[ClassKey, tuple[dict[str, str], str]]:
    """Classes whose renames were not made as planned, with the renames and why."""
    applied: dict[ClassKey, dict[str, str]] = {}
    for outcome in outcomes:
        for qualname, change in outcome.state_dict_changes:
            applied.setdefault((outcome.path, qualname), {}).update(change.renames)
    rewritten = {edit for outcome in outcomes for edit in outcome.renamed_reads}  # by value: from workers
    broken: dict[ClassKey, tuple[dict[str, str], str]] = {}
    for key, renames in applied.items():
        planned = plan.classes.get(key)
        if renames and (planned is None or not renames.items() <= planned.renames.items()):
            broken[key] = (renames, "its fixes renamed attributes that were not searched for in other files")
    for key, planned in plan.classes.items():
        if key in skipped or not planned.edits:
            continue
        if applied.get(key, {}) != planned.renames:
            broken[key] = (planned.renames, "not all of its renaming fixes applied")
        for edit in planned.edits:
            if edit not in rewritten:
                broken[key] = (planned.renames, f"nnlint could not rewrite {edit.describe()}")
    return broken


def _withheld_outcomes(run: LintRun, plan: RenamePlan, outcomes: list[FileFix]) -> list[FileFix]:
    """The outcomes, with the findings of withheld classes marked and their reasons."""
    by_path = {outcome.path: outcome for outcome in outcomes}
    for key in sorted(plan.withheld):
        path = key[0]
        if path not in by_path:
            source = run.sources.get(path) or read_source(path)
            if isinstance(source, Finding):
                continue
            findings = [finding for finding in run.findings if finding.path == path]
            by_path[path] = FileFix(path, source, source.text, remaining=findings)
            outcomes.append(by_path[path])
        renamed = plan.classes[key]
        by_path[path].withheld.append(f"{display_path(path)}::{renamed.short}: {renamed.reason()}")
    for outcome in outcomes:
        outcome.remaining = plan.mark(outcome.remaining)
    return outcomes


def _fix_file(
    run: LintRun,
    path: str,
    module: str | None,
    findings: list[Finding],
    rules: list,
    unsafe: bool,
    exclude: Excluded,
    withheld: set[ClassKey] | frozenset[ClassKey] = frozenset(),
    reads: list[ReadEdit] | tuple[ReadEdit, ...] = (),
    renaming: bool = True,
) -> FileFix:
    """Fix one file to a fixed point.

    Renaming fixes of ``withheld`` classes (or all, without ``renaming``) stay unapplied;
    ``reads`` of renamed attributes are rewritten in the first pass.
    """
    source = run.sources.get(path) or read_source(path)
    if isinstance(source, Finding):
        return FileFix(path, SourceFile(path, ""), "", error=source.message, remaining=findings)
    outcome = FileFix(path, source, source.text, remaining=findings, module=module)
    is_package = os.path.basename(path) == "__init__.py"
    pending_reads = list(reads)
    for _ in range(MAX_ITERATIONS):
        fixable = [
            finding
            for finding in outcome.remaining
            if is_applicable(finding.fix, unsafe)
            and (path, finding.module_class) not in exclude
            and not (
                renames_attributes(finding.fix) and (not renaming or (path, finding.module_class or "") in withheld)
            )
        ]
        # reads first: they cannot be found again once the text changed, the fixes can
        fixes = [edit.fix for edit in pending_reads] + [finding.fix for finding in fixable]
        if not fixes:
            break
        try:
            text, applied = apply_fixes(outcome.fixed_text, fixes)  # type: ignore[arg-type]
        except FixError as error:
            outcome.error = str(error)
            break
        if text == outcome.fixed_text or not applied:
            break
        tree = parsed(text)  # (cached: the next pass's splices read the same tree)
        if tree is None:
            outcome.error = f"fix dropped: the fixed file does not parse ({reparse_problem(text)})"
            break
        if source.notebook is not None and (problem := _notebook_problem(source, text)):
            outcome.error = f"fix dropped: {problem}"
            break
        outcome.fixed_text = text
        applied_ids = {id(fix) for fix in applied}
        outcome.renamed_reads.extend(edit for edit in pending_reads if id(edit.fix) in applied_ids)
        pending_reads = []
        outcome.applied += sum(1 for finding in fixable if id(finding.fix) in applied_ids)
        outcome.applied_findings.extend(finding for finding in fixable if id(finding.fix) in applied_ids)
        for finding in fixable:
            change = finding.fix.state_dict if id(finding.fix) in applied_ids else None  # type: ignore[union-attr]
            if change is not None and (change.renames or change.added or change.transposed):
                outcome.state_dict_changes.append((finding.module_class or "", change))
        shapes = file_input_shapes(run.settings.config, path)
        relinted = lint_source(source.with_text(text), module, is_package, rules, tree=tree, input_shapes=shapes)
        run.model.add(relinted)  # (in this file's worker) the model sees the fixed text
        outcome.remaining = applicable_findings(relinted.findings, run.model, run.settings)
    return outcome


def apply_fixes(text: str, fixes: list[Fix]) -> tuple[str, list[Fix]]:
    """Apply the compatible ``fixes`` to ``text``; returns the new text and the fixes that applied.

    One pass: when every chosen fix is a text splice (:mod:`nnlint.fixes.splice`), they are made
    in one go without LibCST; otherwise LibCST applies them all in one traversal.
    """
    chosen = select_compatible(fixes)
    spliced = Splicer(text).apply(chosen) if chosen else None
    if spliced is not None:
        return spliced, chosen
    try:
        from nnlint.fixes import transform
    except ImportError as error:  # pragma: no cover - libcst is a dependency
        raise FixError(f"cannot apply fixes: {error}") from None
    return transform.apply_chosen(text, chosen)


def _notebook_problem(source: SourceFile, text: str) -> str | None:
    """Why the fixed cells cannot go back into the notebook, or None."""
    from nnlint.engine.notebook import NotebookError

    try:
        source.notebook.write(text)
    except NotebookError as error:
        return str(error)
    return None


def reparse_problem(text: str) -> str | None:
    """None when ``text`` is valid Python, else why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except SyntaxError as error:
        return f"{error.msg}, line {error.lineno}"
    except (RecursionError, MemoryError, ValueError) as error:
        return type(error).__name__
    return None


class NotWritableError(OSError):
    """A file the user may not write: its fixes are not applied (the file is left as it is)."""


def unwritable_reason(path: str) -> str | None:
    """Why the fixed text of ``path`` must not be written, or None.

    A file without any write permission bit is read-only even for root (the temporary file and
    rename would bypass its mode); so is one the user may not write, or whose directory does not
    take the temporary file.
    """
    real = os.path.realpath(path)
    try:
        mode = os.stat(real).st_mode
    except OSError as error:
        return error.strerror or str(error)
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(real, os.W_OK):
        return "not writable"
    if not os.access(os.path.dirname(real), os.W_OK | os.X_OK):
        return "not writable (its directory is read-only)"
    return None


def write_atomically(outcome: FileFix) -> None:
    """Replace the file with its fixed text, same encoding, BOM, line endings and mode.

    Raises :class:`NotWritableError` (nothing written) for a file the user cannot write.
    """
    data = outcome.original.encode(outcome.fixed_text)
    path = os.path.realpath(outcome.path)  # write through symlinks, next to the real file
    reason = unwritable_reason(path)
    if reason is not None:
        raise NotWritableError(errno.EACCES, reason, outcome.path)
    directory = os.path.dirname(path)
    mode = os.stat(path).st_mode
    handle, temporary = tempfile.mkstemp(prefix=".nnlint-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def fix_edits(source: SourceFile, fix: Fix) -> list[dict]:
    """The fix as ruff-style text edits against the original source (for JSON output)."""
    return finding_edits(source, [fix])[0]


def finding_edits(source: SourceFile, fixes: list[Fix]) -> list[list[dict]]:
    """Each fix's own edits (as :func:`text_edits`): what applying that fix alone changes.

    The file is parsed once with ``ast``; a fix that is a text splice (:mod:`nnlint.fixes.splice`)
    gives its edits from the lines it touches. The others are applied with LibCST to the
    top-level statements they touch only (:class:`~nnlint.fixes.transform.FixesAlone`, parsed
    once when first needed), so the cost is linear in the file plus its fixes.
    """
    splicer = Splicer(source.text)
    alone: list = []
    edits = []
    for fix in fixes:
        splices = splicer.splices(fix)
        spliced = _splice_edits(source, splices) if splices is not None else None
        edits.append(spliced if spliced is not None else _edits_with_libcst(source, alone, fix))
    return edits


def _splice_edits(source: SourceFile, splices: list[Splice]) -> list[dict] | None:
    """:func:`text_edits` of one fix's splices, each diffed over the whole lines it touches."""
    text = source.text
    windows: list[list] = []  # [start, end, splices] over whole lines, in order, merged when they touch
    for splice in sorted(splices, key=lambda item: (item.start, item.rank)):
        start = text.rfind("\n", 0, splice.start) + 1
        end = text.find("\n", splice.end) + 1 or len(text)
        if windows and start <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], end)
            windows[-1][2].append(splice)
        else:
            windows.append([start, end, [splice]])
    edits = []
    for start, end, inside in windows:
        local = [Splice(s.start - start, s.end - start, s.content, s.rank) for s in inside]
        new = join(text[start:end], local)
        if new is None:
            return None
        hunks = _hunks(text[start:end], new)
        edits.extend(_edit(source, start + begin, start + stop, content) for begin, stop, content in hunks)
    return edits


def _edits_with_libcst(source: SourceFile, alone: list, fix: Fix) -> list[dict]:
    """The edits of ``fix`` from LibCST (``alone`` caches the file's :class:`FixesAlone`)."""
    if not alone:
        try:
            from nnlint.fixes.transform import FixesAlone

            alone.append(FixesAlone(source.text))
        except (ImportError, FixError, RecursionError):
            alone.append(None)
    return _edits_alone(source, alone[0], fix) if alone[0] is not None else []


def _edits_alone(source: SourceFile, alone: FixesAlone, fix: Fix) -> list[dict]:
    from nnlint.fixes.transform import GAP

    try:
        local = alone.alone(fix)
    except RecursionError:
        local = None
    if local is None:
        return _edits_of_whole_file(source, fix)
    old, new, runs = local
    starts = [start for start, _, _ in runs]
    edits = []
    for begin, end, content in _hunks(old, new):
        run = bisect.bisect_right(starts, begin) - 1
        start, offset, length = runs[run]
        if end > start + length or GAP in content:  # across a left-out part: whole file
            return _edits_of_whole_file(source, fix)
        edits.append(_edit(source, begin - start + offset, end - start + offset, content))
    return edits


def _edits_of_whole_file(source: SourceFile, fix: Fix) -> list[dict]:
    """:func:`text_edits` of the whole file fixed by ``fix`` alone."""
    try:
        text, applied = apply_fixes(source.text, [fix])
    except FixError:
        return []
    if not applied or text == source.text:
        return []
    return text_edits(source, text)


def fix_edits_of_files(files: list[tuple[SourceFile, list[Fix]]], workers: int = 0) -> list[list[list[dict]]]:
    """:func:`finding_edits` of each file; files in forked workers (LibCST parsing is slow)."""

    def edits(index: int) -> list[list[dict]]:  # by index: the workers already hold the files
        source, fixes = files[index]
        return finding_edits(source, fixes)

    return forked_map(edits, list(range(len(files))), workers)


def text_edits(source: SourceFile, new_text: str) -> list[dict]:
    """Minimal non-overlapping edits (1-based rows and columns) that turn the source into ``new_text``."""
    return [_edit(source, begin, end, content) for begin, end, content in _hunks(source.text, new_text)]


def _edit(source: SourceFile, begin: int, end: int, content: str) -> dict:
    row, column = source.position(begin)
    end_row, end_column = source.position(end)
    return {
        "content": content,
        "location": {"row": row, "column": column + 1},
        "end_location": {"row": end_row, "column": end_column + 1},
    }


def _hunks(old_text: str, new_text: str) -> list[tuple[int, int, str]]:
    """(start, end, new content) of each changed range of ``old_text``, by lines then trimmed to characters."""
    old_lines = old_text.splitlines(keepends=True)
    new_lines = new_text.splitlines(keepends=True)
    starts = [0]
    for line in old_lines:
        starts.append(starts[-1] + len(line))
    new_starts = [0]
    for line in new_lines:
        new_starts.append(new_starts[-1] + len(line))
    hunks = []
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        old = old_text[starts[i1] : starts[i2]]
        new = new_text[new_starts[j1] : new_starts[j2]]
        head = 0
        while head < min(len(old), len(new)) and old[head] == new[head]:
            head += 1
        tail = 0
        while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
            tail += 1
        hunks.append((starts[i1] + head, starts[i2] - tail, new[head : len(new) - tail]))
    return hunks
