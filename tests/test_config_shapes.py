"""``[tool.nnlint.shapes]`` and verify inputs: example input shapes, parsed, validated and handed to each file."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest

from nnlint.api import lint_text
from nnlint.engine import analyzer, runner
from nnlint.engine.cache import CACHE_DIR_NAME, Cache
from nnlint.engine.config import (
    Config,
    ConfigError,
    config_from_table,
    input_shapes,
    load_config,
    normalize_target,
    parse_shapes,
    shapes_from_input,
)
from nnlint.engine.context import ClassSite
from nnlint.engine.settings import build_settings
from nnlint.rules.base import Rule

from conftest import run_cli

CNN = """\
import torch.nn as nn


class CNN(nn.Module):
    class Head(nn.Module):
        def forward(self, x):
            return x

    def forward(self, x):
        return x
"""
OTHER = "import torch.nn as nn\n\n\nclass Other(nn.Module):\n    def forward(self, x):\n        return x\n"


def _table(shapes: object, root: Path = Path("/project")) -> Config:
    return config_from_table({"shapes": shapes}, root, None, "[tool.nnlint] in pyproject.toml")


# -- parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["N", 1, 28, 28], (("N", 1, 28, 28),)),
        (["batch", "seq", 512], (("batch", "seq", 512),)),
        ([["N", 3, 32, 32], ["N"]], (("N", 3, 32, 32), ("N",))),
        ([["N", 16], []], (("N", 16), ())),  # a 0-d tensor (a timestep) as the second argument
        ("(N, 1, 28, 28)", (("N", 1, 28, 28),)),
        ("N, 1, 28, 28", (("N", 1, 28, 28),)),
        ("[N, 512]", (("N", 512),)),
        ("[(N, 16, 64), (N, 16)]", (("N", 16, 64), ("N", 16))),
        ("((B, T), (B,))", (("B", "T"), ("B",))),
        ("(8,)", ((8,),)),
        ("N", (("N",),)),
        ([" N ", 4], (("N", 4),)),
    ],
)
def test_shapes_are_read_from_lists_lists_of_lists_and_strings(value: object, expected: tuple) -> None:
    assert parse_shapes(value) == expected
    assert _table({"models/cnn.py::CNN": value}).shapes == {"models/cnn.py::CNN": expected}


def test_shapes_from_pyproject_and_nnlint_toml(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.nnlint.shapes]\n"models/cnn.py::CNN" = ["N", 1, 28, 28]\n'
        '"./models/seq.py::Encoder.Block" = [["batch", "seq", 512], ["batch", "seq"]]\n'
        '"notebooks/train.ipynb::Net" = "(N, 3, 32, 32)"\n'
    )
    config = load_config(pyproject)
    assert config.shapes == {
        "models/cnn.py::CNN": (("N", 1, 28, 28),),
        "models/seq.py::Encoder.Block": (("batch", "seq", 512), ("batch", "seq")),
        "notebooks/train.ipynb::Net": (("N", 3, 32, 32),),
    }
    assert "shapes" in config.keys
    nnlint_toml = tmp_path / "sub" / "nnlint.toml"
    nnlint_toml.parent.mkdir()
    nnlint_toml.write_text('[shapes]\n"cnn.py::CNN" = [4, 1, 28, 28]\n')
    assert load_config(nnlint_toml).shapes == {"cnn.py::CNN": ((4, 1, 28, 28),)}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("models/cnn.py::CNN", "models/cnn.py::CNN"),
        ("./models/cnn.py::CNN", "models/cnn.py::CNN"),
        ("models//x/../cnn.py::CNN", "models/cnn.py::CNN"),
        ("models\\cnn.py::CNN", "models/cnn.py::CNN"),
        ("/project/models/cnn.py::CNN", "models/cnn.py::CNN"),
        ("nb.ipynb::A.B", "nb.ipynb::A.B"),
        ("stubs.pyi::Net", "stubs.pyi::Net"),
        ("cnn.py", None),
        ("cnn.py::", None),
        ("::CNN", None),
        ("cnn.txt::CNN", None),
        ("cnn.py::CNN()", None),
        ("cnn.py::A..B", None),
    ],
)
def test_targets_are_normalised_as_verify_targets(target: str, expected: str | None) -> None:
    assert normalize_target(target, Path("/project")) == expected


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"cnn.py::CNN": [0, 1]}, "shapes of 'cnn.py::CNN' in [tool.nnlint] in pyproject.toml: 0 is not a positive"),
        ({"cnn.py::CNN": [-1]}, "-1 is not a positive integer or a symbol"),
        ({"cnn.py::CNN": [1.5]}, "1.5 is not a positive integer or a symbol"),
        ({"cnn.py::CNN": [True]}, "True is not a positive integer or a symbol"),
        ({"cnn.py::CNN": ["2N"]}, "'2N' is not a positive integer or a symbol"),
        ({"cnn.py::CNN": ["if"]}, "'if' is not a positive integer or a symbol"),
        ({"cnn.py::CNN": []}, "got an empty list"),
        ({"cnn.py::CNN": 28}, "got an integer"),
        ({"cnn.py::CNN": {"input": [1]}}, "got a table"),
        ({"cnn.py::CNN": ["N", [1, 2]]}, "it mixes dims and lists"),
        ({"cnn.py::CNN": [[[1]]]}, "nested more than two deep"),
        ({"cnn.py::CNN": "(N, 2 * M)"}, "'2 * M' in '(N, 2 * M)' is not a positive integer or a symbol"),
        ({"cnn.py::CNN": "(N,"}, "cannot read '(N,'"),
        ({"cnn.py::CNN": "()"}, "'()' has no dims"),
        ({"cnn.py::CNN": "[(N, 1), N]"}, "mixes dims and shapes"),
        ({"cnn.py": [1]}, "shapes target 'cnn.py' in [tool.nnlint] in pyproject.toml must be named"),
        ({"cnn.txt::CNN": [1]}, "shapes target 'cnn.txt::CNN'"),
        ({"cnn.py::CNN-2": [1]}, "shapes target 'cnn.py::CNN-2'"),
        ({"cnn.py::CNN": [1], "./cnn.py::CNN": [2]}, "shapes target './cnn.py::CNN' in [tool.nnlint] in pyproject"),
        (["cnn.py::CNN"], "'shapes' in [tool.nnlint] in pyproject.toml must be a table"),
    ],
)
def test_bad_shapes_are_one_line_errors_naming_the_key(shapes: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _table(shapes)
    text = str(raised.value)
    assert message in text
    assert "\n" not in text


def test_a_bad_value_says_what_is_expected() -> None:
    with pytest.raises(ConfigError, match=r'expected a list of dims such as \["N", 1, 28, 28\]'):
        _table({"cnn.py::CNN": [0]})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[tool.nnlint.shapes]\n"cnn.py::CNN" = [0, 28]\n', "shapes of 'cnn.py::CNN' in [tool.nnlint] in"),
        ('[tool.nnlint.shapes]\n"cnn::CNN" = [1, 28]\n', "shapes target 'cnn::CNN' in [tool.nnlint] in"),
        ('[tool.nnlint.shape]\n"cnn.py::CNN" = [1, 28]\n', "unknown key 'shape' in [tool.nnlint] in"),
        ('[tool.nnlint]\nshapes = ["N", 1]\n', "'shapes' in [tool.nnlint] in"),
    ],
)
def test_the_cli_exits_2_with_one_line(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(toml)
    (tmp_path / "cnn.py").write_text(CNN)
    result = run_cli("check", ".", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    if "'shape'" in message:
        assert "(did you mean 'shapes'?)" in result.stderr


# -- shapes read from verify inputs ------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("torch.randn(4, 1, 28, 28)", ((4, 1, 28, 28),)),
        ("torch.rand((2, 8))", ((2, 8),)),
        ("torch.zeros([2, 3, 32, 32])", ((2, 3, 32, 32),)),
        ("torch.ones(2, 16, dtype=torch.float64, device='cpu')", ((2, 16),)),
        ("torch.empty(size=(3, 4))", ((3, 4),)),
        ("torch.randint(0, 10, (2, 16))", ((2, 16),)),
        ("torch.randint(10, (2, 16))", ((2, 16),)),
        ("torch.randint(0, 10, size=[2, 16], dtype=torch.long)", ((2, 16),)),
        ("(torch.randn(2, 16, 64), torch.ones(2, 16))", ((2, 16, 64), (2, 16))),
        ("  torch.randn(4, 8)  ", ((4, 8),)),
        # anything else: no shape
        ("torch.randn(4, n)", None),
        ("torch.randn(4, 1 + 2)", None),
        ("torch.randn(0, 3)", None),
        ("torch.randn(2.0, 3)", None),
        ("torch.randn(*shape)", None),
        ("torch.randn(**kwargs)", None),
        ("torch.randn()", None),
        ("torch.randn(1, 28, 28).unsqueeze(0)", None),
        ("torch.arange(10)", None),
        ("randn(2, 3)", None),
        ("np.zeros((2, 3))", None),
        ("[torch.randn(2, 3)]", None),
        ("(torch.randn(2, 3), 5)", None),
        ("torch.randint(10)", None),
        ("torch.randn(2, size=(2, 3))", None),
        ("torch.randn(2, 3", None),
        ("", None),
    ],
)
def test_shapes_are_read_from_a_verify_input_without_running_it(expression: str, expected: tuple | None) -> None:
    assert shapes_from_input(expression) == expected


def test_the_shapes_table_wins_over_a_verify_input() -> None:
    config = config_from_table(
        {
            "verify": {
                "models/cnn.py::CNN": {"input": "torch.randn(4, 1, 28, 28)"},
                "./models/mlp.py::MLP": {"init": "MLP(8)", "input": "torch.randn(2, 8)"},
                "models/odd.py::Odd": {"input": "make_batch()"},
                "models/bare.py::Bare": {"init": "Bare()"},
            },
            "shapes": {"models/cnn.py::CNN": ["N", 1, 28, 28]},
        },
        Path("/project"),
        None,
        "[tool.nnlint]",
    )
    assert input_shapes(config) == {
        "models/cnn.py::CNN": (("N", 1, 28, 28),),
        "models/mlp.py::MLP": ((2, 8),),
    }
    assert config.verify["./models/mlp.py::MLP"] == {"init": "MLP(8)", "input": "torch.randn(2, 8)"}  # unchanged


# -- the shapes reach each file's analysis ------------------------------------------


class ShapesProbe(Rule):
    """Test-only: reports what each class's FileContext says its input shapes are."""

    code = "NN101"  # (any code on by default: the finding must be reported)
    name = "shapes-probe"
    summary = "the input shapes the analysis sees"
    checks_classes = True
    triggers = frozenset({"class"})

    def check_class(self, site: ClassSite):  # type: ignore[override]
        module = site.file.module
        inside = site.qualname.removeprefix(f"{module}.") if module else site.qualname
        yield site.finding(self.code, f"{inside}={site.file.input_shapes.get(inside)!r}", site.node)


