"""The language server's edits can be trusted: positions in the negotiated encoding, versioned edits,
lazy fix-all, configuration errors and reloads, severities, recorded renames (issue 12).

Driven by a real LSP client over stdio (pygls's client); edits are applied here, independently of the
server, and compared with what ``nnlint check --fix`` writes.
"""

from __future__ import annotations

import ast
import asyncio
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import run_cli

lsp = pytest.importorskip("lsprotocol.types")
client_module = pytest.importorskip("pygls.lsp.client")

NON_ASCII = """import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        s = "é😀"; x = F.dropout(x, 0.5)  # é😀
        t = "😀é"; y = F.rrelu(x)
        return F.upsample(x + y, scale_factor=2) if s and t else y
"""

TWO_DROPOUTS = """import torch.nn as nn
import torch.nn.functional as F


class M(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.1)
        return F.dropout(x, 0.2)
"""

MANUAL_CONV = """import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, channels=8):
        super().__init__()
        self.act = nn.ReLU()
        self.conv_weight = nn.Parameter(torch.randn(channels, 3, 3, 3) * 0.1)
        self.conv_bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return self.act(F.conv2d(x, self.conv_weight, self.conv_bias, stride=2, padding=1))
"""


def capabilities(encodings: list[str] | None = None, plain: bool = False) -> lsp.ClientCapabilities:
    """What Neovim 0.11 declares (the parts that matter here); ``plain``: nothing at all."""
    if plain:
        return lsp.ClientCapabilities()
    return lsp.ClientCapabilities(
        general=lsp.GeneralClientCapabilities(position_encodings=encodings),
        workspace=lsp.WorkspaceClientCapabilities(
            workspace_edit=lsp.WorkspaceEditClientCapabilities(document_changes=True),
            did_change_watched_files=lsp.DidChangeWatchedFilesClientCapabilities(dynamic_registration=True),
        ),
        text_document=lsp.TextDocumentClientCapabilities(
            code_action=lsp.CodeActionClientCapabilities(
                resolve_support=lsp.ClientCodeActionResolveOptions(properties=["edit", "command"]),
                data_support=True,
            )
        ),
    )


class Session:
    """A client connected to ``python -m nnlint lsp``; collects diagnostics (per document), messages, registrations."""

    def __init__(self) -> None:
        self.client = client_module.LanguageClient("nnlint-tests", "1.0")
        self.queues: dict[str, asyncio.Queue] = defaultdict(asyncio.Queue)
        self.messages: list = []
        self.registrations: list = []
        self.encoding = "utf-16"

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _diagnostics(params) -> None:
            self.queues[params.uri].put_nowait(params)

        @self.client.feature(lsp.WINDOW_SHOW_MESSAGE)
        def _message(params) -> None:
            self.messages.append(params)

        @self.client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
        def _register(params) -> None:
            self.registrations.append(params)

    async def start(self, root: Path, client_capabilities: lsp.ClientCapabilities) -> lsp.InitializeResult:
        await self.client.start_io(sys.executable, "-m", "nnlint", "lsp")
        result = await self.client.initialize_async(
            lsp.InitializeParams(capabilities=client_capabilities, root_uri=root.as_uri())
        )
        self.encoding = result.capabilities.position_encoding or "utf-16"
        self.client.initialized(lsp.InitializedParams())
        return result

    async def diagnostics(self, uri: str) -> list:
        return list((await asyncio.wait_for(self.queues[uri].get(), timeout=30)).diagnostics)

    def open(self, path: Path, text: str, language: str = "python") -> str:
        uri = path.as_uri()
        self.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(uri, language, 1, text))
        )
        return uri

    async def actions(self, uri: str, span, diagnostics: list, only: list[str] | None = None) -> list:
        return await self.client.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri),
                range=span,
                context=lsp.CodeActionContext(diagnostics=diagnostics, only=only),
            )
        )

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def run_session(root: Path, client_capabilities: lsp.ClientCapabilities, scenario) -> None:
    async def main() -> None:
        session = Session()
        result = await session.start(root, client_capabilities)
        try:
            await scenario(session, result)
        finally:
            await session.stop()

    asyncio.run(main())


