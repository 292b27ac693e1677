"""Real-world corpora for tests and benchmarks: wheels downloaded with pip, never committed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPORA = {
    "timm": "timm==1.0.31",
    "transformers": "transformers==5.23.0",
}


def cache_dir() -> Path:
    """Where corpora are unpacked (``NNLINT_CORPUS_DIR`` or ``.cache/corpora`` in the repo)."""
    return Path(os.environ.get("NNLINT_CORPUS_DIR", REPO / ".cache" / "corpora"))


def corpus(name: str) -> Path:
    """Download (once) and unpack the wheel of ``name``; return the unpacked package directory."""
    requirement = CORPORA[name]
    target = cache_dir() / requirement.replace("==", "-")
    package = target / name
    if package.is_dir():
        return package
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(target), requirement],
        check=True,
    )
    (wheel,) = target.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    wheel.unlink()
    return package
