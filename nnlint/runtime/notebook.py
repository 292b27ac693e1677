"""Classes defined in a Jupyter notebook, built for ``--verify`` and ``nnlint runtime`` without running it.

A notebook's top-level code loads data and trains models. nnlint builds a module from the
notebook's imports and definitions only: top-level ``import``/``from ... import``, ``def``,
``async def``, ``class`` and constant assignments (names bound to a literal, as
:func:`ast.literal_eval` reads it), one statement at a time, in cell order. No other top-level
statement runs, and masked IPython lines (``%time``, ``!pip``) inside kept definitions are
dropped. A class that needs a name this leaves out (in its bases, decorators, class body,
default arguments or methods, or through a function or class of the notebook it uses) is
unverifiable: :meth:`NotebookModule.problem` names the name and its cell, and the class is never
built.
"""

from __future__ import annotations
import __future__

import ast
import linecache
import os
import symtable
import sys
import types
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from nnlint.engine.notebook import MARKER, PLACEHOLDER, Notebook, NotebookError, is_notebook
from nnlint.runtime.models import RuntimeProblem, serving_fixed

#: what nnlint.engine.notebook writes: a masked IPython line, the line that begins a cell
_PLACEHOLDER = PLACEHOLDER
_MARKER = MARKER
_NOT_RUN = "a statement nnlint does not run (from a notebook only imports, definitions and constant assignments run)"
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

#: the notebooks built from their own text in this process (absolute path -> notebook), for positions by cell
_BUILT: dict[str, Notebook] = {}


@dataclass
class Statement:
    """A top-level statement of the notebook's module."""

    node: ast.stmt
    cell: int  #: the cell's number (1-based, as ``cell N`` says)
    kept: bool  #: an import, a definition or a constant assignment (run); otherwise never run
    binds: set[str]
    summary: str  #: its first line, shortened


@dataclass
class NotebookModule:
    """The module built from a notebook's imports and definitions, and what it left out."""

    path: str
    module: types.ModuleType
    statements: list[Statement]
    masked: dict[int, str]  #: placeholder number -> the IPython line it masks
    future: int  #: compiler flags of the notebook's ``from __future__`` imports
    #: name -> the kept statement that last binds it
    definitions: dict[str, Statement] = field(default_factory=dict)
    #: name -> the first statement that binds it and is not run
    excluded: dict[str, Statement] = field(default_factory=dict)
    #: name -> why the kept statement binding it did not run (or raised)
    failed: dict[str, str] = field(default_factory=dict)
    #: fixed modules of other files the run fixes that the notebook imported (see :func:`serving_fixed`)
    loaded: dict[str, types.ModuleType] = field(default_factory=dict)
    _needs: dict[int, tuple[set[str], set[str]]] = field(default_factory=dict, repr=False)

    def problem(self, qualname: str) -> str | None:
        """Why the class ``qualname`` cannot be built from this module (one line), or None."""
        top = qualname.split(".", maxsplit=1)[0]
        statement = self.definitions.get(top)
        if top in self.excluded:  # ``Net = torch.compile(Net)``, a class defined under an ``if``
            excluded = self.excluded[top]
            verb = "rebound" if statement is not None else "defined"
            return f"`{top}` is {verb} in cell {excluded.cell} by `{excluded.summary}`, {_NOT_RUN}"
        if top in self.failed:
            return self.failed[top]
        if statement is None:
            return None  # not defined here: find_class says so
        seen = {top}
        pending: list[tuple[str, str | None]] = [(name, None) for name in sorted(self.needs(statement))]
        while pending:
            name, via = pending.pop(0)
            if name in seen:
                continue
            seen.add(name)
            missing = self._missing(name)
            if missing is not None:
                subject, rest = missing
                return f"needs {subject}{f' (through `{via}`)' if via else ''}{rest}"
            used = self.definitions.get(name)
            if used is not None and isinstance(used.node, _DEFINITIONS):
                pending.extend((other, via or name) for other in sorted(self.needs(used)))
        return None

    def needs(self, statement: Statement) -> set[str]:
        """The module-level names a kept definition reads, when it is defined and when it runs."""
        definition, running = self._needs_of(statement)
        return definition | running

    def _needs_of(self, statement: Statement) -> tuple[set[str], set[str]]:
        """(names read when the statement runs, names read later by the functions it defines)."""
        key = id(statement)
        if key not in self._needs:
            self._needs[key] = _global_reads(statement.node, self.future)
        return self._needs[key]

    def _missing(self, name: str) -> tuple[str, str] | None:
        """(``name`` as a message says it, why the module does not have it) when it does not."""
        placeholder = _PLACEHOLDER.fullmatch(name)
        if placeholder is not None:
            line = self.masked.get(int(placeholder.group(1)), "").strip()
            return f"the IPython line `{line}`", ", which nnlint does not run"
        excluded = self.excluded.get(name)
        if excluded is not None:
            return f"`{name}`", f", which cell {excluded.cell} sets in `{excluded.summary}`, {_NOT_RUN}"
        if name in self.failed:
            return f"`{name}`", f": {self.failed[name]}"
        return None

    # -- building ---------------------------------------------------------------------

    def _run(self) -> None:
        for statement in self.statements:
            if not statement.kept:
                continue
            why = self._unmet(statement)
            if why is None:
                why = self._execute(statement)
            for name in statement.binds:
                if why is None:
                    self.failed.pop(name, None)  # a later definition that runs replaces one that did not
                else:
                    self.failed[name] = why

    def _unmet(self, statement: Statement) -> str | None:
        """Why a definition cannot run: a name it reads when defined is left out (a base class, a decorator)."""
        definition, _ = self._needs_of(statement) if isinstance(statement.node, _DEFINITIONS) else (set(), set())
        for name in sorted(definition):
            missing = self._missing(name)
            if missing is not None:
                return f"its definition in cell {statement.cell} needs {missing[0]}{missing[1]}"
        return None

    def _execute(self, statement: Statement) -> str | None:
        node = statement.node
        if isinstance(node, ast.AnnAssign):  # a constant: its annotation is not evaluated
            node = ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)
        tree = ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[]))
        try:
            code = compile(tree, self.path, "exec", flags=self.future, dont_inherit=True)
            exec(code, self.module.__dict__)
        except (Exception, SystemExit) as error:  # the user's imports and definitions
            lines = str(error).strip().splitlines()
            detail = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
            return f"cell {statement.cell} `{statement.summary}` raised {detail}"
        return None


