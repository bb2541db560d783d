"""The two floors every runner is compared against, as a process the harness starts and stops.

``consume``: ``threads`` threads, each a BRPOP loop on one Redis list calling ``run_job``: a queue with no
framework at all (no acks, no retries, no serializer layers), so its cost is the round trip plus the task.

``direct``: build ``n`` jobs and call ``run_job`` on each through a pool of ``threads`` threads, no queue:
the cost of the task itself.

Settings (LEDGER_FILE, REDIS_URL, SMTP_*) come from the environment, exactly as for a runner's worker.
"""

import json
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import redis
import typer

from fbt_tasks.jobs import Job, run_job

# BRPOP wakes at least this often to notice a stop request.
BRPOP_TIMEOUT_S = 1

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def consume(
    redis_url: Annotated[str, typer.Option(help="The Redis the harness pushes to.")],
    queue: Annotated[str, typer.Option(help="The list to BRPOP from.")],
    threads: Annotated[int, typer.Option(min=1, help="Consumer threads (slots).")],
) -> None:
    """BRPOP jobs from ``queue`` and run them until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def loop() -> None:
        client = redis.Redis.from_url(redis_url, socket_timeout=BRPOP_TIMEOUT_S + 5)
        while not stop.is_set():
            popped = client.brpop([queue], timeout=BRPOP_TIMEOUT_S)
            if popped is None:
                continue
            try:
                run_job(json.loads(popped[1]))
            except Exception as exc:  # recorded in the ledger by run_job; a floor has no retries
                print(f"job failed: {exc}", file=sys.stderr, flush=True)

    workers = [threading.Thread(target=loop, name=f"consumer-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    print(f"consuming {queue} with {threads} threads", flush=True)
    for worker in workers:
        worker.join()


@app.command()
def direct(
    kind: Annotated[str, typer.Option(help="write_log or send_email.")],
    n: Annotated[int, typer.Option(min=1, help="Jobs to run.")],
    threads: Annotated[int, typer.Option(min=1, help="Pool threads (slots).")],
) -> None:
    """Call ``run_job`` on ``n`` fresh jobs through a thread pool, then exit."""
    jobs = [job_for(kind, i).to_message() for i in range(n)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(run_job, message) for message in jobs]:
            try:
                future.result()
            except Exception as exc:  # recorded in the ledger by run_job
                print(f"job failed: {exc}", file=sys.stderr, flush=True)


def job_for(kind: str, index: int) -> Job:
    """The job the API would build for request ``index`` of ``kind``."""
    if kind == "send_email":
        job = Job(
            kind=kind, payload={"to": f"floor{index}@example.com", "subject": "Floor", "body": "Baseline"}
        )
        # As in the API: the job id doubles as the Message-ID (and the at-most-once key).
        job.payload["message_id"] = job.id
        return job
    return Job(kind=kind, payload={"message": f"baseline #{index}"})


def main() -> None:
    app()


if __name__ == "__main__":
    main()
