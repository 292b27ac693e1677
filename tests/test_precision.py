"""Precision on research code: the hand-read labels (fast) and the default rules on the dev corpus (slow)."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from nnlint.rules import RULES_BY_CODE

from conftest import REPO, module_source

MAX_REASON = 300


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("precision", REPO / "scripts" / "precision.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["precision"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


precision = _load_script()
LABEL_FILES = sorted(precision.LABELS.glob("*.csv"))


def test_label_files_are_well_formed() -> None:
    assert LABEL_FILES, "no label files"
    seen: dict[tuple[str, str, str, str], str] = {}
    for path in LABEL_FILES:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        assert tuple(rows[0]) == precision.HEADER, path.name
        for number, row in enumerate(rows[1:], start=2):
            where = f"{path.name}:{number}"
            assert len(row) == len(precision.HEADER), where
            package, file, line, rule, verdict, reason = row
            assert package and "/" not in package, where
            assert file and not file.startswith("/") and ".." not in file.split("/"), where
            assert line == "" or (line.isdigit() and int(line) > 0), where
            assert rule in RULES_BY_CODE, where
            assert verdict in precision.VERDICTS, where
            assert reason.strip() == reason and reason and "\n" not in reason, where
            assert len(reason) <= MAX_REASON, f"{where}: reason longer than {MAX_REASON} characters"
            key = (package, file, line, rule)
            assert key not in seen, f"{where}: already labelled in {seen[key]}"
            seen[key] = where
    assert len(precision.load_labels()) == len(seen)


def test_loader_rejects_bad_files(tmp_path: Path) -> None:
    header = ",".join(precision.HEADER)
    (tmp_path / "a.csv").write_text(f"{header}\nfoo,foo/a.py,3,NN304,maybe,unsure\n")
    with pytest.raises(precision.LabelError, match="verdict"):
        precision.load_labels(tmp_path)
    (tmp_path / "a.csv").write_text(f"{header}\nfoo,foo/a.py,3,NN304,TP,a reason\n")
    (tmp_path / "b.csv").write_text(f"{header}\nfoo,foo/a.py,3,NN304,FP,another\n")
    with pytest.raises(precision.LabelError, match="twice"):
        precision.load_labels(tmp_path)
    (tmp_path / "b.csv").write_text(f"{header}\ncode-search,id:42,,NN102,TN,a whole file\n")
    assert precision.load_labels(tmp_path)[("code-search", "id:42", None, "NN102")].verdict == "TN"
    (tmp_path / "b.csv").write_text("package,file,line,rule,verdict\n")
    with pytest.raises(precision.LabelError, match="header"):
        precision.load_labels(tmp_path)


RULE = min(precision.DEFAULT_CODES)  # a default-on rule, held to the bar
OPT_IN_RULE = min(set(RULES_BY_CODE) - precision.DEFAULT_CODES)


def _finding(line: int, rule: str = RULE) -> precision.Finding:
    return precision.Finding("pkg", "pkg/m.py", line, rule, "message")


def _labels(verdicts: dict[int, str], rule: str = RULE) -> dict[tuple, precision.Label]:
    labels = [precision.Label("pkg", "pkg/m.py", line, rule, v, "why") for line, v in verdicts.items()]
    return {label.key: label for label in labels}


def test_summary_counts_and_check() -> None:
    findings = [_finding(line) for line in range(1, 21)]
    labels = _labels({line: "TP" for line in range(1, 15)} | {15: "FP", 99: "TP"})
    (stats,) = precision.summarize(findings, labels, ["pkg"], [RULE]).values()
    assert (stats.findings, stats.tp, stats.fp, stats.tp_gone) == (20, 14, 1, 1)
    assert [f.line for f in stats.unlabelled] == [16, 17, 18, 19, 20]
    assert stats.problems() == []  # 14/15 = 93% and 15 labelled
    labels = _labels({line: "TP" for line in range(1, 14)} | {14: "FP", 15: "FP"})
    (stats,) = precision.summarize(findings, labels, ["pkg"], [RULE]).values()
    assert stats.problems() == [f"{RULE}: precision 87% < 90% (13/15)"]
    (stats,) = precision.summarize(findings[:3], _labels({1: "TP", 2: "TP"}), ["pkg"], [RULE]).values()
    assert stats.problems() == [f"{RULE}: 2 of 3 findings labelled, 3 needed"]
    (stats,) = precision.summarize(findings[:2], _labels({1: "TN", 2: "FN"}), ["pkg"], [RULE]).values()
    assert (stats.tp, stats.fp) == (1, 1)  # reported after all: FN is a hit, TN a false alarm
    opt_in = precision.summarize([_finding(1, OPT_IN_RULE)], {}, ["pkg"], [OPT_IN_RULE])
    assert opt_in[OPT_IN_RULE].problems() == []  # only default-on rules are held to the bar


@pytest.mark.slow
def test_default_rules_precision_on_dev_corpus() -> None:
    """Every default-on rule with findings: min(15, n) of them labelled, and >= 90% of those true positives."""
    directory = precision.default_corpus_dir()
    if not precision.FETCH_SCRIPT.is_file() and not directory.is_dir():
        pytest.skip(f"no dev corpus: neither {precision.FETCH_SCRIPT} nor {directory}")
    packages = precision.ensure_dev_corpus(directory)
    findings = precision.lint(packages)
    stats = precision.summarize(findings, precision.load_labels(), packages, precision.selected_codes(None))
    problems = [problem for rule in stats.values() for problem in rule.problems()]
    assert not problems, "\n".join(problems) + "\n\n" + precision.markdown_table(stats)


def test_check_fails_until_findings_are_labelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(precision, "FETCH_SCRIPT", tmp_path / "no-fetch.sh")  # the corpus is what is there
    monkeypatch.setattr(precision, "DEFAULT_CODES", frozenset({"NN101"}))  # whatever the defaults are today
    package = tmp_path / "corpus" / "toy"
    package.mkdir(parents=True)
    (package / "model.py").write_text(
        module_source(
            """
            class Model(nn.Module):
                def forward(self, x):
                    return F.dropout(x, 0.5)
            """
        )
    )
    labels = tmp_path / "labels"
    labels.mkdir()
    arguments = ["--corpus-dir", str(tmp_path / "corpus"), "--labels", str(labels), "--select", "NN101", "--check"]
    todo = tmp_path / "todo.csv"
    assert precision.main([*arguments, "--unlabelled-csv", str(todo)]) == 1
    assert "- toy model.py:8 NN101 `F.dropout`" in capsys.readouterr().out
    rows = todo.read_text().splitlines()
    assert rows == [",".join(precision.HEADER), "toy,model.py,8,NN101,,"]
    todo.write_text(rows[0] + "\ntoy,model.py,8,NN101,TP,drops out in eval mode too\n")
    todo.rename(labels / "toy.csv")
    assert precision.main(arguments) == 0
    assert "| NN101 | dropout-ignores-eval-mode | 1 | 1 | 1 | 0 | 100% | 0 |" in capsys.readouterr().out
