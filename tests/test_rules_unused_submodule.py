"""NN306: layers assigned in __init__ that nothing reads (opt-in; decided over all linted files)."""

from __future__ import annotations

import json

import pytest

from conftest import found, module_source, run_cli

OPT_IN = {"select": ["NN306"]}
CLASS = """
class Helper:
    pass


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.spare = {layer}
        self.dim = 4

    def forward(self, x):
        {body}
        return self.fc(x)
"""


def model(layer: str = "nn.Linear(4, 4)", body: str = "pass", extra: str = "") -> str:
    return module_source(CLASS.format(layer=layer, body=body) + extra)


def test_off_by_default_and_flagged_when_selected() -> None:
    assert found(model()) == []
    assert found(model(), **OPT_IN) == [("NN306", 14)]


@pytest.mark.parametrize(
    ("layer", "body", "extra"),
    [
        ("nn.Linear(4, 4)", "x = self.spare(x)", ""),  # used
        ("nn.Linear(4, 4)", 'x = getattr(self, "spare")(x)', ""),  # by name
        ("nn.Linear(4, 4)", 'x = getattr(self, f"sp{0}are")(x)', ""),  # dynamic access: anything may be used
        ("nn.Linear(4, 4)", "x = [m(x) for m in self.children()][0]", ""),
        ("nn.Linear(4, 4)", "pass", "\n\nclass Sub(M):\n    def forward(self, x):\n        return self.spare(x)\n"),
        ("nn.Linear(4, 4)", "pass", "\n\ndef head(model):\n    return model.spare\n"),  # read by other code
        ("Helper()", "pass", ""),  # not a module
        ("torch.zeros(4)", "pass", ""),  # a tensor (NN304's business)
        ("nn.Parameter(torch.zeros(4))", "pass", ""),
    ],
)
def test_not_flagged(layer: str, body: str, extra: str) -> None:
    assert found(model(layer, body, extra), **OPT_IN) == []


def test_classes_without_forward_are_containers() -> None:
    text = module_source(
        "class Heads(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.a = nn.Linear(4, 4)\n"
    )
    assert found(text, **OPT_IN) == []


def test_project_layers_count_when_they_are_modules() -> None:
    extra = "\n\nclass Block(nn.Module):\n    def forward(self, x):\n        return x\n"
    assert found(model("Block()", extra=extra), **OPT_IN) == [("NN306", 14)]


def _check(tmp_path, *paths: str) -> list[tuple[str, str, int]]:
    result = run_cli("check", "--select", "NN306", "--output-format", "json", *paths, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    return [
        (item["filename"].rsplit("/", 1)[-1], item["code"], item["location"]["row"])
        for item in json.loads(result.stdout)
    ]


def test_a_read_in_another_linted_file_counts(tmp_path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text(model())
    (package / "sub.py").write_text(
        "from pkg.base import M\n\n\nclass Sub(M):\n    def forward(self, x):\n        return self.spare(x)\n"
    )
    assert _check(tmp_path, "pkg") == []
    # linted alone (as a pre-commit run on one changed file would), the base cannot see the subclass
    assert _check(tmp_path, "pkg/base.py") == [("base.py", "NN306", 14)]
