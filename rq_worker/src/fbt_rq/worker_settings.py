"""The settings module for ``rq worker -c fbt_rq.worker_settings`` (RQ docs: Workers, "Using a Config File").

Importing it is the point. RQ's docs (Workers, "Performance Notes"): a fork-per-job worker pays for every
module imported after the fork again on every job, so import them before the fork. ``rq worker`` imports this
module before it starts working, so each work-horse is forked with the job functions, Pillow, pydantic and
the mail code already loaded instead of importing them (about 0.3 s) per job.

Importing is not all of it: what ``run_job`` builds lazily, once per process, is built once per job in a
work-horse, because the child's copy is thrown away when it exits. So this module also builds those here,
in the worker process, before it forks (``warm``). RQ reads every UPPERCASE name of this module as a
setting, hence the lowercase names.
"""

import codecs
import gc

from PIL import Image

import fbt_rq.jobs  # noqa: F401 - imported for its side effect: preloading before the fork
from fbt_rq.queue_configs import QUEUE_NAME
from fbt_tasks import once
from fbt_tasks.settings import get_settings


def warm() -> None:
    """Build, in the process that forks, what ``run_job`` would otherwise build in every forked work-horse."""
    # Every task reads get_settings(), an lru_cache: Settings() reads the environment and .env and validates
    # every field, which a cold work-horse would redo per job.
    settings = get_settings()
    # send_email's send-once guard keeps one Redis client per process (fbt_tasks.once, an lru_cache on the
    # same arguments mailer.prepare passes). Building it opens no connection, and redis-py gives a forked
    # child a fresh pool, so the work-horse inherits the object but never the parent's sockets.
    if settings.email_send_once:
        once._client(settings.redis_url, settings.redis_socket_timeout_s)
    # Pillow imports its file-format plugins on the first open or save in a process; resize_image does both.
    # preinit first keeps the usual formats first in the order Image.open tries them, as in a cold process.
    Image.preinit()
    Image.init()
    # The first getaddrinfo of a host name in a process looks up the "idna" codec (importing encodings.idna,
    # stringprep and unicodedata): smtplib's and redis-py's connects both do one.
    codecs.lookup("idna")
    # What is built so far lives as long as the worker: move it out of the collector's reach, as the gc docs
    # advise before fork() without exec(), so a collection in a work-horse neither walks nor copies it.
    gc.freeze()


warm()

# The queue to listen on when none is given on the command line (fbt-worker-rq always gives it).
QUEUES = [QUEUE_NAME]