def load_notebook(
    path: str, text: str | None = None, name: str | None = None, others: dict[str, dict] | None = None
) -> NotebookModule:
    """Build the module of the notebook at ``path`` (its own cells, or ``text``: the module of its
    fixed cells) named ``name``; ``others``: the fixed text of other files the run fixes, which
    the fixed module imports instead of theirs (see :func:`serving_fixed`).

    Raises :class:`RuntimeProblem` when the notebook cannot be read.
    """
    path = os.path.abspath(path)
    notebook = read_notebook(path)
    own = text is None
    text = notebook.module if text is None else text
    try:
        tree = ast.parse(text, path)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise RuntimeProblem(f"cannot read the cells of {os.path.basename(path)}: {error}") from None
    name = name or os.path.basename(path)
    module = types.ModuleType(name)
    module.__file__ = path
    module.__package__ = ""
    built = NotebookModule(path, module, _statements(tree, text, notebook), dict(notebook.masked), _future_flags(tree))
    for statement in built.statements:
        for bound in statement.binds:
            if statement.kept:
                built.definitions[bound] = statement
            else:
                built.excluded.setdefault(bound, statement)
    if own:  # tracebacks and ``inspect`` read the cells' module, not the JSON
        linecache.cache[path] = (len(text), None, text.splitlines(keepends=True), path)
        _BUILT[path] = notebook
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # as Jupyter runs it: next to its own modules
    sys.modules[name] = module
    with serving_fixed(name, others) if others else nullcontext({}) as loaded:
        built._run()
    built.loaded = loaded
    return built


def read_notebook(path: str) -> Notebook:
    """The notebook's cells; :class:`RuntimeProblem` (one line) when it cannot be read or is not Python."""
    from nnlint.engine.source import SourceError, SourceFile, read_file_bytes

    shown = os.path.basename(path)
    try:
        source = SourceFile.from_bytes(path, read_file_bytes(path))
    except OSError as error:
        raise RuntimeProblem(f"cannot read {shown}: {error.strerror or error}") from None
    except (SourceError, NotebookError) as error:
        raise RuntimeProblem(f"cannot read {shown}: {error}") from None
    notebook = source.notebook
    if notebook is None:
        raise RuntimeProblem(f"{shown} is not a notebook")
    if notebook.notice is not None:
        raise RuntimeProblem(f"{shown}: {notebook.notice}")
    return notebook


def position(path: str, row: int) -> str:
    """``nb.ipynb:cell 2:5`` for a row of a notebook built here, ``file.py:12`` for any other file."""
    from nnlint.output.paths import display_path

    notebook = _BUILT.get(os.path.abspath(path)) if is_notebook(path) else None
    if notebook is None:
        return f"{display_path(path)}:{row}"
    cell, in_cell = notebook.locate(row)
    return f"{display_path(path)}:cell {cell}:{in_cell}"


def place_in_cells(findings: list[Any]) -> None:
    """Give the findings in notebooks built here their cell (their rows stay the module's)."""
    for finding in findings:
        notebook = _BUILT.get(os.path.abspath(finding.path)) if is_notebook(finding.path) else None
        if notebook is not None:
            finding.cell, row = notebook.locate(finding.span.row)
            finding.cell_offset = finding.span.row - row


# -- the statements ---------------------------------------------------------------------------


