"""What the Celery runner knows about its own behaviour under faults (``fbt_tasks.runner.FaultModel``).

Read by the fault harness: where kombu's Redis transport (or RabbitMQ) keeps messages, when a killed
worker's messages come back, and one sentence per fault on why Celery, configured as ``describe()``
recorded, behaved so.
"""

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any

import amqp.exceptions
import kombu
import redis
from celery.app.defaults import DEFAULTS as CELERY_DEFAULTS
from celery.backends.base import KeyValueStoreBackend
from kombu.transport.redis import Channel as RedisChannel

from fbt_celery.queue_configs import queue_config_for
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
from fbt_tasks.holdings import INSPECTION_TIMEOUT_S, count_ids, inspection_client
from fbt_tasks.runner import BROKER_TITLES, FaultName, FaultOutcome, Holdings
from fbt_tasks.settings import Settings

# kombu's Redis transport: the queue is a list named after Celery's default queue, delivered-unacked
# messages wait in one hash; the Redis result backend keeps each task's state under a prefixed key.
QUEUE_KEY: str = CELERY_DEFAULTS["task_default_queue"]
UNACKED_KEY: str = RedisChannel.unacked_key
RESULT_KEY_PREFIX: str = KeyValueStoreBackend.task_keyprefix


# RabbitMQ requeues on connection close; a second covers the broker noticing the closed socket.
REQUEUE_ON_CLOSE_S = 1.0


def stores_results(settings: Settings) -> bool:
    """Does the queue config in force keep a result backend? ``defaults`` has none, as Celery ships."""
    return queue_config_for(settings).value("result_backend") is not None


def recorded_results(described: Mapping[str, Any]) -> bool:
    """Did the run ``describe()`` recorded keep a result backend ("Redis", or "none (...)")?"""
    return not str(described.get("result_backend", "Redis")).startswith("none")


def failure_kept(described: Mapping[str, Any], where: str = "the result backend") -> str:
    """Where a task that failed for good is kept, for a mechanism sentence."""
    if recorded_results(described):
        return f"is stored as FAILURE in {where} (visible through /jobs)"
    return (
        "leaves no trace but the worker log (no result backend, Celery's default: /jobs reads queued; "
        "the ledger has the failed attempts)"
    )


def rabbitmq_queue_depth(amqp_url: str, queue: str) -> int:
    """Ready messages in ``queue`` (0 before it exists), by a passive declare that consumes nothing.

    AMQP shows neither message ids nor unacked messages without consuming, so this is the queue's count.
    """
    with kombu.Connection(amqp_url, connect_timeout=INSPECTION_TIMEOUT_S) as conn:
        try:
            _name, ready, _consumers = conn.default_channel.queue_declare(queue, passive=True)
        except amqp.exceptions.NotFound:
            return 0
        return int(ready)


def publish_malformed(amqp_url: str, marker: str) -> None:
    """A message whose JSON body does not parse and without a "task" header, straight onto Celery's queue."""
    with kombu.Connection(amqp_url, connect_timeout=INSPECTION_TIMEOUT_S) as conn:
        conn.Producer().publish(
            f"{{not json {marker}",
            exchange="",
            routing_key=QUEUE_KEY,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            headers={},
        )


def failed_results(client: redis.Redis, ids: set[str]) -> int:
    """How many of ``ids`` the Redis result backend holds as FAILURE."""
    states = client.mget([f"{RESULT_KEY_PREFIX}{job_id}" for job_id in ids]) if ids else []
    return sum(1 for raw in states if raw and json.loads(raw).get("status") == "FAILURE")


def celery_task_id(raw: bytes) -> str:
    message = json.loads(raw)
    # kombu's unacked hash stores [message, exchange, routing key]; the queue list stores the message.
    message = message[0] if isinstance(message, list) else message
    return str(message.get("headers", {}).get("id", ""))


