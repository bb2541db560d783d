"""The tasks, written once: plain typed functions that import no queue library."""

from fbt_tasks.images import resize_image
from fbt_tasks.jobs import TASKS, Job, JobState, run_job
from fbt_tasks.logfile import notify, write_log
from fbt_tasks.mailer import send_email

__all__ = ["TASKS", "Job", "JobState", "notify", "resize_image", "run_job", "send_email", "write_log"]
