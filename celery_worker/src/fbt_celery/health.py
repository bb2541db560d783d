"""Is a Celery worker of this project alive? ``celery inspect ping`` semantics, bounded by a short timeout.

``python -m fbt_tasks.health`` (BACKEND=celery, the compose healthcheck) exits 0 when at least one worker answered.
"""

from fbt_celery.app import BROKER_ERRORS, create_app
from fbt_celery.worker import NODE_PREFIX
from fbt_tasks.settings import Settings

# Celery's own default for control.ping: replies are collected for this long, then counted.
PING_TIMEOUT_S = 1.0


def worker_ready(settings: Settings) -> bool:
    """True if at least one ``fbt-celery-*`` worker answers a broadcast ping within PING_TIMEOUT_S."""
    app = create_app(settings)
    # Named rather than spelled in the except clause: mypy rejects a starred tuple there.
    errors: tuple[type[BaseException], ...] = (*BROKER_ERRORS, ValueError)
    try:
        replies = app.control.ping(timeout=PING_TIMEOUT_S)
    except errors:
        # ValueError: seen in trials right after a worker was SIGKILLed (safe queue config): kombu 5.7's BRPOP
        # reader, in the synchronous drain_events path the ping reply uses, read a stray "PONG" and failed
        # to unpack it. The broadcast failed; report "no answer this time" and let the caller poll again.
        return False
    finally:
        app.close()
    # Workers of other apps on the same Redis answer too; count only ours.
    return any(
        node.startswith(f"{NODE_PREFIX}-") and answer.get("ok") == "pong"
        for reply in replies
        for node, answer in reply.items()
    )
