"""Benchmark the language server as an editor sees it: a real LSP client over stdio (issue 13).

    python bench/lsp_latency.py                 # ~3,000-line file, 10 edits, 10 quick fixes, 3 fix-alls
    python bench/lsp_latency.py --lines 1000 --edits 5

Also run by ``python bench/fixes.py`` (unless ``--no-editor``), whose results file
then holds these numbers under "editor"; run alone, they go to
bench/results/lsp-latest.json.

``python -m nnlint lsp`` is started in a temporary workspace whose
``pyproject.toml`` selects NN101 and NN304, on a generated file of about
``--lines`` lines made of the modules of bench/fixes.py (three safe fixes per 11
lines). The client declares what Neovim does: versioned edits and
``codeAction/resolve`` of ``edit`` (so fix-all may come lazily or at once; both
are handled). Measured, each after the server published the diagnostics of the
document's current version:

- edit -> diagnostics: a ``didChange`` (one ranged edit that fixes one NN101 by
  hand) until the ``publishDiagnostics`` of that version; the median of
  ``--edits``. It includes the server's debounce. Checked: one finding fewer.
- quick fix: a ``codeAction`` request for one diagnostic (in
  ``context.diagnostics``, ``only: quickfix``), plus its ``codeAction/resolve``
  when the action comes without its edit; the median over ``--quick-fixes``
  diagnostics spread over the file (the first, the first request on that
  version, is also reported). Checked: an action with a non-empty edit.
- fix-all: the ``codeAction`` request for ``source.fixAll`` and the
  ``codeAction/resolve`` of the ``source.fixAll.nnlint`` action (the server
  computes it once per version, so each is on a fresh version); the median of
  ``--fix-alls``. Checked: the edit, applied here, leaves every dropout with
  ``training=self.training`` and every mask a buffer.

Targets: quick fix <= 50 ms median, fix-all resolve <= 500 ms, edit -> new
diagnostics <= 300 ms median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import REPO
from fixes import BENCH_ENV, source_of_lines

FIX_ALL = "source.fixAll.nnlint"
CONFIG = '[tool.nnlint]\nselect = ["NN101", "NN304"]\n'
DROPOUT = "x = F.dropout(x, 0.1)"
FIXED_BY_HAND = ", training=self.training"
#: seconds to wait for the diagnostics of a version
TIMEOUT = 300.0
TARGETS_MS = {"quick_fix_ms": 50.0, "fix_all_ms": 500.0, "edit_to_diagnostics_ms": 300.0}


def capabilities() -> lsp.ClientCapabilities:
    """What Neovim 0.11 declares, the parts that matter here (as tests/test_lsp_trust.py)."""
    return lsp.ClientCapabilities(
        workspace=lsp.WorkspaceClientCapabilities(
            workspace_edit=lsp.WorkspaceEditClientCapabilities(document_changes=True)
        ),
        text_document=lsp.TextDocumentClientCapabilities(
            code_action=lsp.CodeActionClientCapabilities(
                resolve_support=lsp.ClientCodeActionResolveOptions(properties=["edit"]), data_support=True
            )
        ),
    )


class Editor:
    """A client with one open document; keeps its text and the diagnostics published for it."""

    def __init__(self, root: Path, text: str) -> None:
        self.client = LanguageClient("nnlint-bench", "1.0")
        self.path = root / "model.py"
        self.path.write_text(text)
        self.uri = self.path.as_uri()
        self.root = root
        self.text = text
        self.version = 1
        self.published: asyncio.Queue = asyncio.Queue()

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
            self.published.put_nowait(params)

    async def start(self) -> float:
        """Start the server and open the document; seconds until its first diagnostics."""
        await self.client.start_io(sys.executable, "-m", "nnlint", "lsp", cwd=str(self.root), env=BENCH_ENV)
        await self.client.initialize_async(
            lsp.InitializeParams(capabilities=capabilities(), root_uri=self.root.as_uri())
        )
        self.client.initialized(lsp.InitializedParams())
        start = time.perf_counter()
        item = lsp.TextDocumentItem(uri=self.uri, language_id="python", version=self.version, text=self.text)
        self.client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=item))
        self.diagnostics = await self.diagnostics_of(self.version)
        return time.perf_counter() - start

    async def diagnostics_of(self, version: int) -> list[lsp.Diagnostic]:
        """The diagnostics published for ``version`` (earlier versions' are skipped)."""
        deadline = time.perf_counter() + TIMEOUT
        while True:
            try:
                params = await asyncio.wait_for(self.published.get(), timeout=deadline - time.perf_counter())
            except (TimeoutError, ValueError):
                raise SystemExit(f"bench: no diagnostics published for version {version} in {TIMEOUT:g} s") from None
            if params.uri == self.uri and params.version == version:
                return list(params.diagnostics)

    async def fix_one_by_hand(self) -> float:
        """Type ``training=self.training`` into the first unfixed dropout; seconds until its diagnostics."""
        lines = self.text.splitlines(keepends=True)
        line = next(number for number, text in enumerate(lines) if text.rstrip().endswith(DROPOUT))
        column = len(lines[line].rstrip()) - 1
        lines[line] = lines[line][:column] + FIXED_BY_HAND + lines[line][column:]
        self.text = "".join(lines)
        self.version += 1
        at = lsp.Position(line=line, character=column)
        change = lsp.TextDocumentContentChangePartial(range=lsp.Range(start=at, end=at), text=FIXED_BY_HAND)
        document = lsp.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version)
        start = time.perf_counter()
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(text_document=document, content_changes=[change])
        )
        before = len(self.diagnostics)
        self.diagnostics = await self.diagnostics_of(self.version)
        elapsed = time.perf_counter() - start
        if len(self.diagnostics) != before - 1:
            raise SystemExit(f"bench: an edit left {len(self.diagnostics)} diagnostics, expected {before - 1}")
        return elapsed

    async def code_actions(self, span: lsp.Range, diagnostics: list, only: list[str]) -> list[lsp.CodeAction]:
        context = lsp.CodeActionContext(diagnostics=diagnostics, only=only)
        document = lsp.TextDocumentIdentifier(uri=self.uri)
        params = lsp.CodeActionParams(text_document=document, range=span, context=context)
        found = await self.client.text_document_code_action_async(params)
        return [action for action in found or [] if _is_action(action)]

    async def quick_fix(self, diagnostic: lsp.Diagnostic) -> float:
        """Seconds to get the quick fix of one diagnostic, edit included."""
        start = time.perf_counter()
        actions = await self.code_actions(diagnostic.range, [diagnostic], [lsp.CodeActionKind.QuickFix])
        ours = [action for action in actions if _about(action, diagnostic)]
        if not ours:
            raise SystemExit(f"bench: no quick fix for {diagnostic.code} at line {diagnostic.range.start.line + 1}")
        action = ours[0]
        if action.edit is None:
            action = await self.client.code_action_resolve_async(action)
        elapsed = time.perf_counter() - start
        if not self.edits(action):
            raise SystemExit(f"bench: the quick fix for line {diagnostic.range.start.line + 1} has no edit")
        return elapsed

    async def fix_all(self) -> tuple[float, float, bool]:
        """Seconds of the fix-all code action request and of its resolve; whether the edit came lazily."""
        everywhere = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0))
        start = time.perf_counter()
        actions = await self.code_actions(everywhere, [], ["source.fixAll"])
        listed = time.perf_counter()
        (action,) = [action for action in actions if action.kind == FIX_ALL]
        lazy = action.edit is None
        if lazy:
            action = await self.client.code_action_resolve_async(action)
        resolved = time.perf_counter()
        self._check_fix_all(action)
        return listed - start, resolved - listed, lazy

    def edits(self, action: lsp.CodeAction) -> list[lsp.TextEdit]:
        edit = action.edit
        if edit is None:
            return []
        if edit.document_changes:
            return [item for change in edit.document_changes for item in getattr(change, "edits", [])]
        return list((edit.changes or {}).get(self.uri, []))

    def _check_fix_all(self, action: lsp.CodeAction) -> None:
        fixed = apply_edits(self.text, self.edits(action))
        dropouts, masks = fixed.count("F.dropout("), fixed.count("self.mask = torch.ones(3)")
        if masks or fixed.count("training=self.training") != dropouts:
            raise SystemExit("bench: the fix-all edit does not fix every finding")

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def _is_action(action: object) -> bool:
    return isinstance(action, lsp.CodeAction)


