"""The five scenarios, each sent through the public API exactly as a user would, counted from the ledger,
and the floors every runner is compared against.

1. enqueue    open-loop constant arrivals of POST /log/ at several rates (``enqueue``).
2. log-burst  N log tasks as fast as the API takes them (``bursts``).
3. email-io   N emails to an SMTP sink that takes ``smtp_delay_ms`` per message (``bursts``).
4. cpu-heavy  image resizes while a probe hits GET /health at a fixed rate (``cpu_heavy``).
5. mixed      80% log, 15% email, 5% resize at a fixed arrival rate (``mixed``).

``registry`` maps the names to the runs, ``context`` is what they share, ``record`` the record they all
produce. The floors, ``baselines`` (raw Redis, direct call) and the process they start
(``baseline_worker``), produce records of the same shape.

End-to-end latency is ``finished_at - enqueued_at`` from the ledger (enqueued_at is stamped by the API when
it accepts the request); durations run from the first request to the last ledger completion.
"""
