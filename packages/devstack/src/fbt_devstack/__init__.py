"""Real local services for development, tests and benchmarks: embedded Redis, a private RabbitMQ node (from an
installed rabbitmq-server), an SMTP sink, process supervision, the whole ``Stack`` and ``fbt-run``. Import the
modules directly (``fbt_devstack.stack``, ``fbt_devstack.rabbitmq_server``...)."""
