"""The installed runners, and the one the settings choose: the only module that reads the ``fbt.backends``
entry points or loads a runner's plugin.

``Settings`` is plain data read from the environment (``fbt_tasks.settings``); nothing there knows which
runners exist. A process that serves or runs a runner (the API, a worker's entry point, the devstack, the
harness) builds its settings with ``configure``: BACKEND must name an installed runner, and BROKER, when
unset, becomes that runner's default broker. A task never needs either, so a forked work-horse that only
runs tasks never scans the entry points nor imports a plugin.
"""

from functools import cache
from importlib.metadata import entry_points

from fbt_tasks.backend import Backend
from fbt_tasks.runner import Runner
from fbt_tasks.settings import Settings, get_settings

ENTRY_POINT_GROUP = "fbt.backends"


class UnknownRunner(ValueError):
    """BACKEND names no installed runner; the message lists the installed ones."""


class UnsupportedBroker(ValueError):
    """BROKER names a broker the runner does not run on; the message lists the ones it does."""


@cache
def installed_runners() -> tuple[str, ...]:
    """The names registered under the ``fbt.backends`` entry points, sorted."""
    return tuple(sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}))


@cache
def load_runner(name: str) -> Runner:
    """The runner registered as ``name``; UnknownRunner with the installed names if there is none."""
    installed = ", ".join(installed_runners()) or "none"
    if not name:
        raise UnknownRunner(f"BACKEND is not set; installed runners: {installed}")
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        raise UnknownRunner(f"BACKEND={name!r} is not installed; installed runners: {installed}")
    runner = next(iter(found)).load()
    if not isinstance(runner, Runner):
        raise TypeError(f"entry point {name!r} in {ENTRY_POINT_GROUP} is not a Runner: {runner!r}")
    return runner


def configure(settings: Settings) -> Settings:
    """``settings`` checked against the installed runners, with BROKER defaulted to the runner's first.

    Raises UnknownRunner or UnsupportedBroker with the choices a user has, before anything starts.
    """
    brokers = load_runner(settings.backend).brokers
    if settings.broker is None:
        return settings.model_copy(update={"broker": brokers[0]})
    if settings.broker not in brokers:
        raise UnsupportedBroker(
            f"BACKEND={settings.backend} does not run on BROKER={settings.broker}; "
            f"it supports: {', '.join(brokers)}"
        )
    return settings


def configured_settings() -> Settings:
    """This process's settings (``get_settings``, read once), configured: what an entry point builds first."""
    return configure(get_settings())


def configured_runner() -> Runner:
    """The runner this process's settings choose."""
    return load_runner(configured_settings().backend)


def load_backend(settings: Settings) -> Backend:
    """The ``Backend`` of the runner named by BACKEND, for configured ``settings``."""
    return load_runner(settings.backend).backend(settings)


def system_key(runner: str, broker: str | None) -> str:
    """How results.json and the report key one measured configuration of a runner: its name on its default
    (first) broker, ``<name>/<broker>`` on another, so Celery on RabbitMQ never merges with Celery on Redis.
    """
    if broker is None or runner not in installed_runners():
        return runner
    return runner if broker == load_runner(runner).brokers[0] else f"{runner}/{broker}"
