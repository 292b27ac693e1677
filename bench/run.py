"""Benchmark nnlint against the ast floor, ruff and TorchFix, in one run on the same machine.

    python bench/run.py                      # timm: nnlint, ast floor, TorchFix
    python bench/run.py --corpus timm --corpus transformers
    python bench/run.py --no-torchfix        # skip the (slow) peer

Every command runs in a fresh process. The ast floor, nnlint cold and warm and
ruff take turns --repeat times and each reports its fastest run (other load on a
shared machine only ever slows a run down); the single-file runs are medians
(TorchFix: one run, it takes minutes). "cold" runs without the cache,
"warm" with a cache filled by one run before (nothing changed since), ruff
runs ``--select ALL --no-cache`` as the speed reference of the field. Commands
run with bytecode caching allowed, as on a user's machine. Peak RSS is the largest resident
set of the process and the children it waited for. Results are printed as a
table with ratios and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import REPO, cache_dir, corpus

TORCHFIX = "torchfix==0.7.0"
SINGLE_FILE = {"timm": "models/vision_transformer.py", "transformers": "models/bert/modeling_bert.py"}
AST_FLOOR = "import ast, pathlib, sys\nfor p in pathlib.Path(sys.argv[1]).rglob('*.py'): ast.parse(p.read_bytes())"


#: as users run tools: Python may cache bytecode (some sandboxes set PYTHONDONTWRITEBYTECODE, which makes
#: every run of every tool recompile its modules: ~60 ms of a 0.15 s warm nnlint run)
BENCH_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def measure(command: list[str], cwd: Path | None = None) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in MiB and exit code of one run."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=BENCH_ENV)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss // 1024, process.returncode


def median_of(command: list[str], repeat: int) -> tuple[float, int]:
    runs = [measure(command) for _ in range(repeat)]
    _check_exits(command, runs)
    return statistics.median(run[0] for run in runs), max(run[1] for run in runs)


def fastest_interleaved(commands: dict[str, list[str]], repeat: int) -> dict[str, tuple[float, int]]:
    """Each command's fastest run and peak RSS, the commands taking turns ``repeat`` times.

    On a shared machine other load slows runs down, never speeds them up: the fastest of
    several runs is the least disturbed (timeit's convention), and taking turns exposes
    the commands a ratio compares to the same moments of load.
    """
    runs: dict[str, list[tuple[float, int, int]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            runs[name].append(measure(command))
    for name, command in commands.items():
        _check_exits(command, runs[name])
    return {name: (min(r[0] for r in found), max(r[1] for r in found)) for name, found in runs.items()}


def _check_exits(command: list[str], runs: list[tuple[float, int, int]]) -> None:
    if any(run[2] not in (0, 1) for run in runs):
        raise SystemExit(f"bench: {' '.join(command)} failed (exit {runs[0][2]})")


def torchfix_venv() -> Path:
    """A virtualenv with TorchFix, apart from nnlint's own dependencies."""
    venv = cache_dir() / "torchfix-venv"
    executable = venv / "bin" / "torchfix"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", TORCHFIX], check=True)
    return executable


def nnlint_command(target: Path, cache: Path | None = None) -> list[str]:
    caching = ["--cache-dir", str(cache)] if cache else ["--no-cache"]
    return [
        sys.executable,
        "-m",
        "nnlint",
        "check",
        *caching,
        "--exit-zero",
        "--quiet",
        "--output-format",
        "concise",
        str(target),
    ]


def ruff_command(target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ruff",
        "check",
        "--select",
        "ALL",
        "--no-cache",
        "--exit-zero",
        "--quiet",
        str(target),
    ]


def bench_corpus(name: str, repeat: int, with_torchfix: bool) -> dict:
    root = corpus(name)
    files = list(root.rglob("*.py"))
    lines = sum(path.read_bytes().count(b"\n") for path in files)
    row: dict = {"corpus": name, "files": len(files), "lines": lines}
    with tempfile.TemporaryDirectory(prefix="nnlint-bench-cache-") as cache:
        measure(nnlint_command(root, Path(cache)))  # fills the cache
        timed = fastest_interleaved(
            {
                "ast_floor": [sys.executable, "-c", AST_FLOOR, str(root)],
                "nnlint": nnlint_command(root),
                "nnlint_warm": nnlint_command(root, Path(cache)),
                "ruff": ruff_command(root),
            },
            repeat,
        )
    for key, (seconds, rss) in timed.items():
        row[f"{key}_s"], row[f"{key}_rss_mb"] = seconds, rss
    single = root / SINGLE_FILE[name]
    if not single.is_file():
        raise SystemExit(f"bench: {single} not found in the {name} wheel")
    row["nnlint_file_s"], _ = median_of(nnlint_command(single), repeat)
    if with_torchfix:
        torchfix = str(torchfix_venv())
        row["torchfix_s"], row["torchfix_rss_mb"], _ = measure([torchfix, str(root)])
        row["torchfix_file_s"], _ = median_of([torchfix, str(single)], max(1, repeat // 2))
    return row


def ratios(row: dict) -> dict:
    out = {
        "nnlint / ast floor": row["nnlint_s"] / row["ast_floor_s"],
        "nnlint warm / cold": row["nnlint_warm_s"] / row["nnlint_s"],
        "nnlint / ruff --select ALL": row["nnlint_s"] / row["ruff_s"],
    }
    if "torchfix_s" in row:
        out["torchfix / nnlint (corpus)"] = row["torchfix_s"] / row["nnlint_s"]
        out["torchfix / nnlint (one file)"] = row["torchfix_file_s"] / row["nnlint_file_s"]
    return out


TARGETS = {
    "nnlint / ast floor": ("<=", 2.0),
    "nnlint warm / cold": ("<=", 0.10),
    "nnlint / ruff --select ALL": ("", 0.0),  # a reference, no target
    "torchfix / nnlint (corpus)": (">=", 20.0),
    "torchfix / nnlint (one file)": (">=", 10.0),
}


def report(rows: list[dict]) -> str:
    lines = [
        "| corpus | files | lines | ast floor | nnlint cold | nnlint warm | nnlint 1 file | ruff ALL | TorchFix | "
        "TorchFix 1 file | peak RSS nnlint cold / warm / ruff / TorchFix |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        torchfix = f"{row['torchfix_s']:.1f} s" if "torchfix_s" in row else "-"
        torchfix_file = f"{row['torchfix_file_s']:.2f} s" if "torchfix_file_s" in row else "-"
        rss = (
            f"{row['nnlint_rss_mb']} / {row['nnlint_warm_rss_mb']} / {row['ruff_rss_mb']} / "
            f"{row.get('torchfix_rss_mb', '-')} MiB"
        )
        lines.append(
            f"| {row['corpus']} | {row['files']} | {row['lines']:,} | {row['ast_floor_s']:.2f} s | "
            f"{row['nnlint_s']:.2f} s | {row['nnlint_warm_s']:.2f} s | {row['nnlint_file_s']:.2f} s | "
            f"{row['ruff_s']:.2f} s | {torchfix} | {torchfix_file} | {rss} |"
        )
    lines.append("")
    for row in rows:
        for label, value in ratios(row).items():
            sign, target = TARGETS[label]
            if not sign:
                lines.append(f"{row['corpus']}: {label} = {value:.2f}x (reference)")
                continue
            met = value <= target if sign == "<=" else value >= target
            lines.append(
                f"{row['corpus']}: {label} = {value:.2f}x (target {sign} {target:g}x: {'met' if met else 'MISSED'})"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", choices=["timm", "transformers"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-torchfix", action="store_true", help="skip TorchFix")
    parser.add_argument(
        "--torchfix-on", action="append", default=None, help="corpora to run TorchFix on (default: timm only)"
    )
    args = parser.parse_args()
    corpora = args.corpus or ["timm"]
    torchfix_on = set(args.torchfix_on or ["timm"])
    rows = [bench_corpus(name, args.repeat, not args.no_torchfix and name in torchfix_on) for name in corpora]
    text = report(rows)
    print(text)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.json").write_text(json.dumps({"rows": rows, "python": sys.version}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
