"""``python -m fbt_tasks.health``: is a worker of the runner named by BACKEND alive? Exit 0 if so, else 1.

The same question for every runner, answered by the runner itself (``Runner.worker_ready``), so the devstack
and a healthcheck never name a library.
"""

import sys

from fbt_tasks.registry import configured_runner, configured_settings


def main() -> None:
    runner = configured_runner()
    ready = runner.worker_ready(configured_settings())
    print(f"{runner.display_name}: {'a worker is alive' if ready else 'no worker alive'}")
    sys.exit(0 if ready else 1)


if __name__ == "__main__":
    main()
