"""How to add one of nnlint's extras (``torch``, ``lsp``): the one install hint every error message gives.

nnlint is installed from a clone or a git URL, not from an index, so ``pip install 'nnlint[torch]'``
would not work. The hint names the place this nnlint was installed from (PEP 610's
``direct_url.json``), or else the packages the extra adds.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

DISTRIBUTION = "nnlint"


def missing_extra(extra: str, what: str) -> str:
    """The one-line error for ``what`` (``--verify``, ``the language server``) lacking ``extra``."""
    return f"{what} needs nnlint's [{extra}] extra: {install_command(extra)}"


def install_command(extra: str) -> str:
    """A pip command that adds ``extra`` to this environment, for the way nnlint was installed here."""
    if not _installed():  # run from a clone without installing it
        return f"pip install -e {shlex.quote(f'{Path(__file__).resolve().parent.parent}[{extra}]')}"
    origin = _direct_url()
    command = _from_origin(origin, extra) if origin else None
    if command:
        return command
    requirements = _extra_requirements(extra)  # installed from an index or a wheel: add what the extra adds
    return "pip install " + " ".join(shlex.quote(requirement) for requirement in requirements or [extra])


def _from_origin(origin: dict, extra: str) -> str | None:
    """The command for a PEP 610 record: a local directory, a VCS checkout or an archive."""
    url = origin.get("url", "")
    if "dir_info" in origin and url.startswith("file:"):
        path = unquote(urlparse(url).path)
        editable = "-e " if origin["dir_info"].get("editable") else ""
        return f"pip install {editable}{shlex.quote(f'{path}[{extra}]')}"
    if "vcs_info" in origin:
        vcs = origin["vcs_info"]
        revision = vcs.get("commit_id") or vcs.get("requested_revision")
        location = f"{vcs.get('vcs', 'git')}+{url}" + (f"@{revision}" if revision else "")
        return f"pip install {shlex.quote(f'{DISTRIBUTION}[{extra}] @ {location}')}"
    if "archive_info" in origin and url:
        return f"pip install {shlex.quote(f'{DISTRIBUTION}[{extra}] @ {url}')}"
    return None


def _installed() -> bool:
    try:
        metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    return True


def _direct_url() -> dict | None:
    """This distribution's ``direct_url.json`` (None when installed from an index, or not installed)."""
    try:
        text = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None


def _extra_requirements(extra: str) -> list[str]:
    """The requirements ``extra`` adds, from the installed metadata (``torch>=2.1``, ``numpy``)."""
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    marker = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    return [
        requirement.split(";")[0].strip().replace(" ", "") for requirement in requires if marker.search(requirement)
    ]
