"""NN407: a torch name that does not exist (``nn.Conv2D``, ``F.Relu``, ``from torch.nn import Conv2D``).

The names that exist are generated from torch into the facts file; linting never imports torch. A
missing name is reported only when it looks like a slip of an existing one (another case, a typo, the
same name in a neighbouring module): a name with no such match may come from a newer torch.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from nnlint import torch_facts
from nnlint.engine.context import AttributeSite, FileContext
from nnlint.engine.model import Finding
from nnlint.engine.names import TRY_STATEMENTS, Scope, walk
from nnlint.rules.base import Rule

#: Where else a name spelled exactly so may live (``nn.softmax`` → ``F.softmax``).
RELATED_MODULES = {
    "torch": ("torch.nn.functional", "torch.nn", "torch.linalg", "torch.special"),
    "torch.nn": ("torch.nn.functional", "torch"),
    "torch.nn.functional": ("torch", "torch.nn"),
    "torch.linalg": ("torch",),
    "torch.special": ("torch",),
    "torch.optim": ("torch.optim.lr_scheduler",),
    "torch.optim.lr_scheduler": ("torch.optim",),
}
#: Exceptions whose handlers mean "this name may be missing" (a ``try`` around an optional API).
GUARDING_EXCEPTIONS = frozenset(
    {"AttributeError", "ImportError", "ModuleNotFoundError", "Exception", "BaseException", "NameError"}
)
#: Calls that test for (or provide) a name given as a string: ``hasattr(F, "scaled_dot_product_attention")``.
NAME_TESTS = frozenset({"hasattr", "getattr", "setattr"})
#: Device modules that out-of-tree backends register on ``torch`` when installed (``torch.npu``...).
DEVICE_MODULES = frozenset({"npu", "mlu", "hpu", "musa", "gcu", "sdaa", "dipu", "xla", "ipu", "tpu"})
SIMILARITY = 0.8
#: Shorter names count as a typo of another only through their case (``torch.mlu`` is not ``torch.mul``).
MIN_TYPO_LENGTH = 4


class NonexistentTorchName(Rule):
    code = "NN407"
    name = "nonexistent-torch-name"
    summary = "An attribute of `torch`, `torch.nn`, `F`... or a name imported from them that torch does not have"
    anywhere = True
    attributes_of = torch_facts.recorded_modules()
    triggers = frozenset({"torch"})

    def __init__(self) -> None:
        self._guards: tuple[FileContext, _Guards] | None = None

    def check_attribute(self, site: AttributeSite) -> Iterable[Finding]:
        name, module = site.name, site.module
        if name.startswith("_") or name in torch_facts.module_names(module):
            return
        if module == "torch" and name in DEVICE_MODULES:
            return
        suggestions = list(_suggestions(name, module))
        if not suggestions or self._guarded(site):
            return
        if isinstance(site.node, ast.alias):
            error = "`ImportError`"
            shown = [f"`{qualname}`" for qualname in suggestions]
            subject = f"`{module}` has no `{name}`"
        else:
            error = "`AttributeError`"
            written = site.file.text_of(site.node.value)
            shown = [f"`{_spelled(qualname, module, written, site.function.scope)}`" for qualname in suggestions]
            subject = f"`{site.file.text_of(site.node)}` does not exist"
        yield site.finding(
            self.code,
            f"{subject} in torch {torch_facts.version()}: {error} when this line runs; "
            f"did you mean {' or '.join(shown)}?",
        )

    def _guarded(self, site: AttributeSite) -> bool:
        """Tested for (``hasattr``...) or assigned, its module imported two ways, under a ``try`` or a version
        test, or in an annotation."""
        if self._guards is None or self._guards[0] is not site.file:
            self._guards = (site.file, _Guards.of(site.file))
        guards = self._guards[1]
        row, column = site.node.lineno, site.node.col_offset
        return (
            site.name in guards.names
            or _root_name(site.node) in guards.ambiguous
            or any(start <= row <= end for start, end in guards.guarded_rows)
            or any((start, first) <= (row, column) < (end, last) for start, first, end, last in guards.annotations)
        )


def _suggestions(name: str, module: str) -> Iterator[str]:
    """Qualified names ``name`` may have meant, best first (at most two)."""
    found: list[str] = []
    names = torch_facts.module_names(module)
    lower = name.lower()
    found += [f"{module}.{other}" for other in sorted(names) if other.lower() == lower]
    found += [
        f"{related}.{name}" for related in RELATED_MODULES.get(module, ()) if name in torch_facts.module_names(related)
    ]
    if len(name) >= MIN_TYPO_LENGTH:
        found += [f"{module}.{other}" for other in _typo_matches(name, names)]
    yield from list(dict.fromkeys(found))[:2]


def _typo_matches(name: str, names: frozenset[str]) -> list[str]:
    """Names one slip away: close by ``difflib``, or two neighbouring letters swapped (``rleu``)."""
    public = sorted(other for other in names if not _private(other))
    swapped = {name[:i] + name[i + 1] + name[i] + name[i + 2 :] for i in range(len(name) - 1)}
    return [other for other in public if other in swapped] + difflib.get_close_matches(
        name, public, n=2, cutoff=SIMILARITY
    )


def _private(name: str) -> bool:
    return name.startswith("_")


def _spelled(qualname: str, module: str, written: str, scope: Scope) -> str:
    """``qualname`` as the file would write it: through the alias of the module the user wrote, or another."""
    owner, _, name = qualname.rpartition(".")
    if owner == module:
        return f"{written}.{name}"
    root = scope
    while root.parent is not None:
        root = root.parent
    best: tuple[int, str] | None = None
    for alias, origin in root.bindings.items():
        if origin and (owner == origin or owner.startswith(f"{origin}.")):
            rest = owner[len(origin) :]
            if best is None or len(origin) > best[0]:
                best = (len(origin), f"{alias}{rest}")
    return f"{best[1] if best else owner}.{name}"


@dataclass(frozen=True)
class _Guards:
    """What makes a missing name deliberate in one file."""

    #: names tested with ``hasattr``/``getattr``, set with ``setattr`` or assigned as an attribute
    names: frozenset[str]
    #: rows of ``try`` bodies whose handlers catch ``AttributeError``/``ImportError`` (or broader), and of
    #: the branches of an ``if`` on a version (``if torch.__version__ >= "2.1":``)
    guarded_rows: tuple[tuple[int, int], ...]
    #: names that imports bind to different modules (``if new: from lib import init`` ``else: from torch.nn ...``)
    ambiguous: frozenset[str]
    #: where annotations are (often never evaluated): (row, column, end row, end column)
    annotations: tuple[tuple[int, int, int, int], ...]

    @classmethod
    def of(cls, file: FileContext) -> _Guards:
        tree = file.tree if file.tree is not None else ast.parse(file.source.text)
        names: set[str] = set()
        rows: list[tuple[int, int]] = []
        origins: dict[str, set[str]] = {}
        annotations: list[ast.expr] = []
        for node in walk(tree):
            tested = _tested_name(node)
            if tested is not None:
                names.add(tested)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.attr)
            elif isinstance(node, TRY_STATEMENTS) and node.body and any(map(_expects_missing, node.handlers)):
                rows.append(_rows(node.body))
            elif isinstance(node, ast.If) and _mentions_version(node.test):
                rows.extend(_rows(block) for block in (node.body, node.orelse) if block)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for bound, origin in _imported(node):
                    origins.setdefault(bound, set()).add(origin)
            elif isinstance(node, (ast.AnnAssign, ast.arg)) and node.annotation is not None:
                annotations.append(node.annotation)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
                annotations.append(node.returns)
        ambiguous = frozenset(name for name, found in origins.items() if len(found) > 1)
        spans = tuple(
            (a.lineno, a.col_offset, a.end_lineno or a.lineno, a.end_col_offset or a.col_offset) for a in annotations
        )
        return cls(frozenset(names), tuple(rows), ambiguous, spans)


def _imported(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str]]:
    """(name bound, what it is) for each name an import statement binds."""
    source = "." * (node.level or 0) + (node.module or "") if isinstance(node, ast.ImportFrom) else None
    for alias in node.names:
        if source is not None:
            yield alias.asname or alias.name, f"{source}.{alias.name}"
        elif alias.asname:
            yield alias.asname, alias.name
        else:
            yield alias.name.split(".")[0], alias.name.split(".")[0]


def _rows(block: list[ast.stmt]) -> tuple[int, int]:
    return block[0].lineno, block[-1].end_lineno or block[-1].lineno


def _mentions_version(test: ast.expr) -> bool:
    """``torch.__version__ >= "2.1"``, ``if TORCH_VERSION < (2, 0)``, ``if version.parse(...)``..."""
    for node in walk(test):
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if isinstance(name, str) and "version" in name.lower():
            return True
    return False


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _tested_name(node: ast.AST) -> str | None:
    """``"name"`` in ``hasattr(x, "name")``, ``getattr(x, "name", ...)``, ``setattr(x, "name", ...)``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in NAME_TESTS):
        return None
    name = node.args[1] if len(node.args) > 1 else None
    return name.value if isinstance(name, ast.Constant) and isinstance(name.value, str) else None


def _expects_missing(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    for expr in types:
        name = expr.attr if isinstance(expr, ast.Attribute) else getattr(expr, "id", None)
        if name in GUARDING_EXCEPTIONS:
            return True
    return False
