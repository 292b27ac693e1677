"""The language server, driven by a real LSP client over stdio (pygls's client)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

lsp = pytest.importorskip("lsprotocol.types")
client_module = pytest.importorskip("pygls.lsp.client")

BAD = """import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        s = "😀"; x = F.dropout(x, 0.1)
        return F.dropout(
            x,
            p=0.2,  # keep me
        )
"""


def _apply(text: str, edits: list) -> str:
    """Apply LSP text edits (UTF-16 positions) to ``text``."""
    lines = text.splitlines(keepends=True)

    def offset(position) -> int:
        line = lines[position.line] if position.line < len(lines) else ""
        units = line.encode("utf-16-le")[: position.character * 2].decode("utf-16-le")
        return sum(len(item) for item in lines[: position.line]) + len(units)

    for edit in sorted(edits, key=lambda e: offset(e.range.start), reverse=True):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


class Session:
    """A client connected to ``python -m nnlint lsp``, collecting published diagnostics."""

    def __init__(self) -> None:
        self.client = client_module.LanguageClient("nnlint-tests", "1.0")
        self.published: asyncio.Queue = asyncio.Queue()

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _diagnostics(params) -> None:
            self.published.put_nowait(params)

    async def start(self, root: Path) -> None:
        await self.client.start_io(sys.executable, "-m", "nnlint", "lsp")
        result = await self.client.initialize_async(
            lsp.InitializeParams(capabilities=lsp.ClientCapabilities(), root_uri=root.as_uri())
        )
        assert result.capabilities.code_action_provider is not None
        self.client.initialized(lsp.InitializedParams())

    async def diagnostics(self) -> lsp.PublishDiagnosticsParams:
        return await asyncio.wait_for(self.published.get(), timeout=30)

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def test_diagnostics_quick_fixes_and_fix_all(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text(BAD)
    uri = path.as_uri()
    session = Session()
    await session.start(tmp_path)
    try:
        session.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(uri, "python", 1, BAD))
        )
        published = await session.diagnostics()
        assert published.uri == uri
        first, second = published.diagnostics
        assert (first.code, first.source, first.severity) == ("NN101", "nnlint", lsp.DiagnosticSeverity.Error)
        assert first.message.startswith("`F.dropout` defaults to `training=True`")
        # the emoji counts as two UTF-16 code units
        assert (first.range.start.line, first.range.start.character) == (6, 22)
        assert (first.range.end.line, first.range.end.character) == (6, 39)
        assert (second.range.start.line, second.range.end.line) == (7, 10)

        actions = await session.client.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri),
                range=second.range,
                context=lsp.CodeActionContext(diagnostics=[second], only=[lsp.CodeActionKind.QuickFix]),
            )
        )
        (quick_fix,) = actions
        assert quick_fix.title == "nnlint (NN101): Add `training=self.training`"
        assert quick_fix.kind == lsp.CodeActionKind.QuickFix
        fixed = _apply(BAD, quick_fix.edit.changes[uri])
        assert fixed == BAD.replace("p=0.2,  # keep me\n", "p=0.2,  # keep me\n            training=self.training,\n")

        everything = await session.client.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri),
                range=lsp.Range(start=lsp.Position(0, 0), end=lsp.Position(0, 0)),
                context=lsp.CodeActionContext(diagnostics=[], only=["source.fixAll"]),
            )
        )
        (fix_all,) = everything
        assert fix_all.kind == "source.fixAll.nnlint"
        all_fixed = _apply(BAD, fix_all.edit.changes[uri])
        assert all_fixed.count("training=self.training") == 2

        # a change is linted (debounced) and published again
        session.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=all_fixed)],
            )
        )
        assert list((await session.diagnostics()).diagnostics) == []
    finally:
        await session.stop()


def test_project_config_applies(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.nnlint]\nignore = ["NN101"]\n')
    asyncio.run(_config_scenario(tmp_path))


async def _config_scenario(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    text = BAD + "\n\nclass N(nn.Module):\n    def forward(self, x):\n        return F.rrelu(x)\n"
    path.write_text(text)
    session = Session()
    await session.start(tmp_path)
    try:
        session.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(path.as_uri(), "python", 1, text))
        )
        published = await session.diagnostics()
        assert [d.code for d in published.diagnostics] == ["NN103"]
    finally:
        await session.stop()
