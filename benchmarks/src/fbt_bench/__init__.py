"""fbt-bench: the side-by-side benchmark behind ``make compare`` and ``make faults``.

Layers, imports pointing down only:

- orchestration: ``cli``, ``harness`` (one run) and ``plan`` (its orders, placement and clock), with what
  they share with the layers below:
  ``profiles`` (the parameter sets), ``topology`` (where a runner is measured), ``progress``,
  ``results`` (the document and its writer) and ``schema`` (its contract).
- ``scenarios``: the six scenarios (accept, drain, steady, email-io, cpu-heavy, mixed) and the floors
  (raw Redis behind the same API, direct call).
- ``faults``: fault injection per runner and queue config. Scenarios and faults never import each other.
- ``measuring``: load generation, the API client, the ledger, resource sampling, statistics, environment.
- ``report``: renders a results document; it reads the floors' names, never runs anything.

Nothing here names a runner: the list comes from the installed plugins (``fbt_tasks.runner``).
"""