def offset(text: str, position, encoding: str) -> int:
    """The character offset of an LSP position (strict: a position inside a character raises)."""
    lines = text.splitlines(keepends=True)
    if position.line >= len(lines):
        return len(text)
    line = lines[position.line].rstrip("\r\n")
    if encoding == "utf-8":
        prefix = line.encode("utf-8")[: position.character].decode("utf-8")
    elif encoding == "utf-32":
        prefix = line[: position.character]
    else:
        prefix = line.encode("utf-16-le")[: 2 * position.character].decode("utf-16-le")
    return sum(len(item) for item in lines[: position.line]) + len(prefix)


def covered(text: str, span, encoding: str) -> str:
    return text[offset(text, span.start, encoding) : offset(text, span.end, encoding)]


def apply(text: str, edits: list, encoding: str) -> str:
    """Apply LSP text edits to ``text``, positions in ``encoding``."""
    spans = [(offset(text, e.range.start, encoding), offset(text, e.range.end, encoding), e.new_text) for e in edits]
    for start, end, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def versioned(action, uri: str) -> tuple[int | None, list]:
    """The version and edits of the action's one ``TextDocumentEdit``."""
    assert action.edit is not None and action.edit.changes is None
    (change,) = action.edit.document_changes
    assert change.text_document.uri == uri
    return change.text_document.version, list(change.edits)


def cli_fixed(tmp_path: Path, text: str, *options: str, config: str | None = None) -> str:
    """What ``nnlint check --fix`` makes of ``text`` (as model.py in a fresh directory)."""
    directory = Path(tempfile.mkdtemp(dir=tmp_path, prefix="cli"))
    if config is not None:
        (directory / "pyproject.toml").write_text(config, encoding="utf-8")
    path = directory / "model.py"
    path.write_text(text, encoding="utf-8")
    result = run_cli("check", "--fix", "--no-cache", *options, "model.py", cwd=directory)
    assert result.returncode in (0, 1), result.stderr
    return path.read_text(encoding="utf-8")


def quick_fixes(actions: list) -> list:
    return [action for action in actions if action.kind == lsp.CodeActionKind.QuickFix]


def fix_all_of(actions: list):
    (action,) = [action for action in actions if action.kind == "source.fixAll.nnlint"]
    return action


def cursor(line: int, character: int = 0):
    return lsp.Range(start=lsp.Position(line, character), end=lsp.Position(line, character))


# --- item 2: position encodings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (None, "utf-16"),
        (["utf-8"], "utf-8"),
        (["utf-16", "utf-8", "utf-32"], "utf-8"),  # like ruff: UTF-8 preferred, whatever the client's order
        (["utf-32", "utf-16"], "utf-32"),
    ],
)
def test_positions_in_the_negotiated_encoding(tmp_path: Path, offered: list[str] | None, expected: str) -> None:
    path = tmp_path / "model.py"
    path.write_text(NON_ASCII, encoding="utf-8")

    async def scenario(session: Session, result) -> None:
        assert result.capabilities.position_encoding == expected
        uri = session.open(path, NON_ASCII)
        diagnostics = await session.diagnostics(uri)
        assert [covered(NON_ASCII, d.range, expected) for d in diagnostics] == [
            "F.dropout(x, 0.5)",
            "F.rrelu(x)",
            "F.upsample(x + y, scale_factor=2)",
        ]
        dropout = diagnostics[0]
        # the cursor at the start of the line, the line's diagnostic in the context (what `gra` sends)
        actions = await session.actions(uri, cursor(6), [dropout])
        (quick_fix,) = quick_fixes(actions)
        version, edits = versioned(quick_fix, uri)
        assert version == 1
        fixed = apply(NON_ASCII, edits, expected)
        ast.parse(fixed)
        assert fixed == cli_fixed(tmp_path, NON_ASCII, "--select", "NN101")
        assert "x = F.dropout(x, 0.5, training=self.training)  # é😀" in fixed

        resolved = await session.client.code_action_resolve_async(fix_all_of(actions))
        version, edits = versioned(resolved, uri)
        assert version == 1
        all_fixed = apply(NON_ASCII, edits, expected)
        ast.parse(all_fixed)
        assert all_fixed == cli_fixed(tmp_path, NON_ASCII)

    run_session(tmp_path, capabilities(offered), scenario)


