"""The stack's own brokers: the embedded Redis and, when BROKER=rabbitmq, a private RabbitMQ node.

``Stack`` keeps them as ``stack.redis`` / ``stack.rabbitmq`` (None when the deployment's broker is external);
these helpers start, stop and inspect whichever of the two it holds.
"""

from collections.abc import Sequence
from pathlib import Path

from redis import Redis

from fbt_devstack.rabbitmq_server import RabbitMQServer, RabbitMQUnavailable
from fbt_devstack.rabbitmq_tools import external_amqp_url, missing_binary_reason
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.stack_env import StackError
from fbt_tasks.settings import Settings

# RabbitMQ's default vm_memory_high_watermark (a share of the machine's memory); the node starts with it.
RABBITMQ_DEFAULT_WATERMARK = 0.4


def wants_private_rabbitmq(settings: Settings, requested: bool) -> bool:
    """Only when BROKER=rabbitmq and no AMQP_URL is given (then that broker is used, as for Redis); Redis
    still starts beside it (results, the send-once guard)."""
    return (
        requested
        and settings.broker_name == "rabbitmq"
        and external_amqp_url() is None
        and "amqp_url" not in settings.model_fields_set
    )


def start_rabbitmq(workdir: Path, bind: str = "127.0.0.1", argv_prefix: Sequence[str] = ()) -> RabbitMQServer:
    """A private RabbitMQ node under ``workdir`` (never the system one on 5672), listening on ``bind``, its
    processes started through ``argv_prefix`` (a host of its own: ``fbt_devstack.netns``)."""
    reason = missing_binary_reason()
    if reason is not None:
        raise StackError(f"BROKER=rabbitmq: {reason}")
    try:
        return RabbitMQServer(workdir, keep_workdir=True, bind=bind, argv_prefix=argv_prefix).start()
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


def cap_broker_memory(redis: RedisServer | None, rabbitmq: RabbitMQServer | None, headroom_bytes: int) -> str:
    """Put the deployment's broker at its memory limit, as an operator's ceiling would; returns it in words.

    Redis: ``maxmemory`` at what it uses now plus ``headroom_bytes``, with ``noeviction`` (Redis's own
    default policy, and the only one under which a queue's keys are never dropped): once the room is used,
    every command that may grow memory answers an OOM error; reads and deletes still run. RabbitMQ: the
    memory high watermark at one byte, so the node raises its memory alarm at once and blocks every
    connection that publishes until it clears (RabbitMQ's "Memory Alarms" guide); consumers go on.
    """
    if rabbitmq is not None:
        _ctl(rabbitmq, "set_vm_memory_high_watermark", "absolute", "1")
        return "RabbitMQ memory alarm raised (high watermark 1 byte)"
    if redis is None:
        raise StackError("this stack uses an external broker; it cannot cap its memory")
    client = _redis_client(redis)
    try:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", used + headroom_bytes)
    finally:
        client.close()
    room = f", {headroom_bytes // 1000} kB above use" if headroom_bytes else ", what it used then"
    return f"Redis maxmemory {(used + headroom_bytes) / 1e6:.1f} MB{room}, noeviction"


def lift_broker_memory_cap(redis: RedisServer | None, rabbitmq: RabbitMQServer | None) -> None:
    """Undo ``cap_broker_memory``: Redis without a limit, RabbitMQ back at its default watermark (0.4)."""
    if rabbitmq is not None:
        _ctl(rabbitmq, "set_vm_memory_high_watermark", str(RABBITMQ_DEFAULT_WATERMARK))
    elif redis is not None:
        client = _redis_client(redis)
        try:
            client.config_set("maxmemory", 0)
        finally:
            client.close()


def _ctl(rabbitmq: RabbitMQServer, *args: str) -> None:
    done = rabbitmq.cli(rabbitmq.tools.ctl, *args)
    if done.returncode != 0:
        raise StackError(f"rabbitmqctl {' '.join(args)} failed: {done.stdout.strip()[-300:]}")


def _redis_client(redis: RedisServer) -> Redis:
    return Redis.from_url(redis.url, socket_timeout=5.0)
