"""The language server's LSP 3.17 notebook documents (issue 14), driven by a real LSP client over stdio.

A notebook's Python code cells are linted together (one module, in notebook order); diagnostics are
published per cell (the cell's document, positions in the cell); quick fixes and fix-all edit the cells,
each in its own document, and are compared with what ``nnlint check --fix nb.ipynb`` writes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_lsp_trust import Session, apply, capabilities, covered, quick_fixes, run_session

from conftest import run_cli

lsp = pytest.importorskip("lsprotocol.types")

IMPORTS = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
MODEL = """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5)
"""
NON_ASCII = 'x = torch.randn(2, 3)\nlabel = "é😀"; p = F.softmax(x)\n'
HEAD = "class Head(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.1)"
#: an import the fix adds goes to the first cell (which has no final newline)
PLAIN_IMPORTS = "from torch.nn import Module, Linear"
LAYERS = """class Stack(Module):
    def __init__(self):
        super().__init__()
        self.layers = [Linear(2, 2), Linear(2, 2)]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return F.dropout(x, 0.2)
"""
FIXED_LAYERS = LAYERS.replace("[Linear(2, 2), Linear(2, 2)]", "nn.ModuleList([Linear(2, 2), Linear(2, 2)])")


def notebook_capabilities(encodings: list[str] | None = None) -> lsp.ClientCapabilities:
    """What a notebook-aware editor declares (VS Code's notebook sync), with versioned edits and resolve."""
    declared = capabilities(encodings)
    declared.notebook_document = lsp.NotebookDocumentClientCapabilities(
        synchronization=lsp.NotebookDocumentSyncClientCapabilities(execution_summary_support=True)
    )
    return declared


def cell(notebook: Path, number: int) -> str:
    return f"vscode-notebook-cell:{notebook.as_posix()}#W{number}sZmlsZQ%3D%3D"


def code(uri: str) -> lsp.NotebookCell:
    return lsp.NotebookCell(kind=lsp.NotebookCellKind.Code, document=uri)


def open_notebook(session: Session, path: Path, cells: list[tuple[str, str, str]]) -> None:
    """Open a notebook of (cell uri, language, text) cells (markdown cells are markup)."""
    session.client.notebook_document_did_open(
        lsp.DidOpenNotebookDocumentParams(
            notebook_document=lsp.NotebookDocument(
                uri=path.as_uri(),
                notebook_type="jupyter-notebook",
                version=1,
                cells=[
                    lsp.NotebookCell(
                        kind=lsp.NotebookCellKind.Markup if language == "markdown" else lsp.NotebookCellKind.Code,
                        document=uri,
                    )
                    for uri, language, _ in cells
                ],
            ),
            cell_text_documents=[lsp.TextDocumentItem(uri, language, 1, text) for uri, language, text in cells],
        )
    )


def change_notebook(session: Session, path: Path, version: int, cells: lsp.NotebookDocumentCellChanges) -> None:
    session.client.notebook_document_did_change(
        lsp.DidChangeNotebookDocumentParams(
            notebook_document=lsp.VersionedNotebookDocumentIdentifier(version=version, uri=path.as_uri()),
            change=lsp.NotebookDocumentChangeEvent(cells=cells),
        )
    )


async def published(session: Session, uri: str) -> tuple[int | None, list]:
    """The version and diagnostics of the next publication for ``uri``."""
    params = await asyncio.wait_for(session.queues[uri].get(), timeout=30)
    return params.version, list(params.diagnostics)


async def nothing_more(session: Session, *uris: str) -> None:
    """No other diagnostics are published for these documents (given time to be)."""
    await asyncio.sleep(0.5)
    assert all(session.queues[uri].empty() for uri in uris)


async def actions(session: Session, uri: str, span, diagnostics: list, only: list[str] | None = None) -> list:
    return list(await session.actions(uri, span, diagnostics, only))


def ranges(diagnostics: list) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    return [
        (d.code, (d.range.start.line, d.range.start.character), (d.range.end.line, d.range.end.character))
        for d in diagnostics
    ]


def cell_edits(action, versions: dict[str, int]) -> dict[str, list]:
    """The action's edits per cell uri (versioned: each for the version of its cell)."""
    assert action.edit is not None and action.edit.changes is None
    edits = {}
    for change in action.edit.document_changes:
        assert change.text_document.version == versions[change.text_document.uri]
        edits[change.text_document.uri] = list(change.edits)
    return edits


def cli_fixed_cells(tmp_path: Path, cells: list[str]) -> list[str]:
    """The code cells ``nnlint check --fix`` writes for a notebook of these cells."""
    directory = tmp_path / "cli"
    directory.mkdir()
    cells_json = [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": text} for text in cells
    ]
    language = {"kernelspec": {"language": "python", "name": "python3"}, "language_info": {"name": "python"}}
    data = {"cells": cells_json, "metadata": language, "nbformat": 4, "nbformat_minor": 5}
    (directory / "nb.ipynb").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    result = run_cli("check", "--fix", "--no-cache", "nb.ipynb", cwd=directory)
    assert result.returncode in (0, 1), result.stderr
    fixed = json.loads((directory / "nb.ipynb").read_text(encoding="utf-8"))
    return ["".join(item["source"]) if isinstance(item["source"], list) else item["source"] for item in fixed["cells"]]


# --- diagnostics per cell, a quick fix applied, cells added, moved and removed -------------------------


class Opened:
    """The notebook of the first test: its path and its cells' uris (``added`` is added later)."""

    def __init__(self, path: Path, encoding: str) -> None:
        self.path, self.encoding = path, encoding
        self.first, self.markdown, self.second, self.third, self.added = (cell(path, number) for number in range(5))


@pytest.mark.parametrize(("offered", "softmax"), [(None, (19, 31)), (["utf-8"], (22, 34))])
def test_notebook_sync_diagnostics_and_quick_fix_per_cell(
    tmp_path: Path, offered: list[str] | None, softmax: tuple[int, int]
) -> None:
    notebook = Opened(tmp_path / "nb.ipynb", "utf-8" if offered else "utf-16")

    async def scenario(session: Session, result) -> None:
        (selector,) = result.capabilities.notebook_document_sync.notebook_selector
        assert (selector.notebook, [c.language for c in selector.cells]) == ("jupyter-notebook", ["python"])
        assert result.capabilities.notebook_document_sync.save is True
        assert result.capabilities.position_encoding == notebook.encoding
        dropout, softmax_diagnostics = await _opened(session, notebook, softmax)
        await _quick_fix_applied(session, notebook, tmp_path, dropout, softmax_diagnostics)
        await _cell_added_moved_removed(session, notebook)
        await _saved_and_closed(session, notebook, softmax_diagnostics)

    run_session(tmp_path, notebook_capabilities(offered), scenario)


async def _opened(session: Session, notebook: Opened, softmax: tuple[int, int]) -> tuple:
    """Each code cell's diagnostics, on its own document, positions in the cell; none for markdown."""
    cells = [
        (notebook.first, "python", IMPORTS),
        (notebook.markdown, "markdown", "# Modèle — F.dropout(x, 0.5)"),
        (notebook.second, "python", MODEL),
        (notebook.third, "python", NON_ASCII),
    ]
    open_notebook(session, notebook.path, cells)
    assert await published(session, notebook.first) == (1, [])
    version, in_model = await published(session, notebook.second)
    assert (version, ranges(in_model)) == (1, [("NN101", (6, 15), (6, 41))])
    (dropout,) = in_model
    assert covered(MODEL, dropout.range, notebook.encoding) == "F.dropout(self.fc(x), 0.5)"
    assert dropout.message.startswith("`F.dropout` defaults to `training=True`")
    version, in_third = await published(session, notebook.third)
    assert (version, ranges(in_third)) == (1, [("NN403", (1, softmax[0]), (1, softmax[1]))])
    assert covered(NON_ASCII, in_third[0].range, notebook.encoding) == "F.softmax(x)"
    await nothing_more(session, notebook.first, notebook.markdown, notebook.second, notebook.third)
    return dropout, in_third


async def _quick_fix_applied(session: Session, notebook: Opened, tmp_path: Path, dropout, in_third: list) -> None:
    """A quick fix asked in cell 2 edits cell 2 only, as the CLI; applied, cell 2's diagnostics are cleared."""
    second = notebook.second
    (quick_fix,) = await actions(session, second, dropout.range, [dropout], only=[lsp.CodeActionKind.QuickFix])
    assert quick_fix.title == "nnlint (NN101): Add `training=self.training`"
    assert quick_fix.diagnostics[0].range == dropout.range
    edits = cell_edits(quick_fix, {second: 1})
    assert list(edits) == [second]
    fixed = apply(MODEL, edits[second], notebook.encoding)
    assert fixed == MODEL.replace("0.5)", "0.5, training=self.training)")
    assert cli_fixed_cells(tmp_path, [IMPORTS, MODEL, NON_ASCII]) == [IMPORTS, fixed, NON_ASCII]
    # nothing to fix in cell 3 (NN403 has no fix), nor in the markdown cell
    third = notebook.third
    assert await actions(session, third, in_third[0].range, in_third, only=[lsp.CodeActionKind.QuickFix]) == []
    assert await actions(session, notebook.markdown, dropout.range, [], only=[lsp.CodeActionKind.QuickFix]) == []

    # the editor applies the edit, as an incremental change of cell 2
    changes = [lsp.TextDocumentContentChangePartial(range=e.range, text=e.new_text) for e in edits[second]]
    content = lsp.NotebookDocumentCellContentChanges(
        document=lsp.VersionedTextDocumentIdentifier(uri=second, version=2), changes=changes
    )
    change_notebook(session, notebook.path, 2, lsp.NotebookDocumentCellChanges(text_content=[content]))
    assert await published(session, second) == (2, [])
    await nothing_more(session, notebook.first, notebook.markdown, second, third)


async def _cell_added_moved_removed(session: Session, notebook: Opened) -> None:
    first, second, third, added = notebook.first, notebook.second, notebook.third, notebook.added
    # added at the end: linted with the others (it uses the imports of cell 1)
    structure = lsp.NotebookDocumentCellChangeStructure(
        array=lsp.NotebookCellArrayChange(start=4, delete_count=0, cells=[code(added)]),
        did_open=[lsp.TextDocumentItem(added, "python", 1, HEAD)],
    )
    change_notebook(session, notebook.path, 3, lsp.NotebookDocumentCellChanges(structure=structure))
    version, in_added = await published(session, added)
    assert (version, ranges(in_added)) == (1, [("NN101", (2, 15), (2, 32))])
    await nothing_more(session, first, second, third, added)

    # moved to the top: its diagnostics are the same (not published again); its quick fix edits it
    markup = lsp.NotebookCell(kind=lsp.NotebookCellKind.Markup, document=notebook.markdown)
    move = lsp.NotebookCellArrayChange(
        start=0, delete_count=5, cells=[code(added), code(first), markup, code(second), code(third)]
    )
    structure = lsp.NotebookDocumentCellChangeStructure(array=move)
    change_notebook(session, notebook.path, 4, lsp.NotebookDocumentCellChanges(structure=structure))
    await nothing_more(session, first, second, third, added)
    (head_fix,) = quick_fixes(await actions(session, added, in_added[0].range, in_added))
    head_edits = cell_edits(head_fix, {added: 1})
    assert apply(HEAD, head_edits[added], notebook.encoding) == HEAD.replace("0.1)", "0.1, training=self.training)")

    # removed: its diagnostics cleared, no more code actions for it
    remove = lsp.NotebookDocumentCellChangeStructure(
        array=lsp.NotebookCellArrayChange(start=0, delete_count=1), did_close=[lsp.TextDocumentIdentifier(added)]
    )
    change_notebook(session, notebook.path, 5, lsp.NotebookDocumentCellChanges(structure=remove))
    assert await published(session, added) == (None, [])
    await nothing_more(session, first, second, third, added)
    assert await actions(session, added, in_added[0].range, []) == []


async def _saved_and_closed(session: Session, notebook: Opened, in_third: list) -> None:
    cells = (notebook.first, notebook.second, notebook.third)
    # saved: linted again, nothing changed, nothing published
    session.client.notebook_document_did_save(
        lsp.DidSaveNotebookDocumentParams(notebook_document=lsp.NotebookDocumentIdentifier(notebook.path.as_uri()))
    )
    await nothing_more(session, *cells)
    # closed: the cells that have diagnostics get them cleared
    session.client.notebook_document_did_close(
        lsp.DidCloseNotebookDocumentParams(
            notebook_document=lsp.NotebookDocumentIdentifier(notebook.path.as_uri()),
            cell_text_documents=[lsp.TextDocumentIdentifier(uri) for uri in (*cells, notebook.markdown)],
        )
    )
    assert await published(session, notebook.third) == (None, [])
    await nothing_more(session, *cells)
    assert await actions(session, notebook.third, in_third[0].range, in_third) == []


# --- edits in other cells, fix-all of the notebook -------------------------------------------------


def test_quick_fix_and_fix_all_edit_each_cell_they_change(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    first, second = cell(path, 0), cell(path, 1)
    functional = "import torch.nn.functional as F\n"
    imports = functional + PLAIN_IMPORTS
    expected = cli_fixed_cells(tmp_path, [imports, LAYERS])
    assert expected == [
        imports + "\nimport torch.nn as nn",
        FIXED_LAYERS.replace("0.2)", "0.2, training=self.training)"),
    ]

    async def scenario(session: Session, result) -> None:
        open_notebook(session, path, [(first, "python", imports), (second, "python", LAYERS)])
        assert await published(session, first) == (1, [])
        _, (layers, dropout) = await published(session, second)
        assert ranges([layers, dropout]) == [("NN302", (3, 8), (3, 50)), ("NN101", (8, 15), (8, 32))]

        # NN302's fix adds `import torch.nn as nn`: to cell 1, in the same workspace edit
        (quick_fix,) = quick_fixes(await actions(session, second, layers.range, [layers]))
        assert quick_fix.title == "nnlint (NN302): Use `nn.ModuleList`"
        edits = cell_edits(quick_fix, {first: 1, second: 1})
        assert list(edits) == [first, second]
        (added,) = edits[first]
        at_end = lsp.Position(1, 35)
        assert (added.range, added.new_text) == (lsp.Range(at_end, at_end), "\nimport torch.nn as nn")
        assert apply(imports, edits[first], "utf-16") == expected[0]
        assert apply(LAYERS, edits[second], "utf-16") == FIXED_LAYERS

        # fix-all (resolved lazily) fixes the notebook as `nnlint check --fix nb.ipynb`
        everything = await actions(session, second, lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)), [])
        (fix_all,) = [action for action in everything if action.kind == "source.fixAll.nnlint"]
        assert fix_all.edit is None
        resolved = await session.client.code_action_resolve_async(fix_all)
        edits = cell_edits(resolved, {first: 1, second: 1})
        assert [apply(imports, edits[first], "utf-16"), apply(LAYERS, edits[second], "utf-16")] == expected

        # as VS Code's `notebook.codeActionsOnSave` asks for it, from the first cell
        asked = await actions(session, first, lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)), [], ["notebook"])
        (notebook_fix_all,) = asked
        assert notebook_fix_all.kind == "notebook.source.fixAll.nnlint"
        resolved = await session.client.code_action_resolve_async(notebook_fix_all)
        assert cell_edits(resolved, {first: 1, second: 1}) == edits

    run_session(tmp_path, notebook_capabilities(), scenario)


