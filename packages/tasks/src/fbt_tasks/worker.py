"""``fbt-worker``: start the worker of the runner named by BACKEND, whichever library it uses.

It execs the runner's own console script (``Runner.worker_command``), so the process a user or a
supervisor signals *is* that worker. A runner whose tasks run inside the API has no worker: exit 2.
"""

import os
import sys

from fbt_tasks.registry import configured_runner, configured_settings
from fbt_tasks.scripts import script_path

NO_WORKER_EXIT = 2


def main() -> None:
    runner = configured_runner()
    command = runner.worker_command(configured_settings())
    if command is None:
        print(f"{runner.display_name} has no worker: tasks run inside the API", file=sys.stderr)
        sys.exit(NO_WORKER_EXIT)
    os.execv(script_path(command[0]) or command[0], command)  # noqa: S606 (the runner's fixed argv, no shell)


if __name__ == "__main__":
    main()