class CeleryFaults:
    # One attribute for every queue config (the harness reads it without settings): safe keeps a result
    # backend, defaults (Celery out of the box) none.
    exhausted_to = (
        "result backend (FAILURE) where the queue config keeps one (safe); without one (defaults, Celery's "
        "default) only the worker log; no dead-letter queue"
    )

    def message_locations(self, settings: Settings) -> list[str]:
        if settings.broker_name == "rabbitmq":
            results = [f"Redis {RESULT_KEY_PREFIX}* (results)"] if stores_results(settings) else []
            return [f"RabbitMQ queue {QUEUE_KEY} (ready and unacked)", *results]
        return [QUEUE_KEY, UNACKED_KEY]

    def holdings(self, settings: Settings, ids: set[str]) -> Holdings:
        """On RabbitMQ: the queue's ready count, not per id (see ``fbt_tasks.runner.Holdings``).

        ``failed``: the FAILURE results among ``ids``; 0 without a result backend, where nothing keeps them.
        """
        if settings.broker_name == "rabbitmq":
            failed = 0
            if stores_results(settings):
                with inspection_client(settings) as client:
                    failed = failed_results(client, ids)
            # Unacked messages are invisible over AMQP; they return to ready when their consumer's
            # connection closes, so only ready ones are counted.
            ready = rabbitmq_queue_depth(settings.amqp_url, QUEUE_KEY)
            return Holdings(queued=ready, held=0, scheduled=0, failed=failed)
        with inspection_client(settings) as client:
            return Holdings(
                queued=count_ids(client.lrange(QUEUE_KEY, 0, -1), ids, celery_task_id),
                held=count_ids(client.hvals(UNACKED_KEY), ids, celery_task_id),
                scheduled=0,  # a retry with a countdown is held by a worker (unacked) until it is due
                failed=failed_results(client, ids) if stores_results(settings) else 0,
            )

    def visibility_timeout_s(self, described: Mapping[str, Any]) -> float | None:
        if described.get("broker_name") == "rabbitmq":
            return None  # RabbitMQ redelivers on a closed connection, never after a timer
        return float(described.get("visibility_timeout_s", 3600))

    def inject_malformed(self, settings: Settings) -> str:
        """A kombu envelope whose JSON body does not parse, LPUSHed as kombu's Redis transport publishes
        (on RabbitMQ: published straight to the queue)."""
        marker = f"poison-{uuid.uuid4().hex}"
        if settings.broker_name == "rabbitmq":
            publish_malformed(settings.amqp_url, marker)
            return marker
        body = base64.b64encode(f"{{not json {marker}".encode()).decode()
        envelope = {
            "body": body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            # No "task" header: Celery has to decode the body to find the task, and cannot.
            "headers": {},
            "properties": {
                "body_encoding": "base64",
                "delivery_tag": marker,
                "delivery_info": {"exchange": "", "routing_key": QUEUE_KEY},
                "delivery_mode": 2,
                "priority": 0,
            },
        }
        with inspection_client(settings) as client:
            client.lpush(QUEUE_KEY, json.dumps(envelope))
        return marker

    def malformed_whereabouts(self, settings: Settings, marker: str) -> str:
        if settings.broker_name == "rabbitmq":
            # AMQP cannot look for one message without consuming it: the queue's count is all there is.
            ready = rabbitmq_queue_depth(settings.amqp_url, QUEUE_KEY)
            return (
                f"queue {QUEUE_KEY} holds {ready} ready messages (RabbitMQ cannot show which)"
                if ready
                else f"not in queue {QUEUE_KEY}: taken by the worker (no dead-letter queue)"
            )
        with inspection_client(settings) as client:
            if any(marker.encode() in raw for raw in client.lrange(QUEUE_KEY, 0, -1)):
                return f"still in the queue {QUEUE_KEY}"
            if client.hget(UNACKED_KEY, marker) is not None:
                return f"delivered and unacked in {UNACKED_KEY}"
        return "discarded: acked after the decode error was logged (no dead-letter queue)"

    def redelivery_bound_s(self, described: Mapping[str, Any]) -> float | None:
        if described.get("broker_name") == "rabbitmq":
            # The broker requeues a consumer's unacked messages as soon as its connection closes, which the
            # kernel does at once for a killed process: only the requeue itself is left to wait for.
            return REQUEUE_ON_CLOSE_S
        # kombu sweeps the unacked hash every unacked_sweep_s and restores entries older than the timeout.
        return float(described.get("visibility_timeout_s", 3600)) + float(
            described.get("unacked_sweep_s", 100)
        )

    def mechanism(self, fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:
        if fault == "api-deploy":
            return api_restart(result, BROKER_TITLES.get(str(described.get("broker_name", "redis")), "Redis"))
        if fault == "slow-link":
            return slow(result)
        if fault == "partition":
            vt, sweep = described.get("visibility_timeout_s", 3600), described.get("unacked_sweep_s", 100)
            if described.get("broker_name") == "rabbitmq":
                return _cut_from_node(described, result)
            if result.cut_off == "api" or not described.get("acks_late"):
                told = (
                    "Celery acks a message when a worker takes it (acks_late off) and retries nothing: a task "
                    "whose Redis calls timed out during the cut failed, and nothing runs it again"
                )
                return cut(result) if result.cut_off == "api" else f"{told}; {cut(result)}"
            what = (
                f"the {vt} s visibility timeout after which kombu restores an unacked message "
                f"(swept every {sweep} s)"
            )
            return f"{outlasted(result, self.redelivery_bound_s(described), what)}; {cut(result)}"
        if described.get("broker_name") == "rabbitmq":
            return rabbitmq_mechanism(fault, described, result)
        d, r = described, result
        vt, sweep = d.get("visibility_timeout_s", 3600), d.get("unacked_sweep_s", 100)
        retries = d.get("retries", "none")
        if fault == "kill-worker" or (fault == "deploy" and r.killed):
            if d.get("acks_late"):
                told = (
                    "Celery acks late, so the killed worker's messages stayed in kombu's unacked hash and were "
                    f"redelivered once the {vt} s visibility timeout passed (swept every {sweep} s)"
                )
                if r.lost:
                    # kombu/transport/redis.py: BRPOP (or RPOP) takes the message, QoS.append records it after.
                    told += (
                        f"; {r.lost} never came back: kombu takes a message off the list and records it as "
                        "unacked in a second command, so a worker killed between the two takes the message "
                        "with it (celery/celery#7950)"
                    )
                return told
            return (
                "Celery acks a message when its task starts, so the running tasks were gone at the kill, and "
                f"prefetched messages wait in kombu's unacked hash for the {vt} s visibility timeout, longer "
                f"than the {r.watched_s:.0f} s watched"
            )
        if fault == "deploy":
            return (
                "SIGTERM is Celery's warm shutdown: the pool finishes the tasks it is running and unacked "
                "prefetched messages go back to the queue when the worker closes its connection"
            )
        if fault == "broker-full":
            told = (
                "kombu publishes a task with one LPUSH, which a full Redis refuses, so a refused task was never "
                f"stored; {full(r)}"
            )
            if r.lost:
                told += (
                    f"; {r.lost} gone: kombu takes a message off the list and records it as unacked in a second "
                    "write, and a message whose record Redis refused was in neither (celery/celery#7950)"
                )
            if r.held or r.worker_exited:
                told += (
                    "; when Redis refused the worker's own write to kombu's unacked index, the worker logged "
                    "'Unrecoverable error' and shut down, a shutdown that can hang with the process still up and "
                    "consuming nothing (celery/celery#5716, open): its tasks wait until the worker is restarted"
                )
            return told
        if fault == "broker-restart":
            told = "Redis's AOF kept the queue and the worker reconnected; " + outage(r, "autoretry_for")
            if r.lost:
                told += (
                    f"; {r.lost} gone: kombu takes a message off the list and records it as unacked in a second "
                    "command, and a message taken just before the outage was never recorded (celery/celery#7950)"
                )
            if held := r.unacked:
                told += (
                    f"; {held} messages it had prefetched before the outage stay in kombu's unacked hash "
                    f"until the {vt} s visibility timeout"
                )
            return told
        if fault == "broker-crash":
            if r.lost and r.appendfsync == "always":
                # kombu/transport/redis.py: BRPOP takes the message, QoS.append records it as unacked afterwards.
                return (
                    f"{r.lost} jobs the API had acknowledged were gone although appendfsync always had them on "
                    "disk: kombu's Redis transport takes a message with BRPOP and records it as unacked in a "
                    "second command, so a Redis SIGKILL between the two loses a delivered message"
                )
            return crash(r) + "; the worker and the API reconnected to the restarted server"
        if fault == "delay-past-timeout":
            if (r.delay_s or 0) > vt:
                return (
                    "a countdown task waits in a worker as an unacked ETA message, so kombu restored it to the "
                    f"queue each time the {vt} s visibility timeout passed and it was delivered again "
                    f"(celery/celery#4766): {executions(r)}"
                )
            return f"the countdown was shorter than the {vt} s visibility timeout: {executions(r)}"
        if fault == "poison-message":
            return "Celery logs a message body it cannot decode and acks it so it cannot loop; " + malformed(
                r
            )
        if retries != "none":
            return (
                f"autoretry_for retried the SMTP refusals ({retries}); a task that exhausts them "
                f"{failure_kept(d)}, and Celery has no dead-letter queue"
            )
        return (
            f"Celery retries nothing by default: the first refusal ended the task, which {failure_kept(d)}, "
            "and there is no dead-letter queue"
        )


def rabbitmq_mechanism(fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:
    """Celery on RabbitMQ: the broker, not a timeout, returns a dead consumer's unacked messages."""
    d, r = described, result
    queue = f"{d.get('queue_type', 'classic')} queue"
    if fault == "kill-worker" or (fault == "deploy" and r.killed):
        if d.get("acks_late"):
            return (
                "Celery acks late, so the killed worker's messages were still unacked and RabbitMQ requeued "
                f"them on the {queue} as soon as the worker's connection closed"
            )
        return (
            "Celery acks a message when its task starts, so the running tasks were gone at the kill; its "
            "prefetched, still unacked messages RabbitMQ requeued as soon as the connection closed"
        )
    if fault == "deploy":
        return (
            "SIGTERM is Celery's warm shutdown: the pool finishes the tasks it is running and RabbitMQ requeues "
            "the unacked prefetched messages when the worker closes its connection"
        )
    if fault == "broker-restart":
        kept = "persistent messages on a durable" if d.get("delivery_mode") in (2, "persistent") else "a"
        return f"RabbitMQ kept {kept} {queue} across the restart and the worker reconnected; " + outage(
            r, "autoretry_for"
        )
    if fault == "broker-full":
        return memory_alarm(r, "py-amqp waits for the publisher confirm with no timeout")
    if fault == "broker-crash":
        confirmed = "confirmed, " if d.get("confirm_publish") else ""
        return (
            node_crash(r, f"{confirmed}persistent messages on a durable {queue}") + "; the worker reconnected"
        )
    if fault == "delay-past-timeout":
        return (
            f"RabbitMQ has no visibility timeout to pass, so a countdown is not redelivered: {executions(r)}"
        )
    if fault == "poison-message":
        return "Celery logs a message body it cannot decode and acks it so it cannot loop; " + malformed(r)
    kept = failure_kept(d, "the Redis result backend")
    if d.get("retries", "none") != "none":
        return (
            f"autoretry_for retried the SMTP refusals ({d['retries']}); a task that exhausts them {kept}, "
            "and Celery declares no dead-letter queue"
        )
    return (
        f"Celery retries nothing by default: the first refusal ended the task, which {kept}, and there is "
        "no dead-letter queue"
    )


FAULTS = CeleryFaults()


def _cut_from_node(described: Mapping[str, Any], r: FaultOutcome) -> str:
    """A partition between one host and the RabbitMQ node, as measured, with what explains a loss or a hold."""
    node = cut(r, "RabbitMQ")
    if r.cut_off == "api":
        if r.lost and not described.get("confirm_publish"):
            return (
                "without publisher confirms apply_async returns once the message is in the socket's buffer, so "
                f"what the API wrote into the cut connection went with it; {node}"
            )
        return node
    told = f"{node_heartbeat(r)}; {node}"
    if r.held:
        told += (
            "; they were still queued after the link was back: the worker had not resumed consuming, as "
            "reported upstream after dropped packets (celery/celery#4758, open)"
        )
    return told