def _probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "make_rules", lambda codes: [ShapesProbe()])


def _seen(run: runner.LintRun) -> dict[str, str]:
    return {f"{Path(f.path).name}:{f.message.partition('=')[0]}": f.message.partition("=")[2] for f in run.findings}


def _project(tmp_path: Path, pyproject: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(pyproject)
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "cnn.py").write_text(CNN)
    (tmp_path / "models" / "other.py").write_text(OTHER)
    return tmp_path


SHAPES = (
    '[tool.nnlint.shapes]\n"models/cnn.py::CNN" = ["N", 1, 28, 28]\n"models/cnn.py::CNN.Head" = [["N", 10], ["N"]]\n'
    '[tool.nnlint.verify."models/other.py::Other"]\ninput = "torch.randn(2, 8)"\n'
)


def _lint(project: Path, monkeypatch: pytest.MonkeyPatch, cache: bool = False, workers: int = 1) -> runner.LintRun:
    monkeypatch.chdir(project)
    settings = build_settings(load_config(project / "pyproject.toml"))
    files = sorted(Path("models").glob("*.py"))
    store = Cache(project / CACHE_DIR_NAME, settings.enabled) if cache else None
    return runner.lint_paths(files, settings, workers=workers, cache=store)


def test_each_file_context_gets_the_shapes_of_its_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _probe(monkeypatch)
    run = _lint(_project(tmp_path, SHAPES), monkeypatch)
    assert _seen(run) == {
        "cnn.py:CNN": "(('N', 1, 28, 28),)",
        "cnn.py:CNN.Head": "(('N', 10), ('N',))",
        "other.py:Other": "((2, 8),)",
    }


