"""The module the ``dramatiq`` CLI loads: ``dramatiq fbt_dramatiq.global_broker --processes N --threads M``.

Importing it builds the broker from the environment and installs it as Dramatiq's global broker, which is
what the CLI looks for. Only worker processes import this module; the API builds its own broker.
"""

import dramatiq

from fbt_dramatiq.broker import build_broker
from fbt_tasks.registry import configured_settings

broker = build_broker(configured_settings(), for_workers=True)
dramatiq.set_broker(broker)
