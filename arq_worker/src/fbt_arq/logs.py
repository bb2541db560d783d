"""arq's own log config for ``arq --custom-log-dict``, with one change: job arguments stay out of the log.

arq logs every job start as ``<function>(<repr of its arguments>)``: for us the message, with the recipient's
email address. The other runners keep arguments out of their logs too (fbt_rq: a fixed description). Every
other line, and the format, is arq's ``default_log_config``.
"""

import logging
from typing import Any

from arq.logs import default_log_config

# arq/worker.py run_job: the line logged when a job starts; its third argument is the arguments' repr.
JOB_START_FORMAT = "%6.2fs → %s(%s)%s"


class HideJobArguments(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == JOB_START_FORMAT and isinstance(record.args, tuple) and len(record.args) == 4:
            waited, ref, _arguments, extra = record.args
            record.args = (waited, ref, "…", extra)
        return True


def log_config(verbose: bool = False) -> dict[str, Any]:
    config = default_log_config(verbose)
    config["filters"] = {"hide_job_arguments": {"()": HideJobArguments}}
    config["handlers"]["arq.standard"]["filters"] = ["hide_job_arguments"]
    return config


LOG_CONFIG = log_config()
