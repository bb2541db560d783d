"""Measuring: how load is sent and what is counted, shared by the scenarios, the floors and the fault pass.

``openloop`` (the open-loop generator, its own process) on ``httpwire`` (its HTTP/1.1 client), ``loadgen`` (the
harness's closed-loop burst for the warm-up and the fault pass), ``api_client`` (the one HTTP client of the public API),
``ledger_reader`` (completions from the ledger), ``sampler`` (CPU and memory per process group), ``stats``
(percentiles, CDFs, spread across repeats) and ``environment`` (what the numbers were measured on, the
runners' own account of their configuration included). Nothing here imports the rest of fbt_bench.
"""
