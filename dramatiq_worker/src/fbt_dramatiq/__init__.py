"""Dramatiq runner on the Redis broker: ``backend`` for the API, ``fbt-worker-dramatiq`` for the workers."""