# --- item 3: versioned edits, never for an older version ------------------------------------------


def test_edits_are_for_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text(NON_ASCII, encoding="utf-8")
    # version 2: a line above, and `é` typed after the emoji (incremental changes, UTF-8 positions)
    v2 = "# é😀\n" + NON_ASCII.replace('s = "é😀"', 's = "é😀é"')
    v3 = "# v3\n" + v2

    async def scenario(session: Session, result) -> None:
        assert session.encoding == "utf-8"
        uri = session.open(path, NON_ASCII)
        await session.diagnostics(uri)
        after_emoji = len('        s = "é😀'.encode())
        session.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[
                    lsp.TextDocumentContentChangePartial(range=cursor(6, after_emoji), text="é"),
                    lsp.TextDocumentContentChangePartial(range=cursor(0), text="# é😀\n"),
                ],
            )
        )
        # asked at once, before the debounced lint of version 2: computed for version 2
        line = lsp.Range(start=lsp.Position(7, 0), end=lsp.Position(8, 0))
        actions = await session.actions(uri, line, [])
        (quick_fix,) = quick_fixes(actions)
        version, edits = versioned(quick_fix, uri)
        assert version == 2
        assert apply(v2, edits, "utf-8") == cli_fixed(tmp_path, v2, "--select", "NN101")

        fix_all = fix_all_of(actions)
        assert fix_all.edit is None  # resolved later
        session.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=3),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=v3)],
            )
        )
        # resolved after another change: computed again, for version 3
        resolved = await session.client.code_action_resolve_async(fix_all)
        version, edits = versioned(resolved, uri)
        assert version == 3
        assert apply(v3, edits, "utf-8") == cli_fixed(tmp_path, v3)

    run_session(tmp_path, capabilities(["utf-8", "utf-16"]), scenario)


# --- item 17: quick fixes for the context's diagnostics, fix-all resolved lazily -------------------


def test_quick_fix_for_context_diagnostic_and_lazy_fix_all(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text(TWO_DROPOUTS, encoding="utf-8")

    async def scenario(session: Session, result) -> None:
        assert result.capabilities.code_action_provider.resolve_provider is True
        uri = session.open(path, TWO_DROPOUTS)
        first, _ = await session.diagnostics(uri)
        assert first.range.start.character > 0
        # no `only`, the cursor at the start of the line, outside the underlined span
        actions = await session.actions(uri, cursor(first.range.start.line), [first])
        (quick_fix,) = quick_fixes(actions)
        assert quick_fix.diagnostics[0].range == first.range
        _, edits = versioned(quick_fix, uri)
        # that finding's own edit only
        assert apply(TWO_DROPOUTS, edits, "utf-16") == TWO_DROPOUTS.replace(
            "F.dropout(x, 0.1)", "F.dropout(x, 0.1, training=self.training)"
        )
        fix_all = fix_all_of(actions)
        assert fix_all.edit is None and fix_all.data is not None  # not computed for this request
        resolved = await session.client.code_action_resolve_async(fix_all)
        _, edits = versioned(resolved, uri)
        assert apply(TWO_DROPOUTS, edits, "utf-16").count("training=self.training") == 2
        again = await session.client.code_action_resolve_async(fix_all)
        assert versioned(again, uri) == versioned(resolved, uri)

    run_session(tmp_path, capabilities(), scenario)


def in_process(tmp_path: Path, client_capabilities: lsp.ClientCapabilities, text: str):
    """A server (not started) that has ``text`` open as model.py: (server, uri)."""
    from pygls.workspace import Workspace

    from nnlint.integrations import lsp as server_module

    ls = server_module.NnlintServer()
    ls.protocol._workspace = Workspace(tmp_path.as_uri())
    ls.protocol.client_capabilities = client_capabilities
    uri = (tmp_path / "model.py").as_uri()
    ls.workspace.put_text_document(lsp.TextDocumentItem(uri, "python", 1, text))
    return ls, uri


def test_fix_all_is_computed_once_per_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nnlint.fixes.apply as apply_module
    from nnlint.integrations import lsp as server_module

    ls, uri = in_process(tmp_path, capabilities(), TWO_DROPOUTS)
    calls = []
    real = apply_module.fix_run
    monkeypatch.setattr(apply_module, "fix_run", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))

    def resolve() -> list:
        action = lsp.CodeAction(title="fix all", kind=server_module.FIX_ALL, data={"uri": uri, "version": 1})
        return versioned(server_module.resolve_code_action(ls, action), uri)[1]

    assert resolve() == resolve()
    assert len(calls) == 1
    ls.workspace.update_text_document(
        lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
        lsp.TextDocumentContentChangeWholeDocument(text="# v2\n" + TWO_DROPOUTS),
    )
    assert resolve()[0].range.start.line == 7
    assert len(calls) == 2


