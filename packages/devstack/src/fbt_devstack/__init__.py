"""Real local services for development, tests and benchmarks: embedded Redis, an SMTP sink, process
supervision, the whole ``Stack`` and ``fbt-run``. Import the modules directly (``fbt_devstack.stack``...)."""
