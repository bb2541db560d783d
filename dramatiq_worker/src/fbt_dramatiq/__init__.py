"""Dramatiq runner on the Redis or RabbitMQ broker: ``backend`` for the API, ``fbt-worker-dramatiq`` for the workers."""
