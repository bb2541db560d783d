"""When things break: fault injection per runner and queue configuration, counted from real effects.

Each cell (runner x QUEUE_CONFIG x fault) runs on a stack: embedded Redis with AOF on, the API, the runner's
workers and our own SMTP sink (so task-error can make it refuse deliveries); for partition and slow-link each on
a host of its own (``fbt_devstack.netns``). A cell's trials share a stack while each leaves it clean
(``trials``). The faults:

- kill-worker     SIGKILL the worker's whole process tree (in-process: the API) mid-burst, start it again.
- deploy          SIGTERM mid-burst, as a rolling deploy does; SIGKILL only after compose's grace period.
- api-deploy      a rolling restart of the API (SIGTERM, the grace period, a new process on the same port)
                  while requests keep arriving at half the slots' email capacity.
- broker-restart  stop Redis mid-burst, keep it down a few seconds, start it again; probe the API meanwhile.
- task-error      every email is refused twice by the sink (a real 451), then accepted.
- broker-crash    SIGKILL Redis mid-enqueue-burst and restart it from its AOF, once per appendfsync policy
                  (everysec, Redis's default; always, the safe one), with the enqueue cost of each.
- broker-full     the broker at its memory limit mid-burst (Redis maxmemory with noeviction, RabbitMQ's memory
                  alarm) for a while, then room again; probe the API meanwhile: it must answer, and quickly.
- partition       the workers (or the API) cut off from the broker's host mid-burst, every packet dropped both
                  ways, past the configuration's redelivery bound; then mended (hosts topology, root).
- slow-link       a drain on the clean broker link, then one on a lossy, jittery link (hosts topology, root).
- delay-past-timeout  emails delayed 2x the runner's visibility timeout (celery/celery#4766): runs per job.
- poison-message  a message no worker can decode on the runner's own queue: where it ends, the log line,
                  whether the worker keeps working.

Outcomes are split: lost (not completed and nowhere in the broker), held (still in the broker, with where
and the redelivery bound it is due by), failed (in the library's failure store), reexecuted,
duplicate_effects (per recipient, with whether the copies share a Message-ID) and skipped_redeliveries
(repeats the send-once guard turned away, from the ledger's ``skipped`` mark: not duplicates). After the
watch, the ledger and mailbox are read once more after ``grace_s``. Each cell runs ``trials`` times, each
trial's fault moment drawn from a seed derived from the run's base seed and recorded with the record. Cells
run ``parallel`` at a time on the benchmark's slot layout: timings are then approximate, counts are not.

The burst is emails, because an email's effect can be counted where it lands: the sink's mailbox, by
Message-ID (the job id). lost = accepted jobs whose email never arrived; duplicate_effects = emails that
arrived more than once; reexecuted = jobs that ran more than once, from the ledger plus the send-once leases
a killed attempt leaves behind in Redis. The fault is injected just after a delivery, half an SMTP delay
later, so it lands mid-send: the case the send-once guard (``fbt_tasks.once``) exists for.

Everything a runner knows about itself (where its messages wait, when it redelivers, why it behaved as it
did) comes from its plugin's ``FaultModel`` (``fbt_tasks.runner``); nothing here names a runner.

- ``model``    what is run: the parameters, the cells and the matrix.
- ``observe``  what happened: the mailbox, the ledger, the send-once leases, the broker's holdings.
- ``inject``   kill-worker, deploy, broker-restart, task-error; ``crash``, ``full``, ``redeploy``, ``partition``,
  ``slowlink`` and ``messages`` the rest;
  ``outage`` the API probe that broker-restart and broker-full share.
- ``trials``   a cell's trials on one stack, while it stays clean; one cell on a fresh stack (``run_cell``).
- ``run``      a whole pass, stacks in parallel, the records and the time left.
"""
