"""``fbt-api``: serve the API under uvicorn with the configured backend."""

import ipaddress
import sys

import typer
import uvicorn

from fbt_tasks.registry import configured_settings

# uvicorn as its docs recommend for production (`uvicorn[standard]`), named rather than left to "auto", so
# a missing extra fails at start instead of silently serving on asyncio and h11. The harness's floor apps
# are served with the same options, so a route's cost is compared on one server.
SERVER_OPTIONS: dict[str, str] = {"http": "httptools", "loop": "uvloop"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve() -> None:
    """Serve the API. Every option comes from the environment (BACKEND, HOST, PORT, API_KEY, REDIS_URL, ...)."""
    settings = configured_settings()
    if not settings.api_key and not is_loopback(settings.host):
        typer.echo(
            f"Refusing to bind {settings.host}: API_KEY is unset, so the development key is in use. "
            "Set API_KEY to serve on a non-loopback address.",
            err=True,
        )
        sys.exit(2)
    uvicorn.run(
        "fbt_api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
        **SERVER_OPTIONS,  # type: ignore[arg-type]
        # Ctrl-C or SIGTERM lets in-flight requests (and in-process BackgroundTasks) finish for up to this long.
        timeout_graceful_shutdown=30,
    )


def main() -> None:
    typer.run(serve)


if __name__ == "__main__":
    main()
