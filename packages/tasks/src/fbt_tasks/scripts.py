"""Where an installed console script is: the one beside this interpreter (its virtualenv's) first.

A runner starts its library's CLI (``celery``, ``rq``, ``dramatiq`` ...) and the devstack the project's own
(``fbt-api``, ``fbt-worker-<name>``); all of them ask here, so a venv's script wins over one on PATH.
"""

import shutil
import sys
from pathlib import Path


def script_path(name: str) -> str | None:
    """The console script ``name`` beside this interpreter, else on PATH; None when neither has it."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def console_script(name: str, module: str) -> list[str]:
    """The argv prefix that runs console script ``name``: its path, else ``python -m module`` (the same CLI for
    an environment installed without console scripts)."""
    found = script_path(name)
    return [found] if found else [sys.executable, "-m", module]


def python_module(module: str, *args: str) -> tuple[str, ...]:
    """``python -m module args``, with this interpreter."""
    return (sys.executable, "-m", module, *args)