# --- item 14: configuration errors and reloads ----------------------------------------------------


def test_bad_configuration_is_reported_and_reloaded(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.nnlint]\nignore = ["NN103"]\nselect = ["NN9"]\n', encoding="utf-8")
    path = tmp_path / "model.py"
    path.write_text(TWO_DROPOUTS, encoding="utf-8")
    config_uri = pyproject.as_uri()

    async def scenario(session: Session, result) -> None:
        uri = session.open(path, TWO_DROPOUTS)
        # still served: the defaults apply
        assert [d.code for d in await session.diagnostics(uri)] == ["NN101", "NN101"]
        (message,) = session.messages
        assert message.type == lsp.MessageType.Error
        assert "unknown rule selector 'NN9'" in message.message and "Traceback" not in message.message
        (problem,) = await session.diagnostics(config_uri)
        assert (problem.range.start.line, problem.severity) == (2, lsp.DiagnosticSeverity.Error)
        assert "unknown rule selector 'NN9'" in problem.message
        # shown once, not at every lint
        session.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=TWO_DROPOUTS + "\n")],
            )
        )
        await session.diagnostics(uri)
        assert len(session.messages) == 1

        (registration,) = [r for params in session.registrations for r in params.registrations]
        assert registration.method == lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES
        patterns = {watcher["globPattern"] for watcher in registration.register_options["watchers"]}
        assert {"**/pyproject.toml", "**/nnlint.toml", "**/.nnlint.toml"} <= patterns

        # fixed on disk: the watcher's notice reloads it and lints the open documents again
        pyproject.write_text('[tool.nnlint]\nignore = ["NN101"]\n', encoding="utf-8")
        session.client.workspace_did_change_watched_files(
            lsp.DidChangeWatchedFilesParams(changes=[lsp.FileEvent(uri=config_uri, type=lsp.FileChangeType.Changed)])
        )
        assert await session.diagnostics(uri) == []
        assert await session.diagnostics(config_uri) == []

        # broken TOML, saved in the editor: reported, and the defaults apply again
        session.open(pyproject, "[tool.nnlint\n", language="toml")
        pyproject.write_text("[tool.nnlint\n", encoding="utf-8")
        session.client.text_document_did_save(
            lsp.DidSaveTextDocumentParams(text_document=lsp.TextDocumentIdentifier(config_uri))
        )
        assert [d.code for d in await session.diagnostics(uri)] == ["NN101", "NN101"]
        assert "invalid TOML" in session.messages[-1].message
        (problem,) = await session.diagnostics(config_uri)
        assert "invalid TOML" in problem.message

    run_session(tmp_path, capabilities(), scenario)


# --- item 16: severities and enabled rules as on the command line ---------------------------------