def test_a_file_named_from_elsewhere_gets_its_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The target is relative to the config, whatever the current directory and however the path is given."""
    _probe(monkeypatch)
    project = _project(tmp_path, SHAPES)
    monkeypatch.chdir(project / "models")
    settings = build_settings(load_config(project / "pyproject.toml"))
    run = runner.lint_paths([Path("cnn.py"), project / "models" / "other.py"], settings, workers=1)
    assert _seen(run)["cnn.py:CNN"] == "(('N', 1, 28, 28),)"
    assert _seen(run)["other.py:Other"] == "((2, 8),)"


def test_without_shapes_the_field_is_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _probe(monkeypatch)
    run = _lint(_project(tmp_path, '[tool.nnlint]\nselect = ["NN1"]\n'), monkeypatch)
    assert set(_seen(run).values()) == {"None"}


def test_lint_text_gets_the_shapes_of_the_file_it_stands_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The language server and the API lint text in memory through the stdin path."""
    _probe(monkeypatch)
    project = _project(tmp_path, SHAPES)
    config = load_config(project / "pyproject.toml")
    run = lint_text(CNN, filename=str(project / "models" / "cnn.py"), config=config)
    assert _seen(run) == {"cnn.py:CNN": "(('N', 1, 28, 28),)", "cnn.py:CNN.Head": "(('N', 10), ('N',))"}
    monkeypatch.chdir(project)
    assert _seen(lint_text(CNN, filename="models/cnn.py", config=config))["cnn.py:CNN"] == "(('N', 1, 28, 28),)"
    assert _seen(lint_text(CNN, filename="elsewhere.py", config=config))["elsewhere.py:CNN"] == "None"