def _statements(tree: ast.Module, text: str, notebook: Notebook) -> list[Statement]:
    lines = text.splitlines()
    cells = [
        (number + 1, int(match.group(1)) + 1) for number, line in enumerate(lines) if (match := _MARKER.fullmatch(line))
    ]
    statements = []
    for top in tree.body:
        cell = next((number for row, number in reversed(cells) if row < top.lineno), 1)
        kept = _is_kept(top)
        node = _DropMasked().visit(top) if kept and isinstance(top, _DEFINITIONS) else top
        line = lines[node.lineno - 1].strip() if node.lineno <= len(lines) else ""
        masked = _PLACEHOLDER.search(line)
        if masked is not None:  # ``files = !ls``, as the cell has it
            line = notebook.masked.get(int(masked.group(1)), line).strip()
        summary = line if len(line) <= 60 else f"{line[:57]}..."
        statements.append(Statement(node, cell, kept, _bound_names(node), summary))
    return statements


def _is_kept(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, *_DEFINITIONS)):
        return True
    if isinstance(node, ast.Assign):
        return all(_names_only(target) for target in node.targets) and _is_literal(node.value)
    if isinstance(node, ast.AnnAssign):
        return node.value is not None and isinstance(node.target, ast.Name) and _is_literal(node.value)
    return False


def _names_only(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, ast.Starred):
        return _names_only(target.value)
    return isinstance(target, (ast.Tuple, ast.List)) and all(_names_only(item) for item in target.elts)


def _is_literal(value: ast.expr) -> bool:
    """A literal (numbers, strings, bytes, booleans, None, and tuples/lists/sets/dicts of them)."""
    if isinstance(value, ast.Call):
        return False  # ``set()``, which literal_eval accepts, is a call
    try:
        ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _future_flags(tree: ast.Module) -> int:
    flags = 0
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(__future__, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
    return flags


def _is_masked(node: ast.stmt) -> bool:
    """A masked IPython line standing alone (``%time f()`` in a function body)."""
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Name)
        and _PLACEHOLDER.fullmatch(node.value.id) is not None
    )


class _DropMasked(ast.NodeTransformer):
    """Drops the masked IPython lines from the bodies of a definition (``pass`` where a body empties)."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                kept = [statement for statement in body if not _is_masked(statement)]
                if len(kept) != len(body):
                    setattr(node, name, kept or [ast.copy_location(ast.Pass(), body[0])])
        return node


def _bound_names(node: ast.stmt) -> set[str]:
    """The module-level names a top-level statement binds (or deletes), wherever in it."""
    names: set[str] = set()

    def visit(item: ast.AST) -> None:
        if isinstance(item, _DEFINITIONS):
            names.add(item.name)
            return  # its body is another scope
        if isinstance(item, ast.Lambda):
            return
        if isinstance(item, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in item.names if alias.name != "*")
        elif isinstance(item, ast.Name) and isinstance(item.ctx, (ast.Store, ast.Del)):
            names.add(item.id)
        elif isinstance(item, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and item.name:
            names.add(item.name)
        elif isinstance(item, ast.MatchMapping) and item.rest:
            names.add(item.rest)
        if isinstance(item, _COMPREHENSIONS):  # its targets are its own; a walrus in it binds here
            for generator in item.generators:
                visit(generator.iter)
                for condition in generator.ifs:
                    visit(condition)
            for part in ("elt", "key", "value"):
                if getattr(item, part, None) is not None:
                    visit(getattr(item, part))
            return
        for child in ast.iter_child_nodes(item):
            visit(child)

    visit(node)
    return names


def _global_reads(node: ast.stmt, future: int) -> tuple[set[str], set[str]]:
    """(module-level names a definition reads when defined, those its functions read when called).

    When defined: its decorators, bases, keywords, default arguments, annotations (unless
    ``from __future__ import annotations``) and, for a class, its body. From the symbol tables of
    the definition alone, so nothing else of the notebook needs to compile.
    """
    if not isinstance(node, _DEFINITIONS):
        return set(), set()
    prefix = "from __future__ import annotations\n" if future & __future__.annotations.compiler_flag else ""
    try:
        table = symtable.symtable(prefix + ast.unparse(node), "<notebook>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set(), set()
    own = [child for child in table.get_children() if child.get_name() == node.name and child.get_type() != "module"]
    if not own:
        return set(), set()
    scope = own[-1]  # after the lambdas of its decorators and defaults
    definition = {symbol.get_name() for symbol in table.get_symbols() if symbol.is_referenced()}
    running: set[str] = set()
    if isinstance(node, ast.ClassDef):
        definition |= _globals_of(scope)
        for child in scope.get_children():
            running |= _globals_in(child)
    else:
        running = _globals_in(scope)
    return definition, running


def _globals_of(table: symtable.SymbolTable) -> set[str]:
    return {symbol.get_name() for symbol in table.get_symbols() if symbol.is_global() and symbol.is_referenced()}


def _globals_in(table: symtable.SymbolTable) -> set[str]:
    found = _globals_of(table)
    for child in table.get_children():
        found |= _globals_in(child)
    return found
