"""Benchmark fixing: ``check``, ``check --fix`` and ``check --output-format json`` as fixes grow (issue 13).

    python bench/fixes.py                          # N = 100, 300, 1,000, 3,000 fixes, then the editor
    python bench/fixes.py --sizes 100,3000 --repeat 5
    python bench/fixes.py --no-editor --timeout 60 # stop a run after 60 s (reported as "> 60 s")
    python bench/fixes.py --corpus                 # also the corpus targets (timm + transformers, ~5 min)
    python bench/lsp_latency.py                    # the editor part alone
    PYTHONPATH=/tmp/head python bench/fixes.py     # another nnlint (e.g. `git archive HEAD nnlint rules`)

Each size is one generated file (in a temporary directory) made of copies of a
small ``nn.Module`` with three safe findings: two NN101 (``F.dropout(x, p)`` in
``forward``) and one NN304 (``self.mask = torch.ones(3)`` set in ``__init__``
and read unmoved in ``forward``), plus a last module with the remainder, so the
file has exactly N fixes. All commands run ``--no-cache --select NN101,NN304``
(NN304 is opt-in) in the temporary directory (the nnlint they import is the one
Python finds there: ``PYTHONPATH`` chooses another) with their output written to a file:

- ``check``: the default text output;
- ``check --fix``: on a fresh copy of the file before every run;
- ``check --output-format json``: every finding with its own edits.

Every command runs in a fresh process; peak RSS is the process's largest
resident set (``os.wait4``). The three commands take turns ``--repeat`` times and
each reports its fastest run: on this shared 2-core machine other load only ever
slows a run down. A run past ``--timeout`` is killed, reported as "> T s" and not
tried again at this or a larger size. Checked before a size counts: the JSON
output has N findings, each with a safe fix (the text output when every JSON run
was stopped), and the file ``--fix`` wrote has none left.

"ms per fix" is the cost of fixing alone, fixed costs (importing LibCST...)
left out: ``--fix`` - ``check`` at N, less the same at a baseline file of one
module (3 fixes, measured in the same run), divided by N - 3. Linear fixing
keeps it flat; it must stay within 1.5x from the smallest to the largest N. Targets
(issue 13): ``--fix`` <= 3x ``check`` at every N; ms per fix within 1.5x;
JSON <= 1.5x ``check``; peak RSS of ``--fix`` <= 2x that of ``check``.

With ``--corpus``: ``check --select ALL --fix --unsafe-fixes`` over timm and
transformers (a fresh copy before each run) against ``check --select ALL`` on
the same files (target <= 2x), and ``--output-format json`` against the text
output on transformers (target <= 1.5x); fastest of two runs each, interleaved.

Then, unless ``--no-editor``, the editor part (``bench/lsp_latency.py``): a real
LSP client over stdio on a ~3,000-line file. Results are printed as Markdown
tables with the targets ("met"/"MISSED") and written to
bench/results/fixes-latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import REPO
from run import BENCH_ENV  # as users run tools: Python may cache bytecode

SELECT = "NN101,NN304"
DEFAULT_SIZES = (100, 300, 1000, 3000)
HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
#: three safe fixes: NN304 on the mask, NN101 on each dropout (11 lines)
BLOCK = """

class Block{index}(nn.Module):
    def __init__(self):
        super().__init__()
        self.mask = torch.ones(3)

    def forward(self, x):
        x = F.dropout(x, 0.1)
        x = x * self.mask
        return F.dropout(x, 0.2)
"""
#: one or two NN101 fixes, for sizes that are not a multiple of three
REST = """

