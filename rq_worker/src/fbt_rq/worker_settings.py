"""The settings module for ``rq worker -c fbt_rq.worker_settings`` (RQ docs: Workers, "Using a Config File").

Importing it is the point. RQ's docs (Workers, "Performance Notes"): a fork-per-job worker pays for every
module imported after the fork again on every job, so import them before the fork. ``rq worker`` imports this
module before it starts working, so each work-horse is forked with the job functions, Pillow, pydantic and
the mail code already loaded instead of importing them (about 0.3 s) per job.
"""

import fbt_rq.jobs  # noqa: F401 - imported for its side effect: preloading before the fork
from fbt_rq.queue_configs import QUEUE_NAME

# The queue to listen on when none is given on the command line (fbt-worker-rq always gives it).
QUEUES = [QUEUE_NAME]
