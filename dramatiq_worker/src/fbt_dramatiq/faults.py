"""What the Dramatiq runner knows about its own behaviour under faults (``fbt_tasks.runner.FaultModel``).

Read by the fault harness: the Redis broker's keys (or RabbitMQ's queues) for our queue, when a killed
worker's messages are requeued, and one sentence per fault on why Dramatiq, configured as ``describe()``
recorded, behaved so.
"""

import json
import uuid
from collections.abc import Mapping
from typing import Any

from dramatiq.common import dq_name, xq_name

from fbt_dramatiq.actors import QUEUE_NAME
from fbt_tasks.fault_words import (
    api_restart,
    crash,
    cut,
    executions,
    full,
    malformed,
    memory_alarm,
    node_crash,
    node_heartbeat,
    outage,
    outlasted,
    slow,
)
from fbt_tasks.holdings import count_ids, inspection_client
from fbt_tasks.runner import BROKER_TITLES, FaultName, FaultOutcome, Holdings
from fbt_tasks.settings import Settings

# RedisBroker's default namespace, which build_broker keeps. dramatiq/brokers/redis/dispatch.lua: queue lists
# and each worker's "__acks__.<worker id>.<queue>" set hold the broker's own redis_message_id; the message
# (with our id as message_id) sits in "<queue>.msgs". Retries wait in the ".DQ" queue, dead letters in the
# ".XQ" zset.
NAMESPACE = "dramatiq"
QUEUE_KEY = f"{NAMESPACE}:{QUEUE_NAME}"
DELAY_KEY = f"{NAMESPACE}:{dq_name(QUEUE_NAME)}"
DEAD_KEY = f"{NAMESPACE}:{xq_name(QUEUE_NAME)}"
ACKS_PATTERN = f"{NAMESPACE}:__acks__.*"
# RabbitMQ requeues on connection close; a second covers the broker noticing the closed socket.
REQUEUE_ON_CLOSE_S = 1.0


def _message_id(body: bytes | str) -> str:
    """Our job id inside a stored message; "" for a body that is not a message (a malformed one)."""
    try:
        return str(json.loads(body).get("message_id", ""))
    except (ValueError, AttributeError):
        return ""