def _about(action: lsp.CodeAction, diagnostic: lsp.Diagnostic) -> bool:
    return any(d.code == diagnostic.code and d.range == diagnostic.range for d in action.diagnostics or [])


def apply_edits(text: str, edits: list[lsp.TextEdit]) -> str:
    """``text`` with the edits applied (ASCII text: UTF-16 units are characters)."""
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(position: lsp.Position) -> int:
        return min(starts[min(position.line, len(starts) - 1)] + position.character, len(text))

    for edit in sorted(edits, key=lambda item: offset(item.range.start), reverse=True):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


def _spread(items: list, count: int) -> list:
    """``count`` items evenly spread over ``items``."""
    count = min(count, len(items))
    return [items[index * len(items) // count] for index in range(count)]


async def _measure(root: Path, lines: int, edits: int, quick_fixes: int, fix_alls: int) -> dict:
    text = source_of_lines(lines)
    (root / "pyproject.toml").write_text(CONFIG)
    editor = Editor(root, text)
    open_s = await editor.start()
    result: dict = {"lines": text.count("\n"), "findings": len(editor.diagnostics), "open_s": round(open_s, 4)}
    try:
        edit_s = [await editor.fix_one_by_hand() for _ in range(edits)]
        quick_s = [await editor.quick_fix(diagnostic) for diagnostic in _spread(editor.diagnostics, quick_fixes)]
        listed, resolved, lazy = [], [], []
        for index in range(fix_alls):
            if index:
                await editor.fix_one_by_hand()  # a new version: fix-all is computed once per version
            times = await editor.fix_all()
            listed.append(times[0])
            resolved.append(times[1])
            lazy.append(times[2])
    finally:
        await editor.stop()
    result.update(
        edit_to_diagnostics_ms=_median_ms(edit_s),
        quick_fix_ms=_median_ms(quick_s),
        first_quick_fix_ms=round(1000 * quick_s[0], 1),
        fix_all_ms=_median_ms([a + b for a, b in zip(listed, resolved, strict=True)]),
        fix_all_request_ms=_median_ms(listed),
        fix_all_resolve_ms=_median_ms(resolved),
        fix_all_lazy=all(lazy),
        runs={
            "edit_to_diagnostics_s": edit_s,
            "quick_fix_s": quick_s,
            "fix_all_s": list(zip(listed, resolved, strict=True)),
        },
    )
    return result


def _median_ms(seconds: list[float]) -> float | None:
    return round(1000 * statistics.median(seconds), 1) if seconds else None


def editor_latency(lines: int = 3000, edits: int = 10, quick_fixes: int = 10, fix_alls: int = 3) -> dict:
    """The editor's latencies on a generated file of about ``lines`` lines."""
    with tempfile.TemporaryDirectory(prefix="nnlint-bench-lsp-") as directory:
        return asyncio.run(_measure(Path(directory).resolve(), lines, edits, quick_fixes, fix_alls))


def editor_report(result: dict) -> str:
    """A Markdown table and the targets' verdicts."""
    mode = "lazily, in codeAction/resolve" if result["fix_all_lazy"] else "at once, in the code action request"
    lines = [
        f"Editor: {result['lines']:,} lines, {result['findings']:,} findings; fix-all edit computed {mode}",
        "",
        "| first diagnostics (didOpen) | edit → diagnostics (median) | quick fix (median) | "
        "first quick fix of a version | fix-all: request + resolve (median) |",
        "|---:|---:|---:|---:|---:|",
        f"| {1000 * result['open_s']:.0f} ms | {result['edit_to_diagnostics_ms']:.0f} ms | "
        f"{result['quick_fix_ms']:.0f} ms | {result['first_quick_fix_ms']:.0f} ms | "
        f"{result['fix_all_request_ms']:.0f} + {result['fix_all_resolve_ms']:.0f} ms |",
        "",
    ]
    labels = {
        "quick_fix_ms": "quick fix (median)",
        "fix_all_ms": "fix-all, request + resolve (median)",
        "edit_to_diagnostics_ms": "edit → new diagnostics (median)",
    }
    for key, target in TARGETS_MS.items():
        value = result[key]
        verdict = "met" if value <= target else "MISSED"
        lines.append(f"{labels[key]} = {value:.0f} ms (target <= {target:g} ms: {verdict})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=3000, help="lines of the generated file")
    parser.add_argument("--edits", type=int, default=10, help="edits timed (median reported)")
    parser.add_argument("--quick-fixes", type=int, default=10, help="quick fixes timed (median reported)")
    parser.add_argument("--fix-alls", type=int, default=3, help="fix-alls timed, each on a new version")
    args = parser.parse_args()
    if min(args.lines, args.edits, args.quick_fixes, args.fix_alls) < 1:
        parser.error("every count must be positive")
    result = editor_latency(args.lines, args.edits, args.quick_fixes, args.fix_alls)
    print(editor_report(result))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "lsp-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
