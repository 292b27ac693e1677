"""The language server answers from what the lint of each version keeps (issue 13).

Each finding's edits are computed once per version, in the lint pass (one pass of the fix engine for
all of them): a quick fix returns its finding's cached edit. Lints run in the background and a newer
version supersedes the one being linted, whose diagnostics are never published. These tests assert
behaviour; ``bench/`` measures the latencies.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from test_lsp_trust import (
    NON_ASCII,
    Session,
    apply,
    capabilities,
    cli_fixed,
    cursor,
    in_process,
    quick_fixes,
    run_session,
    versioned,
)

lsp = pytest.importorskip("lsprotocol.types")

THREE_DROPOUTS = """import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        s = "é😀"; x = F.dropout(x, 0.1)  # é😀
        y = F.dropout(x, 0.2)
        return F.dropout(x + y, 0.3) if s else y
"""


def _count_fix_engine(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    """Record every call into the fix engine (and LibCST's parser) in ``calls``."""
    import libcst

    import nnlint.fixes.apply as apply_module
    import nnlint.fixes.transform as transform_module

    targets = [(apply_module, "fix_edits"), (apply_module, "fix_run"), (transform_module, "apply_fixes")]
    targets += [(apply_module, "apply_fixes")]
    targets += [(libcst, "parse_module"), (apply_module, "finding_edits")]
    for module, name in targets:
        real = getattr(module, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


def _with_finding_edits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-pass ``finding_edits`` of the fix engine; a stand-in with its contract until it exists."""
    import nnlint.fixes.apply as apply_module

    if not hasattr(apply_module, "finding_edits"):
        stand_in = lambda source, fixes: [apply_module.fix_edits(source, fix) for fix in fixes]  # noqa: E731
        monkeypatch.setattr(apply_module, "finding_edits", stand_in, raising=False)


def _params(uri: str, diagnostic) -> lsp.CodeActionParams:
    context = lsp.CodeActionContext(diagnostics=[diagnostic], only=[lsp.CodeActionKind.QuickFix])
    return lsp.CodeActionParams(text_document=lsp.TextDocumentIdentifier(uri), range=diagnostic.range, context=context)


def test_quick_fix_returns_the_edit_of_the_lint_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnlint.integrations import lsp as server_module

    _with_finding_edits(monkeypatch)
    ls, uri = in_process(tmp_path, capabilities(), THREE_DROPOUTS)
    lint_pass: list[str] = []
    _count_fix_engine(monkeypatch, lint_pass)
    diagnostics = server_module._diagnostics(server_module._lint(ls, uri))
    assert [d.code for d in diagnostics] == ["NN101"] * 3
    assert lint_pass.count("finding_edits") == 1  # one pass for all the findings

    at_request: list[str] = []
    _count_fix_engine(monkeypatch, at_request)
    monkeypatch.setattr(server_module, "lint_text", lambda *args, **kwargs: pytest.fail("linted again"))
    fixed = []
    for diagnostic in diagnostics:
        (action,) = server_module.code_action(ls, _params(uri, diagnostic))
        version, edits = versioned(action, uri)
        assert version == 1
        fixed.append(apply(THREE_DROPOUTS, edits, "utf-16"))
    assert at_request == []  # the fix engine did not run again
    assert fixed == [
        THREE_DROPOUTS.replace(f"F.dropout({args})", f"F.dropout({args}, training=self.training)")
        for args in ("x, 0.1", "x, 0.2", "x + y, 0.3")
    ]


def test_a_superseded_lint_is_never_published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 3 arrives while version 2 is being linted: only version 3's diagnostics are published,
    and a code action asked meanwhile awaits version 3's lint."""
    from nnlint.integrations import lsp as server_module

    ls, uri = in_process(tmp_path, capabilities(), THREE_DROPOUTS)
    published: list = []
    monkeypatch.setattr(ls, "text_document_publish_diagnostics", published.append)
    started, release = threading.Event(), threading.Event()
    real = server_module._lint_text

    def slow(text: str, version: int | None, *args):
        if version == 2:
            started.set()
            release.wait(10)
        return real(text, version, *args)

    monkeypatch.setattr(server_module, "_lint_text", slow)

    def change(version: int, text: str) -> None:
        document = lsp.VersionedTextDocumentIdentifier(uri=uri, version=version)
        whole = lsp.TextDocumentContentChangeWholeDocument(text=text)
        ls.workspace.update_text_document(document, whole)
        server_module.did_change(ls, lsp.DidChangeTextDocumentParams(document, [whole]))

    v2 = "# v2\n" + THREE_DROPOUTS
    v3 = v2.replace("        y = F.dropout(x, 0.2)\n", "        y = x\n")

    async def scenario() -> None:
        change(2, v2)
        while not started.is_set():
            await asyncio.sleep(0.01)
        change(3, v3)
        everything = lsp.Range(start=lsp.Position(0, 0), end=lsp.Position(20, 0))
        context = lsp.CodeActionContext(diagnostics=[], only=[lsp.CodeActionKind.QuickFix])
        params = lsp.CodeActionParams(lsp.TextDocumentIdentifier(uri), everything, context)
        asked = asyncio.ensure_future(server_module.code_action_request(ls, params))
        await asyncio.sleep(0.1)
        assert not asked.done()  # waits for the lint of version 3
        release.set()
        actions = await asyncio.wait_for(asked, 30)
        assert {versioned(action, uri)[0] for action in actions} == {3}
        assert len(actions) == 2
        await asyncio.sleep(0.3)  # the lint of version 2 finished meanwhile: dropped

    asyncio.run(scenario())
    assert [(params.version, len(params.diagnostics)) for params in published] == [(3, 2)]


def test_rapid_changes_publish_in_order_ending_with_the_last(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text(THREE_DROPOUTS, encoding="utf-8")
    texts = {1: THREE_DROPOUTS}
    for version in range(2, 9):
        texts[version] = f"# v{version}\n" + texts[version - 1]

    async def scenario(session: Session, result) -> None:
        uri = session.open(path, THREE_DROPOUTS)
        assert (await session.queues[uri].get()).version == 1
        for version in range(2, 9):
            session.client.text_document_did_change(
                lsp.DidChangeTextDocumentParams(
                    text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=texts[version])],
                )
            )
        published = [await asyncio.wait_for(session.queues[uri].get(), 30)]
        while published[-1].version != 8:
            published.append(await asyncio.wait_for(session.queues[uri].get(), 30))
        await asyncio.sleep(0.5)
        assert session.queues[uri].empty()  # nothing after the last version
        versions = [params.version for params in published]
        assert versions == sorted(set(versions))  # never an older version after a newer one
        for params in published:  # each version's own diagnostics
            assert [d.range.start.line for d in params.diagnostics] == [
                6 + params.version - 1,
                7 + params.version - 1,
                8 + params.version - 1,
            ]

    run_session(tmp_path, capabilities(), scenario)


@pytest.mark.parametrize("offered", [None, ["utf-8"], ["utf-32"]])
def test_quick_fixes_on_non_ascii_lines_equal_the_cli(tmp_path: Path, offered: list[str] | None) -> None:
    path = tmp_path / "model.py"
    path.write_text(NON_ASCII, encoding="utf-8")

    async def scenario(session: Session, result) -> None:
        uri = session.open(path, NON_ASCII)
        diagnostics = await session.diagnostics(uri)
        fixable = [d for d in diagnostics if d.data and d.data.get("fixable")]
        assert len(fixable) == 3
        for diagnostic in fixable:
            (quick_fix,) = quick_fixes(await session.actions(uri, cursor(diagnostic.range.start.line), [diagnostic]))
            _, edits = versioned(quick_fix, uri)
            options = ["--select", str(diagnostic.code)]
            if quick_fix.title.endswith("(unsafe)"):
                options.append("--unsafe-fixes")
            assert apply(NON_ASCII, edits, session.encoding) == cli_fixed(tmp_path, NON_ASCII, *options)

    run_session(tmp_path, capabilities(offered), scenario)


def test_fix_all_of_a_long_repetitive_file_equals_the_cli(tmp_path: Path) -> None:
    """Many recurring lines (the diff into edits does not anchor on them): the edits still make the CLI's text."""
    from nnlint.integrations import lsp as server_module

    block = "\n\nclass M{0}(nn.Module):\n    def forward(self, x):\n"
    block += "        x = F.dropout(x, 0.{0})  # é😀\n        return x\n"
    text = "import torch.nn as nn\nimport torch.nn.functional as F\n" + "".join(block.format(i) for i in range(1, 61))
    ls, uri = in_process(tmp_path, capabilities(), text)
    action = lsp.CodeAction(title="fix all", kind=server_module.FIX_ALL, data={"uri": uri, "version": 1})
    _, edits = versioned(server_module.resolve_code_action(ls, action), uri)
    assert len(edits) == 60
    assert apply(text, edits, "utf-16") == cli_fixed(tmp_path, text)
