"""``write_log`` and ``notify``: the tutorial's two logging tasks, safe under concurrent writers."""

from fbt_tasks.lines import append_line
from fbt_tasks.settings import get_settings


def write_log(message: str) -> None:
    append_line(get_settings().log_file, message)


def notify(user: str) -> None:
    write_log(f"Notification sent to {user}")
