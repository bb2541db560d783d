"""The six scenarios, and the floors every runner is compared against on the same paths.

1. accept     the highest open-loop rate POST /log/ takes with p99 under the SLO, and the API's cost
              decomposed: bare route, library enqueue, the project's share (``accept``).
2. drain      N jobs pre-filled through the runner's own client, workers started after (``drain``).
3. steady     open-loop arrivals at fractions of min(accept knee, drain rate): e2e latency (``steady``).
4. email-io   N emails to an SMTP sink that takes ``smtp_delay_ms`` per message (``bursts``).
5. cpu-heavy  image resizes while a probe hits GET /health at a fixed rate (``cpu_heavy``).
6. mixed      80% log, 15% email, 5% resize at a fixed arrival rate (``mixed``).

``registry`` maps the names to the runs, ``context`` is what they share, ``record`` the record they all
produce. The floors (``baselines``): raw Redis behind the same API shape (``floor_app``) with BRPOP consumers
(``baseline_worker``), and direct call; ``enqueue_probe`` enqueues without HTTP in a process of its own.

End-to-end latency is ``finished_at - enqueued_at`` from the ledger (enqueued_at is stamped when the job is
built); completion is always counted from the ledger.
"""
