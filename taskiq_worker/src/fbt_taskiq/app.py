"""What ``taskiq worker fbt_taskiq.app:broker`` imports: the broker for this process's settings, tasks registered."""

from fbt_taskiq.broker import build_broker
from fbt_taskiq.tasks import register
from fbt_tasks.registry import configured_settings

broker = build_broker(configured_settings())
register(broker)
