"""``fbt-worker``: start the worker of the runner named by BACKEND, whichever library it uses.

It execs the runner's own console script (``Runner.worker_command``), so the process a user or a
supervisor signals *is* that worker. A runner whose tasks run inside the API has no worker: exit 2.
"""

import os
import shutil
import sys
from pathlib import Path

from fbt_tasks.registry import configured_runner, configured_settings

NO_WORKER_EXIT = 2


def resolve(script: str) -> str:
    """A console script's path: the one beside this interpreter (the venv's) first, else on PATH."""
    beside = Path(sys.executable).with_name(script)
    if beside.is_file():
        return str(beside)
    return shutil.which(script) or script


def main() -> None:
    runner = configured_runner()
    command = runner.worker_command(configured_settings())
    if command is None:
        print(f"{runner.display_name} has no worker: tasks run inside the API", file=sys.stderr)
        sys.exit(NO_WORKER_EXIT)
    os.execv(resolve(command[0]), command)  # noqa: S606 (the runner's fixed argv, no shell)


if __name__ == "__main__":
    main()
