"""The project-wide class index: which classes are ``nn.Module`` subclasses, across files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

from nnlint import torch_facts
from nnlint.engine.model import FileResult

#: Third-party classes that are nn.Module subclasses, by the names users import them under.
KNOWN_MODULE_BASES = frozenset(
    {
        "torch.jit.ScriptModule",
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "lightning.pytorch.core.LightningModule",
        "lightning.pytorch.core.module.LightningModule",
        "pytorch_lightning.LightningModule",
        "pytorch_lightning.core.LightningModule",
        "pytorch_lightning.core.module.LightningModule",
        "transformers.PreTrainedModel",
        "transformers.modeling_utils.PreTrainedModel",
        "diffusers.ModelMixin",
        "diffusers.models.modeling_utils.ModelMixin",
    }
)

ModuleLoader = Callable[[str], "FileResult | None"]


def is_torch_module_class(qualname: str) -> bool:
    """``torch.nn.Linear``, ``torch.nn.modules.module.Module``..."""
    if not qualname.startswith("torch.nn."):
        return False
    return qualname.rsplit(".", 1)[1] in torch_facts.nn_class_names()


class ProjectIndex:
    """Classes and module-level names of every analysed file."""

    def __init__(self, module_bases: Iterable[str] = (), loader: ModuleLoader | None = None) -> None:
        bases = list(module_bases)
        self.extra_bases = frozenset(base for base in bases if "." in base)
        self.extra_base_names = frozenset(base for base in bases if "." not in base)
        self.classes: dict[str, list[str]] = {}
        self.exports: dict[str, dict[str, str]] = {}
        self.stars: dict[str, list[str]] = {}
        self.loader = loader
        self._answers: dict[str, bool] = {}
        #: modules looked for outside the analysed files (loaded or not found)
        self.tried_modules: set[str] = set()
        #: attribute names read anywhere in the analysed files (see ``FileResult.references``)
        self.references: set[str] = set()

    def add(self, result: FileResult) -> None:
        self.references.update(result.references)
        for record in result.classes:
            self.classes[record.qualname] = record.bases
        if result.module is not None:
            self.exports.setdefault(result.module, {}).update(result.exports)
            self.stars.setdefault(result.module, []).extend(result.star_modules)
        self._answers.clear()

    def is_module_class(self, qualname: str) -> bool:
        """True when ``qualname`` is (transitively) an nn.Module subclass."""
        if qualname in self._answers:
            return self._answers[qualname]
        self._answers[qualname] = False  # guards against inheritance cycles
        answer = self._compute(qualname)
        self._answers[qualname] = answer
        return answer

    def _compute(self, qualname: str) -> bool:
        if is_torch_module_class(qualname) or qualname in KNOWN_MODULE_BASES or qualname in self.extra_bases:
            return True
        if qualname.rsplit(".", 1)[-1] in self.extra_base_names:
            return True
        if qualname in self.classes:
            return any(self.is_module_class(base) for base in self.classes[qualname])
        module, _, name = qualname.rpartition(".")
        if module and module not in self.exports and self._load(module):
            self._answers.pop(qualname, None)
            return self._compute(qualname)
        exports = self.exports.get(module)
        if exports is None:
            return False
        origin = exports.get(name)
        if origin is not None and origin != qualname:
            return self.is_module_class(origin)
        return any(self.is_module_class(f"{star}.{name}") for star in self.stars.get(module, []))

    def _load(self, module: str) -> bool:
        if self.loader is None or module in self.tried_modules:
            return False
        self.tried_modules.add(module)
        result = self.loader(module)
        if result is None:
            return False
        answers = dict(self._answers)
        self.add(result)
        self._answers.update(answers)
        return True


@cache
def _has_init(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "__init__.py"))


def module_name(path: Path) -> tuple[str, bool, Path]:
    """Dotted module name of a file, whether it is a package, and its source root."""
    is_package = path.name == "__init__.py"
    package, root = _package_of(os.path.dirname(os.path.abspath(path)))
    parts = [part for part in (package, "" if is_package else path.stem) if part]
    return ".".join(parts), is_package, Path(root)


@cache
def _package_of(directory: str) -> tuple[str, str]:
    """(dotted package of a directory, its source root), walking up through ``__init__.py`` files."""
    parent = os.path.dirname(directory)
    if not _has_init(directory) or parent == directory:
        return "", directory
    package, root = _package_of(parent)
    name = os.path.basename(directory)
    return (f"{package}.{name}" if package else name), root


def find_module_file(module: str, roots: Iterable[Path]) -> Path | None:
    """The file defining ``module`` under one of the source ``roots``."""
    relative = Path(*module.split("."))
    for root in roots:
        for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None