class Rest(nn.Module):
    def forward(self, x):
{dropouts}        return x
"""
FIXES_PER_BLOCK = 3
#: the file whose fixing time is taken as the fixed cost of fixing
BASELINE = FIXES_PER_BLOCK
BLOCK_LINES = BLOCK.count("\n")


def model_source(fixes: int) -> str:
    """A module with exactly ``fixes`` safe fixes (NN101 and NN304)."""
    blocks, rest = divmod(fixes, FIXES_PER_BLOCK)
    text = HEADER + "".join(BLOCK.format(index=index) for index in range(blocks))
    if rest:
        text += REST.format(dropouts="        x = F.dropout(x, 0.5)\n" * rest)
    return text


def source_of_lines(lines: int) -> str:
    """A module of about ``lines`` lines made of whole blocks (three fixes per 11 lines)."""
    blocks = max(1, (lines - HEADER.count("\n")) // BLOCK_LINES)
    return model_source(blocks * FIXES_PER_BLOCK)


@dataclass
class Run:
    """One run of a command."""

    seconds: float
    rss_mb: int
    exit_code: int
    stopped: bool = False


def measure(command: list[str], output: Path, timeout: float, cwd: Path) -> Run:
    """Wall seconds, peak RSS (MiB) and exit code of one run; killed after ``timeout`` seconds."""
    with output.open("wb") as stdout:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=cwd, stdout=stdout, stderr=subprocess.DEVNULL, env=BENCH_ENV, start_new_session=True
        )
        stopped = threading.Event()
        timer = threading.Timer(timeout, _stop, (process.pid, stopped))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(elapsed, usage.ru_maxrss // 1024, process.returncode, stopped.is_set())


def _stop(pid: int, stopped: threading.Event) -> None:
    stopped.set()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def nnlint(target: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "nnlint", "check", "--no-cache", "--select", SELECT, *options, str(target)]


@dataclass
class Command:
    """A command of the benchmark, and the file it works on (copied afresh before each run when ``fresh``)."""

    argv: list[str]
    target: Path
    output: Path
    fresh: Path | None = None

    def run(self, timeout: float) -> Run:
        if self.fresh is not None and self.fresh.is_dir():
            shutil.rmtree(self.target, ignore_errors=True)
            shutil.copytree(self.fresh, self.target)
        elif self.fresh is not None:
            shutil.copyfile(self.fresh, self.target)
        return measure(self.argv, self.output, timeout, self.target if self.target.is_dir() else self.output.parent)


def commands_for(directory: Path, fixes: int) -> dict[str, Command]:
    """The three commands on a generated file with ``fixes`` fixes, each in its own directory."""
    original = directory / "check" / "model.py"
    original.parent.mkdir(parents=True)
    original.write_text(model_source(fixes))
    fixed = directory / "fix" / "model.py"
    fixed.parent.mkdir()
    return {
        "check": Command(nnlint(original), original, directory / "check.out"),
        "fix": Command(nnlint(fixed, "--fix"), fixed, directory / "fix.out", fresh=original),
        "json": Command(nnlint(original, "--output-format", "json"), original, directory / "json.out"),
    }


def fastest_interleaved(
    commands: dict[str, Command], repeat: int, timeout: float, skip: set[str]
) -> dict[str, Run | None]:
    """Each command's fastest run (a stopped one when all were stopped), the commands taking turns."""
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            if name in skip or any(run.stopped for run in runs[name]):
                continue
            run = command.run(timeout)
            if not run.stopped and run.exit_code not in (0, 1):
                raise SystemExit(f"bench: {' '.join(command.argv)} failed (exit {run.exit_code})")
            runs[name].append(run)
    return {name: _best(found) for name, found in runs.items()}


def _best(runs: list[Run]) -> Run | None:
    finished = [run for run in runs if not run.stopped]
    if finished:
        return Run(min(r.seconds for r in finished), max(r.rss_mb for r in finished), finished[0].exit_code)
    return runs[0] if runs else None


def verify(commands: dict[str, Command], timed: dict[str, Run | None], fixes: int) -> str:
    """Check the findings (JSON output, else a concise run) and the fixed file; say how the count was checked."""
    if timed["json"] is not None and not timed["json"].stopped:
        findings = json.loads(commands["json"].output.read_text())
        unfixable = [f for f in findings if not (f.get("fix") and f["fix"]["applicability"] == "safe")]
        if len(findings) != fixes or unfixable:
            raise SystemExit(f"bench: expected {fixes} safely fixable findings, JSON has {len(findings)}")
        how = "json"
    else:
        found = _concise(commands["check"].target)
        if found != fixes:
            raise SystemExit(f"bench: expected {fixes} findings, found {found}")
        how = "concise"
    fix = timed["fix"]
    if fix is not None and not fix.stopped:
        left = _concise(commands["fix"].target)
        if left or fix.exit_code != 0:
            raise SystemExit(f"bench: --fix left {left} findings (exit {fix.exit_code})")
    return how


def _concise(target: Path) -> int:
    argv = nnlint(target, "--output-format", "concise", "--quiet", "--exit-zero")
    result = subprocess.run(argv, cwd=target.parent, capture_output=True, text=True, env=BENCH_ENV, check=True)
    return sum(1 for line in result.stdout.splitlines() if line.strip())