class DramatiqFaults:
    exhausted_to = f"dead-letter queue ({xq_name(QUEUE_NAME)})"

    def message_locations(self, settings: Settings) -> list[str]:
        if settings.broker_name == "rabbitmq":
            queues = (QUEUE_NAME, dq_name(QUEUE_NAME), xq_name(QUEUE_NAME))
            return [f"RabbitMQ queue {name}" for name in queues]
        return [QUEUE_KEY, DELAY_KEY, DEAD_KEY, ACKS_PATTERN]

    def holdings(self, settings: Settings, ids: set[str]) -> Holdings:
        """On RabbitMQ: ready counts per queue, not per id (see ``fbt_tasks.runner.Holdings``)."""
        if settings.broker_name == "rabbitmq":
            return rabbitmq_holdings(settings)
        with inspection_client(settings) as client:
            ours: dict[bytes | str, str] = {}
            for key in (QUEUE_KEY, DELAY_KEY, DEAD_KEY):
                for redis_id, body in client.hgetall(f"{key}.msgs").items():
                    ours[redis_id] = _message_id(body)

            def job_id(member: bytes) -> str:
                return ours.get(member, "")

            held = 0
            for key in client.scan_iter(match=ACKS_PATTERN, count=1000):
                held += count_ids(list(client.smembers(key)), ids, job_id)
            return Holdings(
                queued=count_ids(client.lrange(QUEUE_KEY, 0, -1), ids, job_id),
                held=held,
                scheduled=count_ids(client.lrange(DELAY_KEY, 0, -1), ids, job_id),
                failed=count_ids(client.zrange(DEAD_KEY, 0, -1), ids, job_id),
            )

    def visibility_timeout_s(self, described: Mapping[str, Any]) -> float | None:  # noqa: ARG002 (FaultModel's signature)
        return None  # delayed messages wait on the delay queue and are acked late like any other

    def inject_malformed(self, settings: Settings) -> str:
        """A body Dramatiq's JSON encoder cannot decode, stored and queued as dispatch.lua enqueues."""
        marker = f"poison-{uuid.uuid4().hex}"
        if settings.broker_name == "rabbitmq":
            publish_malformed(settings, marker)
            return marker
        with inspection_client(settings) as client:
            client.hset(f"{QUEUE_KEY}.msgs", marker, f"{{not json {marker}")
            client.rpush(QUEUE_KEY, marker)
        return marker

    def malformed_whereabouts(self, settings: Settings, marker: str) -> str:
        if settings.broker_name == "rabbitmq":
            return rabbitmq_whereabouts(settings)
        with inspection_client(settings) as client:
            if marker.encode() in client.lrange(QUEUE_KEY, 0, -1):
                return f"still in the queue {QUEUE_KEY}"
            if client.zscore(DEAD_KEY, marker) is not None:
                return f"in the dead-letter queue {DEAD_KEY}"
            for key in client.scan_iter(match=ACKS_PATTERN, count=1000):
                if client.sismember(key, marker):
                    return (
                        f"stuck in a worker's acks set ({key.decode()}), not dead-lettered: fetched, never "
                        "decoded, so never acked nor nacked; maintenance requeues it once that worker is dead"
                    )
            if client.hexists(f"{QUEUE_KEY}.msgs", marker):
                return f"its body still in {QUEUE_KEY}.msgs, its id in no queue"
        return "gone"

    def redelivery_bound_s(self, described: Mapping[str, Any]) -> float | None:
        if described.get("broker_name") == "rabbitmq":
            # Requeued by RabbitMQ as soon as the killed worker's connection closes (the kernel closes it).
            return REQUEUE_ON_CLOSE_S
        reliability = described.get("reliability", {})
        chance = float(reliability.get("maintenance_chance_per_million", 1000)) / 1e6
        # Maintenance runs on a random share of broker calls; an idle worker makes about one a second, so
        # three expected waits cover it ~95 % of the time.
        return float(reliability.get("heartbeat_timeout_ms", 60_000)) / 1000 + 3 / chance

    def mechanism(self, fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:
        if fault == "api-deploy":
            return api_restart(result, BROKER_TITLES.get(str(described.get("broker_name", "redis")), "Redis"))
        if fault == "slow-link":
            return slow(result)
        if fault == "partition":
            if described.get("broker_name") == "rabbitmq":
                node = cut(result, "RabbitMQ")
                if result.cut_off == "api":
                    confirms = described.get("reliability", {}).get("confirm_delivery")
                    waits = (
                        "waits for the publisher confirm" if confirms else "writes into the blocked socket"
                    )
                    stuck = (
                        f"pika's BlockingConnection {waits} with no timeout, so "
                        if result.hung_while_out
                        else ""
                    )
                    return stuck + node
                return f"{node_heartbeat(result)}; {node}"
            if result.cut_off == "api":
                return cut(result)
            timeout = described.get("reliability", {}).get("heartbeat_timeout_ms", 60_000) / 1000
            what = (
                f"the {timeout:g} s heartbeat timeout after which Dramatiq requeues a silent worker's unacked "
                "messages"
            )
            told = f"{outlasted(result, self.redelivery_bound_s(described), what)}; {cut(result)}"
            return told + _retry_copy_lost(result, "the cut")
        if described.get("broker_name") == "rabbitmq":
            return rabbitmq_mechanism(fault, described, result)
        rel, r = described.get("reliability", {}), result
        hb_s = rel.get("heartbeat_timeout_ms", 60_000) / 1000
        share = rel.get("maintenance_chance_per_million", 1000) / 1e4
        backoff_s = rel.get("min_backoff_ms", 15_000) / 1000
        retries = f"max_retries {rel.get('max_retries')}, backoff from {backoff_s:g} s"
        if fault == "kill-worker" or (fault == "deploy" and r.killed):
            came_back = f", which did not happen within the {r.watched_s:.0f} s watched" if r.lost else ""
            return (
                "Dramatiq acks late: the killed worker's messages stayed in its acks set until queue "
                f"maintenance, run on {share:g} % of broker calls, found its heartbeat older than {hb_s:g} s "
                "and requeued them" + came_back
            )
        if fault == "deploy":
            return (
                "on SIGTERM Dramatiq requeues prefetched messages and lets running actors finish, then exits"
            )
        if fault == "broker-full":
            told = (
                "Dramatiq enqueues through one Lua script, which a full Redis refuses whole, so a refused message "
                f"was never stored; {full(r)}; " + outage(r, f"the Retries middleware ({retries})")
            )
            return told + _retry_copy_lost(r, "the full Redis") + _stranded(r)
        if fault == "broker-restart":
            told = "Redis's AOF kept the queue and the consumers reconnected; " + outage(
                r, f"the Retries middleware ({retries})"
            )
            return told + _retry_copy_lost(r, "the outage") + _stranded(r)
        if fault == "broker-crash":
            return crash(r) + "; the consumers reconnected" + _stranded(r)
        if fault == "delay-past-timeout":
            return (
                "Dramatiq keeps a delayed message on the delay queue; the worker holding it until due acks it "
                f"late like any other, and nothing redelivers it while that worker heartbeats: {executions(r)}"
            )
        if fault == "poison-message":
            # dramatiq/brokers/redis.py: fetch returns message bodies only and the broker's id for a message
            # lives inside its body, so the consumer has nothing to nack an undecodable one with (Bogdanp/
            # dramatiq#375, open, proposes a fix). It is no dead letter: a restarted worker fetches it again.
            return (
                "Dramatiq's Redis consumer cannot decode the message, logs the error and restarts a second "
                "later, but cannot nack it (the broker's id for a message is inside the body it could not "
                "decode, Bogdanp/dramatiq#375), so it never reaches the dead-letter queue and comes back when "
                "that worker dies; " + malformed(r)
            )
        return (
            f"the Retries middleware retried the refusals ({retries}, doubling with jitter); a message that "
            f"exhausts them goes to the dead-letter queue {xq_name(QUEUE_NAME)}"
        )


def _retry_copy_lost(r: FaultOutcome, met: str) -> str:
    """Why jobs are gone when a retry could not be enqueued: the Retries middleware's copy met ``met``."""
    if not r.lost:
        return ""
    # dramatiq/broker.py emit_after logs a middleware's exception and carries on to the ack.
    verb = "is" if r.lost == 1 else "are"
    return (
        f"; {r.lost} {verb} gone: the Retries middleware retries by enqueueing a copy, that enqueue met {met}, "
        "and Dramatiq logs a failing middleware as critical and acks the original anyway"
    )


def _stranded(r: FaultOutcome) -> str:
    """Why messages can sit in a live worker's acks set after an outage (dramatiq/brokers/redis: the fetch
    script moves ids into the worker's acks set before replying; worker.py restarts a consumer on a connection
    error, dropping the messages it had prefetched; dispatch.lua's maintenance requeues dead workers' acks)."""
    if not r.held:
        return ""
    return (
        f"; {r.held} stayed in a live worker's acks set: the outage cut off a fetch's reply or made a consumer "
        "restart without the messages it had prefetched, and maintenance requeues only a dead worker's acks, so "
        "they come back when that worker stops"
    )


def rabbitmq_holdings(settings: Settings) -> Holdings:
    """Ready messages in our queue, its delay queue and its dead-letter queue (unacked ones are invisible)."""
    from fbt_dramatiq.health import queue_counts

    counts = [queue_counts(settings, name) for name in (QUEUE_NAME, dq_name(QUEUE_NAME), xq_name(QUEUE_NAME))]
    if any(c is None for c in counts):
        raise ConnectionError("RabbitMQ did not answer a passive queue declare")
    ready = [c[0] for c in counts if c is not None]
    return Holdings(queued=ready[0], held=0, scheduled=ready[1], failed=ready[2])


def publish_malformed(settings: Settings, marker: str) -> None:
    """A persistent message whose body is not JSON, published straight onto our RabbitMQ queue."""
    import pika

    from fbt_dramatiq.broker import rabbitmq_parameters

    connection = pika.BlockingConnection(pika.ConnectionParameters(**rabbitmq_parameters(settings)))
    try:
        connection.channel().basic_publish(
            exchange="",
            routing_key=QUEUE_NAME,
            body=f"{{not json {marker}".encode(),
            properties=pika.BasicProperties(delivery_mode=2),
        )
    finally:
        connection.close()


def rabbitmq_whereabouts(settings: Settings) -> str:
    """AMQP cannot look for one message without consuming it: the queue's and dead-letter queue's counts."""
    from fbt_dramatiq.health import queue_counts

    queued, dead = queue_counts(settings, QUEUE_NAME), queue_counts(settings, xq_name(QUEUE_NAME))
    if queued is None or dead is None:
        return "unknown: RabbitMQ did not answer"
    return (
        f"{queued[0]} ready in {QUEUE_NAME} and {dead[0]} in the dead-letter queue {xq_name(QUEUE_NAME)} "
        "(RabbitMQ counts per queue, not per message)"
    )


def rabbitmq_mechanism(fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:
    """Dramatiq on RabbitMQ: the broker returns a dead consumer's unacked messages at once."""
    rel, r = described.get("reliability", {}), result
    backoff_s = rel.get("min_backoff_ms", 15_000) / 1000
    retries = f"max_retries {rel.get('max_retries')}, backoff from {backoff_s:g} s"
    if fault == "kill-worker" or (fault == "deploy" and r.killed):
        return (
            "Dramatiq acks late, so the killed worker's messages were still unacked and RabbitMQ requeued them "
            "as soon as its connection closed; no heartbeat timeout to wait out"
        )
    if fault == "deploy":
        return (
            "on SIGTERM Dramatiq stops consuming, lets running actors finish, and its unacked prefetched "
            "messages return to the queue"
        )
    if fault == "broker-restart":
        confirmed = "confirmed, " if rel.get("confirm_delivery") else ""
        return (
            f"RabbitMQ kept the {confirmed}persistent messages on its durable queues and the consumers reconnected; "
            + outage(r, f"the Retries middleware ({retries})")
        )
    if fault == "broker-full":
        return memory_alarm(
            r,
            "pika's BlockingConnection waits out a blocked connection (its blocked_connection_timeout would "
            "answer sooner, but the node takes the written publish once the alarm clears and Dramatiq "
            "publishes again on a new connection, so a refused job would run several times)",
        )
    if fault == "broker-crash":
        confirmed = "confirmed, " if rel.get("confirm_delivery") else ""
        return (
            node_crash(r, f"{confirmed}persistent messages on durable queues") + "; the consumers reconnected"
        )
    if fault == "delay-past-timeout":
        return f"a delayed message waits on the delay queue and is acked late like any other: {executions(r)}"
    if fault == "poison-message":
        return (
            "Dramatiq logs a message it cannot decode and nacks it without requeue, which RabbitMQ "
            f"dead-letters to {xq_name(QUEUE_NAME)}; " + malformed(r)
        )
    return (
        f"the Retries middleware retried the refusals ({retries}, doubling with jitter); a message that "
        f"exhausts them is dead-lettered to the RabbitMQ queue {xq_name(QUEUE_NAME)}"
    )


FAULTS = DramatiqFaults()
