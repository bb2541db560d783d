"""How the stack hands configuration and commands to its children, and the error it raises.

Configuration travels only through the environment (every ``Settings`` field as its upper-case variable,
which pydantic-settings reads back); commands come only from installed console scripts, the same ones compose
calls. ``fbt_devstack.stack`` builds on these; the benchmark topology uses ``settings_env`` too.
"""

import json

from fbt_tasks.scripts import script_path
from fbt_tasks.settings import Settings


class StackError(RuntimeError):
    """The stack could not start or recover; the message carries the tail of the relevant log."""


def console_script(name: str) -> str:
    """The path of an installed console script, preferring the one beside this interpreter (the venv's)."""
    found = script_path(name)
    if found is None:
        raise StackError(
            f"console script {name!r} is not installed; is its package a member of the workspace?"
        )
    return found


def settings_env(settings: Settings) -> dict[str, str]:
    """Every Settings field as its upper-case environment variable."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if isinstance(value, bool):
            env[name.upper()] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            env[name.upper()] = str(value)
        else:
            env[name.upper()] = json.dumps(value)  # pydantic-settings parses complex fields from JSON
    return env


def external_url_var(runner: str) -> str:
    """The environment variable that points the harness's external mode at ``runner``'s API: API_URL_<RUNNER>,
    a hyphen in the runner's name written as an underscore (a shell cannot name a variable with one)."""
    return f"API_URL_{runner.upper().replace('-', '_')}"


def loopback_for(host: str) -> str:
    """The address to reach a server bound to ``host`` from this machine (a wildcard bind: loopback)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
