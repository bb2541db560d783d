"""The stack's own brokers: the embedded Redis and, when BROKER=rabbitmq, a private RabbitMQ node.

``Stack`` keeps them as ``stack.redis`` / ``stack.rabbitmq`` (None when the deployment's broker is external);
these helpers start, stop and inspect whichever of the two it holds.
"""

from pathlib import Path

from fbt_devstack.rabbitmq_server import RabbitMQServer, RabbitMQUnavailable
from fbt_devstack.rabbitmq_tools import external_amqp_url, missing_binary_reason
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.stack_env import StackError
from fbt_tasks.settings import Settings


def wants_private_rabbitmq(settings: Settings, requested: bool) -> bool:
    """Only when BROKER=rabbitmq and no AMQP_URL is given (then that broker is used, as for Redis); Redis
    still starts beside it (results, the send-once guard)."""
    return (
        requested
        and settings.broker_name == "rabbitmq"
        and external_amqp_url() is None
        and "amqp_url" not in settings.model_fields_set
    )


def start_rabbitmq(workdir: Path) -> RabbitMQServer:
    """A private RabbitMQ node under ``workdir`` (never the system one on 5672)."""
    reason = missing_binary_reason()
    if reason is not None:
        raise StackError(f"BROKER=rabbitmq: {reason}")
    try:
        return RabbitMQServer(workdir, keep_workdir=True).start()
    except (RabbitMQUnavailable, TimeoutError, RuntimeError) as exc:
        raise StackError(f"the RabbitMQ node did not start: {exc}") from exc


def broker_pids(redis: RedisServer | None, rabbitmq: RabbitMQServer | None) -> list[int]:
    """The brokers' processes while they run (for a resource sampler)."""
    return [
        *([pid] if redis is not None and (pid := redis.pid) is not None else []),
        *(rabbitmq.pids() if rabbitmq is not None else []),
    ]


def broker_exits(redis: RedisServer | None, rabbitmq: RabbitMQServer | None) -> dict[str, int]:
    """Brokers that died without being stopped, with their exit status."""
    dead = {}
    if redis is not None and (code := redis.returncode) is not None:
        dead["redis"] = code
    if rabbitmq is not None and (code := rabbitmq.returncode) is not None:
        dead["rabbitmq"] = code
    return dead


def stop_broker(redis: RedisServer | None, rabbitmq: RabbitMQServer | None) -> None:
    """Stop the deployment's broker gracefully (RabbitMQ when BROKER=rabbitmq, else Redis); data survives."""
    if rabbitmq is not None:
        rabbitmq.stop()
    elif redis is not None:
        redis.stop()
    else:
        raise StackError("this stack uses an external broker; it cannot stop it")


def kill_broker(redis: RedisServer | None, rabbitmq: RabbitMQServer | None) -> None:
    """Crash the deployment's broker: SIGKILL its whole process tree, no clean shutdown; data stays on disk."""
    if rabbitmq is not None:
        rabbitmq.kill()
    elif redis is not None:
        redis.kill()
    else:
        raise StackError("this stack uses an external broker; it cannot kill it")


def start_broker(redis: RedisServer | None, rabbitmq: RabbitMQServer | None) -> None:
    """Start the broker ``stop_broker`` stopped (or ``kill_broker`` killed), on the same ports and data."""
    if rabbitmq is not None:
        rabbitmq.start()
    elif redis is not None:
        redis.start()
    else:
        raise StackError("this stack uses an external broker; it cannot start it")