def test_a_cell_that_does_not_parse_and_a_plain_client(tmp_path: Path) -> None:
    """A cell that does not parse is one NN001 in it, the others are linted; IPython magics are masked.
    A client without versioned edits gets ``changes`` per cell."""
    from pygls.workspace import Workspace

    from nnlint.integrations import lsp as server_module

    path = tmp_path / "nb.ipynb"
    first, broken, magic = cell(path, 0), cell(path, 1), cell(path, 2)
    ls = server_module.NnlintServer()
    ls.protocol._workspace = Workspace(tmp_path.as_uri())
    ls.protocol.client_capabilities = lsp.ClientCapabilities()
    texts = {first: IMPORTS, broken: "def broken(:\n    pass\n", magic: "%matplotlib inline\n" + HEAD}
    params = lsp.DidOpenNotebookDocumentParams(
        notebook_document=lsp.NotebookDocument(path.as_uri(), "jupyter-notebook", 1, [code(uri) for uri in texts]),
        cell_text_documents=[lsp.TextDocumentItem(uri, "python", 1, text) for uri, text in texts.items()],
    )
    ls.workspace.put_notebook_document(params)
    ls.notebooks[path.as_uri()] = {}
    linted = server_module._lint(ls, path.as_uri())
    found = server_module._cell_diagnostics(linted, linted.cells)
    assert {uri: ranges(diagnostics) for uri, diagnostics in found.items()} == {
        first: [],
        broken: [("NN001", (0, 11), (0, 11))],
        magic: [("NN101", (3, 15), (3, 32))],
    }
    assert found[broken][0].message == "could not parse the cell: invalid syntax"
    (dropout,) = found[magic]
    context = lsp.CodeActionContext(diagnostics=[dropout])
    quick_fix, fix_all = server_module.code_action(
        ls, lsp.CodeActionParams(lsp.TextDocumentIdentifier(magic), dropout.range, context)
    )
    fixed = texts[magic].replace("0.1)", "0.1, training=self.training)")
    assert quick_fix.kind == lsp.CodeActionKind.QuickFix and quick_fix.edit.document_changes is None
    assert list(quick_fix.edit.changes) == [magic]
    assert apply(texts[magic], quick_fix.edit.changes[magic], "utf-16") == fixed
    # the plain client cannot resolve: fix-all's edit comes at once, the broken cell left as it is
    assert fix_all.kind == "source.fixAll.nnlint" and list(fix_all.edit.changes) == [magic]
    assert apply(texts[magic], fix_all.edit.changes[magic], "utf-16") == fixed