def test_jobs_carry_their_shapes_to_worker_processes() -> None:
    job = runner.Job("models/cnn.py", "cnn", False, input_shapes=(("CNN", (("N", 1, 28, 28),)),))
    assert pickle.loads(pickle.dumps(job)) == job


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool forks (the probe rule is inherited)")
def test_the_worker_pool_gets_the_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _probe(monkeypatch)
    project = _project(tmp_path, SHAPES)
    for number in range(runner.PARALLEL_THRESHOLD):
        (project / "models" / f"extra{number}.py").write_text(OTHER.replace("Other", f"Extra{number}"))
    run = _lint(project, monkeypatch, workers=2)
    seen = _seen(run)
    assert len(seen) == runner.PARALLEL_THRESHOLD + 3
    assert seen["cnn.py:CNN"] == "(('N', 1, 28, 28),)"
    assert seen["other.py:Other"] == "((2, 8),)"
    assert seen["extra0.py:Extra0"] == "None"


# -- the cache follows the shapes ------------------------------------------------------


def test_changed_shapes_invalidate_the_cached_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _probe(monkeypatch)
    analysed: list[tuple[str, dict]] = []
    original = analyzer.analyze_tree

    def spy(file, tree, rules):  # type: ignore[no-untyped-def]
        analysed.append((Path(file.source.path).name, dict(file.input_shapes)))
        return original(file, tree, rules)

    monkeypatch.setattr(analyzer, "analyze_tree", spy)
    project = _project(tmp_path, SHAPES)
    first = _seen(_lint(project, monkeypatch, cache=True))
    assert sorted(name for name, _ in analysed) == ["cnn.py", "other.py"]
    analysed.clear()
    assert _seen(_lint(project, monkeypatch, cache=True)) == first
    assert analysed == []  # unchanged: all from the cache
    # new shapes for CNN: cnn.py is analysed again with them, other.py comes from the cache
    (project / "pyproject.toml").write_text(SHAPES.replace('["N", 1, 28, 28]', '["N", 3, 32, 32]'))
    second = _seen(_lint(project, monkeypatch, cache=True))
    assert analysed == [("cnn.py", {"CNN": (("N", 3, 32, 32),), "CNN.Head": (("N", 10), ("N",))})]
    assert second == {**first, "cnn.py:CNN": "(('N', 3, 32, 32),)"}
    # a changed verify input changes the shapes read from it
    analysed.clear()
    (project / "pyproject.toml").write_text(SHAPES.replace("torch.randn(2, 8)", "torch.randn(2, 16)"))
    third = _seen(_lint(project, monkeypatch, cache=True))
    assert sorted(name for name, _ in analysed) == ["cnn.py", "other.py"]
    assert third == {**first, "other.py:Other": "((2, 16),)"}
    # and back: the earlier results are still there
    analysed.clear()
    (project / "pyproject.toml").write_text(SHAPES)
    assert _seen(_lint(project, monkeypatch, cache=True)) == first
    assert analysed == []


