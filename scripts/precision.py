"""Precision of each rule on research code, from findings read by hand.

Lints the dev corpus (24 pinned wheels of research-style PyTorch code, unpacked
by ``../shared/corpora/fetch.sh`` beside the repository) and, with
``--with-libraries``, timm and transformers (``bench/corpora.py``); joins the
findings with the labels in ``tests/data/labels/*.csv`` and prints, per rule,
how many findings there are, how many are labelled and which share of those is
a true positive. Unlabelled findings are listed for a reader to label::

    python scripts/precision.py --corpus-dir /work/corpus
    python scripts/precision.py --with-libraries --unlabelled-csv todo.csv
    python scripts/precision.py --check   # exit 1 when a default-on rule falls short

A label file has the header ``package,file,line,rule,verdict,reason``:
``package`` is the corpus directory (``torchrl``; ``timm`` or ``transformers``
for the libraries), ``file`` is relative to it (``torchrl/data/map/hash.py``,
``transformers/models/...``), ``verdict`` is ``TP`` or ``FP`` and ``reason`` one
short line in the labeller's words. All files in the folder together are the labels.
Two more verdicts record code a rule is *not* meant to report (``TN``) or misses
(``FN``): should the rule report it, it counts as a false or a true positive.
``line`` may be empty for a sample that is not in a corpus (a whole file).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnlint.engine.selection import DEFAULT, enabled_codes
from nnlint.rules import ALL_RULES, RULES_BY_CODE

REPO = Path(__file__).resolve().parent.parent
LABELS = REPO / "tests" / "data" / "labels"
FETCH_SCRIPT = REPO.parent / "shared" / "corpora" / "fetch.sh"
HEADER = ("package", "file", "line", "rule", "verdict", "reason")
VERDICTS = ("TP", "FP", "TN", "FN")
#: Verdicts that make a reported finding a true positive.
POSITIVE = frozenset({"TP", "FN"})
#: A default-on rule needs this share of true positives among its labelled findings ...
MIN_PRECISION = 0.9
#: ... and this many labelled findings (or all of them, when it has fewer).
MIN_LABELLED = 15
LIBRARIES = ("timm", "transformers")
DEFAULT_CODES = frozenset(rule.code for rule in ALL_RULES if rule.default_enabled and not rule.runtime_only)

Key = tuple[str, str, int | None, str]  # package, file, line (None: the whole file), rule


class LabelError(ValueError):
    """A label file that cannot be read as labels."""


@dataclass(frozen=True)
class Label:
    package: str
    file: str
    line: int | None
    rule: str
    verdict: str
    reason: str

    @property
    def key(self) -> Key:
        return (self.package, self.file, self.line, self.rule)


@dataclass(frozen=True)
class Finding:
    package: str
    file: str
    line: int
    rule: str
    message: str

    @property
    def key(self) -> Key:
        return (self.package, self.file, self.line, self.rule)


@dataclass
class RuleStats:
    rule: str
    findings: int = 0
    tp: int = 0
    fp: int = 0
    #: labelled TP that the rule no longer reports (a rewrite lost them)
    tp_gone: int = 0
    unlabelled: list[Finding] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float | None:
        return self.tp / self.labelled if self.labelled else None

    def problems(self) -> list[str]:
        """Why this rule fails ``--check`` (nothing for an opt-in rule)."""
        if self.rule not in DEFAULT_CODES:
            return []
        found = []
        if self.precision is not None and self.precision < MIN_PRECISION:
            found.append(
                f"{self.rule}: precision {self.precision:.0%} < {MIN_PRECISION:.0%} ({self.tp}/{self.labelled})"
            )
        needed = min(MIN_LABELLED, self.findings)
        if self.unlabelled and self.labelled < needed:
            found.append(f"{self.rule}: {self.labelled} of {self.findings} findings labelled, {needed} needed")
        return found


def read_label_file(path: Path) -> list[Label]:
    """The labels of one CSV file; LabelError on a wrong header, verdict or line number."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or tuple(rows[0]) != HEADER:
        raise LabelError(f"{path.name}: header must be {','.join(HEADER)}")
    labels = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(HEADER):
            raise LabelError(f"{path.name}:{number}: {len(row)} fields, expected {len(HEADER)}")
        package, file, line, rule, verdict, reason = row
        if line and not line.isdigit():
            raise LabelError(f"{path.name}:{number}: line {line!r} is not a number")
        if verdict not in VERDICTS:
            raise LabelError(f"{path.name}:{number}: verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
        labels.append(Label(package, file, int(line) if line else None, rule, verdict, reason))
    return labels


def load_labels(directory: Path = LABELS) -> dict[Key, Label]:
    """Every label in ``directory/*.csv`` by (package, file, line, rule); LabelError on a duplicate key."""
    labels: dict[Key, Label] = {}
    for path in sorted(directory.glob("*.csv")):
        for label in read_label_file(path):
            if label.key in labels:
                raise LabelError(f"{path.name}: {label.key} is labelled twice")
            labels[label.key] = label
    return labels


def corpus_names(list_file: Path) -> list[str]:
    """Package names of a fetch.sh list (``name==version`` lines, ``#`` comments)."""
    lines = (line.strip() for line in list_file.read_text(encoding="utf-8").splitlines())
    return [line.split("==")[0] for line in lines if line and not line.startswith("#")]


def default_corpus_dir() -> Path:
    """``$NNLINT_CORPUS_DIR/dev`` (beside bench's timm and transformers) or ``~/.cache/nnlint-corpora/dev``."""
    root = os.environ.get("NNLINT_CORPUS_DIR")
    return Path(root) / "dev" if root else Path.home() / ".cache" / "nnlint-corpora" / "dev"


def ensure_dev_corpus(directory: Path, fetch_script: Path | None = None) -> dict[str, Path]:
    """Unpack the dev corpus into ``directory`` (fetch.sh, only if a package is missing); {package: its directory}.

    Without fetch.sh's list beside it, every directory already in ``directory`` is a package.
    """
    fetch_script = fetch_script or FETCH_SCRIPT
    list_file = fetch_script.parent / "dev-corpus.txt"
    names = corpus_names(list_file) if list_file.is_file() else None
    if names is None and not any(directory.glob("*/")):
        raise FileNotFoundError(f"no dev corpus in {directory} and no {list_file} to fetch it from")
    if names is not None and any(not (directory / name).is_dir() for name in names):
        if not fetch_script.is_file():
            raise FileNotFoundError(f"{fetch_script} is missing: cannot fetch the dev corpus into {directory}")
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        subprocess.run(["bash", str(fetch_script), str(directory)], check=True, env=env, stdout=subprocess.DEVNULL)
        missing = [name for name in names if not (directory / name).is_dir()]
        if missing:
            raise RuntimeError(f"fetch.sh could not unpack {', '.join(missing)} into {directory}")
    if names is None:
        names = sorted(path.name for path in directory.iterdir() if path.is_dir() and not path.name.startswith("."))
    return {name: directory / name for name in names}


def library_packages() -> dict[str, Path]:
    """timm and transformers, downloaded by ``bench/corpora.py``: {name: directory holding the package}."""
    sys.path.insert(0, str(REPO / "bench"))
    from corpora import corpus

    return {name: corpus(name).parent for name in LIBRARIES}


def lint(packages: dict[str, Path], select: str | None = None) -> list[Finding]:
    """Findings of ``nnlint check`` (default rules, or ``select``) over every package directory."""
    if not packages:
        return []
    command = [sys.executable, "-m", "nnlint", "check", "--no-cache", "--output-format", "json", "--exit-zero"]
    if select:
        command += ["--select", select]
    roots = {name: path.resolve() for name, path in packages.items()}
    result = subprocess.run([*command, *map(str, roots.values())], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"nnlint failed ({result.returncode}): {result.stderr[-2000:]}")
    findings = []
    for item in json.loads(result.stdout):
        path = Path(item["filename"]).resolve()
        package = next(name for name, root in roots.items() if path.is_relative_to(root))
        file = path.relative_to(roots[package]).as_posix()
        findings.append(Finding(package, file, item["location"]["row"], item["code"], item["message"]))
    return findings


def selected_codes(select: str | None) -> frozenset[str]:
    """The rule codes ``nnlint check`` runs for ``--select`` (the default rules without it)."""
    selectors = [part.strip().upper() for part in select.split(",")] if select else [DEFAULT]
    return enabled_codes(RULES_BY_CODE, selectors, [], DEFAULT_CODES)


def summarize(
    findings: Iterable[Finding], labels: dict[Key, Label], packages: Iterable[str], codes: Iterable[str]
) -> dict[str, RuleStats]:
    """Per rule (sorted by code): findings, TP/FP among the labelled, labelled TP no longer found."""
    stats: dict[str, RuleStats] = {}
    reported = set()
    for finding in findings:
        rule = stats.setdefault(finding.rule, RuleStats(finding.rule))
        rule.findings += 1
        reported.add(finding.key)
        label = labels.get(finding.key)
        if label is None:
            rule.unlabelled.append(finding)
        elif label.verdict in POSITIVE:
            rule.tp += 1
        else:
            rule.fp += 1
    linted, ran = set(packages), set(codes)
    for label in labels.values():
        if label.verdict == "TP" and label.package in linted and label.rule in ran and label.key not in reported:
            stats.setdefault(label.rule, RuleStats(label.rule)).tp_gone += 1
    return dict(sorted(stats.items()))


def markdown_table(stats: dict[str, RuleStats]) -> str:
    rows = [
        "| rule | name | findings | labelled | TP | FP | precision | TP gone |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for code, rule in stats.items():
        precision = "-" if rule.precision is None else f"{rule.precision:.0%}"
        name = RULES_BY_CODE[code].name if code in RULES_BY_CODE else code
        default = "" if code in DEFAULT_CODES else " (opt-in)"
        rows.append(
            f"| {code} | {name}{default} | {rule.findings} | {rule.labelled} | {rule.tp} | {rule.fp} "
            f"| {precision} | {rule.tp_gone} |"
        )
    return "\n".join(rows)


def write_unlabelled_csv(path: Path, unlabelled: Sequence[Finding]) -> None:
    """Unlabelled findings as label rows with an empty verdict and reason, ready to fill in."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows((f.package, f.file, f.line, f.rule, "", "") for f in unlabelled)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus-dir", type=Path, default=None, help="where the dev corpus is (or goes) unpacked")
    parser.add_argument("--with-libraries", action="store_true", help="also lint timm and transformers")
    parser.add_argument("--select", help="rule selection passed to nnlint (default: the default rules)")
    parser.add_argument("--labels", type=Path, default=LABELS, help="folder of label CSV files")
    parser.add_argument("--unlabelled-csv", type=Path, help="write the unlabelled findings here as label rows")
    parser.add_argument("--check", action="store_true", help="exit 1 when a default-on rule falls short")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    labels = load_labels(args.labels)
    packages = ensure_dev_corpus(args.corpus_dir or default_corpus_dir())
    if args.with_libraries:
        packages |= library_packages()
    findings = lint(packages, args.select)
    stats = summarize(findings, labels, packages, selected_codes(args.select))
    unlabelled = [finding for rule in stats.values() for finding in rule.unlabelled]
    print(markdown_table(stats))
    if unlabelled:
        print(f"\n{len(unlabelled)} unlabelled findings:\n")
        for f in unlabelled:
            print(f"- {f.package} {f.file}:{f.line} {f.rule} {f.message}")
    if args.unlabelled_csv:
        write_unlabelled_csv(args.unlabelled_csv, unlabelled)
    problems = [problem for rule in stats.values() for problem in rule.problems()]
    if args.check and problems:
        print("\n" + "\n".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