def bench_size(fixes: int, repeat: int, timeout: float, skip: set[str]) -> dict:
    """One row: the size of the file, each command's fastest time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="nnlint-bench-fixes-") as directory:
        commands = commands_for(Path(directory), fixes)
        text = commands["check"].target.read_text()
        timed = fastest_interleaved(commands, repeat, timeout, skip)
        verified = verify(commands, timed, fixes)
    row: dict = {"fixes": fixes, "lines": text.count("\n"), "verified_by": verified}
    for name, run in timed.items():
        row[f"{name}_s"] = None if run is None else round(run.seconds, 4)
        row[f"{name}_rss_mb"] = None if run is None else run.rss_mb
        row[f"{name}_stopped"] = run is None or run.stopped
        if run is not None and run.stopped:
            skip.add(name)  # a larger file takes longer still
    return row


def _seconds(row: dict, name: str, timeout: float) -> str:
    if row[f"{name}_s"] is None:
        return f"> {timeout:g} s (stopped before)"
    if row[f"{name}_stopped"]:
        return f"> {timeout:g} s (stopped)"
    return f"{row[f'{name}_s']:.2f} s"


def _ratio(row: dict, name: str) -> float | None:
    if row[f"{name}_stopped"] or row["check_stopped"]:
        return None
    return row[f"{name}_s"] / row["check_s"]


def ms_per_fix(row: dict, baseline: dict) -> float | None:
    """Milliseconds of fixing per fix beyond the baseline's (fixed costs left out)."""
    stopped = row["fix_stopped"] or row["check_stopped"] or baseline["fix_stopped"] or baseline["check_stopped"]
    if stopped or row["fixes"] <= baseline["fixes"]:
        return None
    extra = (row["fix_s"] - row["check_s"]) - (baseline["fix_s"] - baseline["check_s"])
    return 1000 * max(extra, 0.0) / (row["fixes"] - baseline["fixes"])


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def table(baseline: dict, rows: list[dict], timeout: float) -> str:
    lines = [
        "| fixes | lines | `check` | `check --fix` | fix / check | ms per fix | `--output-format json` | "
        "json / check | peak RSS check / --fix / json |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in [baseline, *rows]:
        per_fix = row.get("ms_per_fix")
        label = f"{row['fixes']:,}" + (" (baseline)" if row is baseline else "")
        rss = " / ".join(
            "-" if row[f"{name}_rss_mb"] is None else f"{'≥ ' if row[f'{name}_stopped'] else ''}{row[f'{name}_rss_mb']}"
            for name in ("check", "fix", "json")
        )
        lines.append(
            f"| {label} | {row['lines']:,} | {_seconds(row, 'check', timeout)} | "
            f"{_seconds(row, 'fix', timeout)} | {_x(_ratio(row, 'fix'))} | "
            f"{'-' if per_fix is None else f'{per_fix:.2f}'} | {_seconds(row, 'json', timeout)} | "
            f"{_x(_ratio(row, 'json'))} | {rss} MiB |"
        )
    return "\n".join(lines)


CORPUS_SELECT = ("--no-cache", "--select", "ALL")


def bench_corpus(repeat: int, timeout: float) -> dict:
    """The corpus targets: ``--select ALL --fix --unsafe-fixes`` against ``--select ALL`` over timm and
    transformers (a fresh copy before each fix run), and JSON against text output on transformers."""
    from corpora import corpus

    with tempfile.TemporaryDirectory(prefix="nnlint-bench-corpus-") as directory:
        root = Path(directory)
        pristine, linted = root / "pristine", root / "linted"
        for name in ("timm", "transformers"):
            shutil.copytree(corpus(name), pristine / name)
        shutil.copytree(pristine, linted)
        check = [sys.executable, "-m", "nnlint", "check", *CORPUS_SELECT]
        fix = [*check, "--fix", "--unsafe-fixes"]
        commands = {
            "lint": Command([*check, "timm", "transformers"], linted, root / "lint.out"),
            "fix": Command([*fix, "timm", "transformers"], root / "fixed", root / "fix.out", pristine),
            "text": Command([*check, "transformers"], linted, root / "text.out"),
            "json": Command([*check, "--output-format", "json", "transformers"], linted, root / "json.out"),
        }
        timed = fastest_interleaved(commands, repeat, timeout, set())
        fixed = re.search(r"\((\d+) fixed", commands["fix"].output.read_text())
    row = {name: None if run is None or run.stopped else round(run.seconds, 2) for name, run in timed.items()}
    row["fixed"] = int(fixed[1]) if fixed else None
    return row


def corpus_report(row: dict) -> str:
    def ratio(top: str, bottom: str) -> float | None:
        return None if row[top] is None or row[bottom] is None else row[top] / row[bottom]

    lines = [
        "| `--select ALL` (timm + transformers) | `--fix --unsafe-fixes` | fix / lint "
        "| text (transformers) | JSON | json / text |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {row['lint']} s | {row['fix']} s ({row['fixed']} fixed) | {_x(ratio('fix', 'lint'))} "
        f"| {row['text']} s | {row['json']} s | {_x(ratio('json', 'text'))} |",
        "",
        f"corpus: --fix --unsafe-fixes / lint = {_verdict(ratio('fix', 'lint'), 2.0)}",
        f"corpus: json / text (transformers) = {_verdict(ratio('json', 'text'), 1.5)}",
    ]
    return "\n".join(lines)


def _verdict(value: float | None, target: float) -> str:
    if value is None:
        return f"stopped (target <= {target:g}x: MISSED)"
    return f"{value:.2f}x (target <= {target:g}x: {'met' if value <= target else 'MISSED'})"


def targets(rows: list[dict]) -> list[str]:
    """Each target of issue 13 for the command line, with its verdict."""
    lines = []
    for row in rows:
        size = f"N = {row['fixes']:,}"
        lines.append(f"{size}: --fix / check = {_verdict(_ratio(row, 'fix'), 3.0)}")
        lines.append(f"{size}: json / check = {_verdict(_ratio(row, 'json'), 1.5)}")
        rss = None if row["fix_stopped"] or row["check_stopped"] else row["fix_rss_mb"] / row["check_rss_mb"]
        lines.append(f"{size}: peak RSS --fix / check = {_verdict(rss, 2.0)}")
    if len(rows) > 1:
        first, last = rows[0]["ms_per_fix"], rows[-1]["ms_per_fix"]
        growth = None if first is None or last is None else last / max(first, 1e-9)
        label = f"ms per fix, N = {rows[-1]['fixes']:,} / N = {rows[0]['fixes']:,}"
        lines.append(f"{label} = {_verdict(growth, 1.5)}")
    return lines


def git_state() -> dict:
    """The nnlint the commands import, the commit and the files changed since (a before and an after)."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], check=False, cwd=REPO, capture_output=True, text=True)
        return result.stdout

    where = [sys.executable, "-c", "import nnlint; print(nnlint.__file__)"]
    found = subprocess.run(where, check=False, cwd=tempfile.gettempdir(), capture_output=True, text=True, env=BENCH_ENV)
    imported = found.stdout.strip()
    changed = [line[3:] for line in git("status", "--porcelain", "--", "nnlint").splitlines()]
    return {"nnlint": imported, "commit": git("rev-parse", "--short", "HEAD").strip(), "changed": changed}


def _sizes(value: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {value!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be positive numbers of fixes")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES), help="numbers of fixes, e.g. 100,3000")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command per size (fastest reported)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a run is stopped")
    parser.add_argument("--no-editor", action="store_true", help="skip the language server part")
    parser.add_argument("--lines", type=int, default=3000, help="lines of the editor's file")
    parser.add_argument("--corpus", action="store_true", help="also the corpus targets (timm + transformers, minutes)")
    args = parser.parse_args()
    if args.repeat < 1 or args.timeout <= 0:
        parser.error("--repeat and --timeout must be positive")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    state = git_state()
    print(f"bench: nnlint from {state['nnlint']}, {state['commit']} changed: {state['changed']}", file=sys.stderr)
    baseline = bench_size(BASELINE, args.repeat, args.timeout, set())
    skip: set[str] = set()
    rows = []
    for fixes in args.sizes:
        row = bench_size(fixes, args.repeat, args.timeout, skip)
        row["ms_per_fix"] = ms_per_fix(row, baseline)
        rows.append(row)
        print(f"bench: {fixes} fixes done", file=sys.stderr, flush=True)
    print(table(baseline, rows, args.timeout))
    print()
    print("\n".join(targets(rows)))
    results = {"started": started, "python": sys.version, "git": state, "repeat": args.repeat}
    results.update(baseline=baseline, rows=rows)
    if not args.no_editor:
        from lsp_latency import editor_latency, editor_report

        results["editor"] = editor = editor_latency(args.lines)
        print()
        print(editor_report(editor))
    if args.corpus:
        results["corpus"] = corpus_row = bench_corpus(min(args.repeat, 2), max(args.timeout, 900.0))
        print()
        print(corpus_report(corpus_row))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "fixes-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