def test_a_cached_result_is_not_returned_for_other_shapes(tmp_path: Path) -> None:
    from nnlint.engine.model import FileResult

    cache = Cache(tmp_path / CACHE_DIR_NAME, frozenset({"NN101"}))
    path = str(tmp_path / "cnn.py")
    cache.put("digest", False, FileResult(path, "cnn", []), (("CNN", ((1, 28),)),))
    cache.save()
    again = Cache(tmp_path / CACHE_DIR_NAME, frozenset({"NN101"}))
    assert again.get(path, "digest", "cnn", False, (("CNN", ((1, 28),)),)) is not None
    assert again.get(path, "digest", "cnn", False, (("CNN", ((2, 28),)),)) is None
    assert again.get(path, "digest", "cnn", False) is None


def test_the_cli_lints_a_file_again_when_its_shapes_change(tmp_path: Path) -> None:
    project = _project(tmp_path, SHAPES)
    first = run_cli("check", "--verbose", "models", cwd=project)
    assert first.returncode == 0, first.stderr
    assert "linted models/cnn.py" in first.stderr.replace(os.sep, "/")
    (project / "pyproject.toml").write_text(SHAPES.replace('["N", 1, 28, 28]', '["N", 1, 32, 32]'))
    second = run_cli("check", "--verbose", "models", cwd=project)
    assert second.returncode == 0, second.stderr
    lines = second.stderr.replace(os.sep, "/")
    assert "linted models/cnn.py" in lines
    assert "cached models/other.py" in lines


# -- --show-settings ------------------------------------------------------------------


def _shapes_row(result) -> str:  # type: ignore[no-untyped-def]
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("shapes = ")]
    return row


def test_show_settings_prints_the_shapes(tmp_path: Path) -> None:
    project = _project(tmp_path, SHAPES)
    result = run_cli("check", "--show-settings", ".", cwd=project)
    assert result.returncode == 0, result.stderr
    config = project / "pyproject.toml"
    assert _shapes_row(result) == (
        'shapes = {"models/cnn.py::CNN" = [["N", 1, 28, 28]], "models/cnn.py::CNN.Head" = [["N", 10], ["N"]], '
        '"models/other.py::Other" = [[2, 8]]}'
        f"  # {config} + read from the verify inputs in {config}"
    )
    (project / "pyproject.toml").write_text('[tool.nnlint.shapes]\n"models/cnn.py::CNN" = "(N, 1, 28, 28)"\n')
    assert _shapes_row(run_cli("check", "--show-settings", ".", cwd=project)) == (
        f'shapes = {{"models/cnn.py::CNN" = [["N", 1, 28, 28]]}}  # {config}'
    )
    (project / "pyproject.toml").write_text('[tool.nnlint]\nselect = ["NN1"]\n')
    assert _shapes_row(run_cli("check", "--show-settings", ".", cwd=project)) == "shapes = {}  # default"


def test_a_file_reached_through_a_symlink_gets_its_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The config root is resolved; a project opened through a symlinked directory still matches."""
    _probe(monkeypatch)
    (tmp_path / "real").mkdir()
    project = _project(tmp_path / "real", SHAPES)
    link = tmp_path / "link"
    link.symlink_to(project, target_is_directory=True)
    monkeypatch.chdir(link)
    settings = build_settings(load_config(link / "pyproject.toml"))
    run = runner.lint_paths([link / "models" / "cnn.py"], settings, workers=1)
    assert _seen(run)["cnn.py:CNN"] == "(('N', 1, 28, 28),)"