def test_severity_and_enabled_rules_as_the_cli(tmp_path: Path) -> None:
    config = '[tool.nnlint]\nextend-select = ["NN501"]\n[tool.nnlint.per-file-ignores]\n"model.py" = ["NN103"]\n'
    (tmp_path / "pyproject.toml").write_text(config, encoding="utf-8")
    path = tmp_path / "model.py"
    path.write_text(NON_ASCII, encoding="utf-8")
    cli = run_cli("check", "--no-cache", "--output-format", "json", "model.py", cwd=tmp_path)
    expected = [item["code"] for item in json.loads(cli.stdout)]
    assert "NN103" not in expected and {"NN101", "NN405"} <= set(expected)

    async def scenario(session: Session, result) -> None:
        uri = session.open(path, NON_ASCII)
        diagnostics = await session.diagnostics(uri)
        assert [d.code for d in diagnostics] == expected
        severities = {d.code: d.severity for d in diagnostics}
        assert severities["NN101"] == lsp.DiagnosticSeverity.Error  # a bug
        assert severities["NN405"] == lsp.DiagnosticSeverity.Warning  # maintainability

    run_session(tmp_path, capabilities(), scenario)


# --- item 18: unsafe renaming fixes say so and record the renames ---------------------------------


def test_renaming_fix_records_renames_as_the_cli(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.nnlint]\n", encoding="utf-8")
    path = project / "pkg" / "model.py"
    path.write_text(MANUAL_CONV, encoding="utf-8")
    reference = tmp_path / "reference"
    (reference / "pkg").mkdir(parents=True)
    (reference / "pyproject.toml").write_text("[tool.nnlint]\n", encoding="utf-8")
    (reference / "pkg" / "model.py").write_text(MANUAL_CONV, encoding="utf-8")
    cli = run_cli("check", "--fix", "--unsafe-fixes", "--no-cache", "pkg/model.py", cwd=reference)
    assert "recorded 2 state_dict renames" in cli.stderr
    renames = project / "nnlint-renames.json"

    async def scenario(session: Session, result) -> None:
        assert "nnlint.recordRenames" in result.capabilities.execute_command_provider.commands
        uri = session.open(path, MANUAL_CONV)
        (conv,) = await session.diagnostics(uri)
        assert (conv.code, conv.severity) == ("NN202", lsp.DiagnosticSeverity.Warning)
        (quick_fix,) = quick_fixes(await session.actions(uri, cursor(conv.range.start.line), [conv]))
        assert quick_fix.title.endswith("(unsafe) (renames state_dict keys)")
        assert quick_fix.edit is None and quick_fix.command is None  # both come in codeAction/resolve
        quick_fix = await session.client.code_action_resolve_async(quick_fix)
        _, edits = versioned(quick_fix, uri)
        assert apply(MANUAL_CONV, edits, "utf-16") == (reference / "pkg" / "model.py").read_text(encoding="utf-8")
        # the client applies the edit, then runs the action's command
        assert not renames.exists()
        command = quick_fix.command
        await session.client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command=command.command, arguments=command.arguments)
        )
        assert json.loads(renames.read_text()) == json.loads((reference / "nnlint-renames.json").read_text())
        assert "recorded 2 state_dict renames" in session.messages[-1].message

    run_session(project, capabilities(), scenario)


def test_plain_client_gets_the_edit_and_the_command_at_once(tmp_path: Path) -> None:
    from nnlint.integrations import lsp as server_module

    ls, uri = in_process(tmp_path, capabilities(plain=True), MANUAL_CONV)
    everything = lsp.Range(start=lsp.Position(0, 0), end=lsp.Position(20, 0))
    params = lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri), range=everything, context=lsp.CodeActionContext(diagnostics=[])
    )
    (quick_fix,) = server_module.code_action(ls, params)
    assert quick_fix.edit.document_changes is None and quick_fix.edit.changes[uri]  # no versioned edits declared
    assert quick_fix.command.command == "nnlint.recordRenames"
    ((qualname, change),) = quick_fix.command.arguments[0]["changes"]
    assert (qualname, change["renames"]) == (
        "model.Model",
        [["conv_weight", "conv.weight"], ["conv_bias", "conv.bias"]],
    )


def test_undecodable_buffer_is_one_diagnostic(tmp_path: Path) -> None:
    from nnlint.integrations import lsp as server_module

    ls, uri = in_process(tmp_path, capabilities(), "x = 1\x00\n")
    (diagnostic,) = server_module._diagnostics(server_module._lint(ls, uri))
    assert (diagnostic.code, diagnostic.message) == ("NN001", "file contains null bytes (binary file?)")
