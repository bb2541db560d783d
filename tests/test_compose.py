"""compose.yaml, the Dockerfile, .dockerignore and .env.example, checked statically and offline.

No Docker engine runs these tests, so they prove what can be proved without one: the stack is valid Compose,
every command and healthcheck names something installed in the image that runs it (per uv.lock), and every
port and environment variable agrees between compose.yaml, .env.example and the Settings object.
"""

import ast
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from fbt_devstack.stack_env import external_url_var
from fbt_tasks.registry import configure, installed_runners, load_runner
from fbt_tasks.settings import Settings

BACKENDS = installed_runners()
# Every runner on every broker it supports: one API (and worker) service each, "api-<runner>" on the
# runner's default broker, "api-<runner>-<broker>" on another.
SYSTEMS = [(backend, broker) for backend in BACKENDS for broker in load_runner(backend).brokers]


def service_suffix(backend: str, broker: str) -> str:
    return backend if broker == load_runner(backend).brokers[0] else f"{backend}-{broker}"


ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

# `${VAR}`, `${VAR:-default}`, `${VAR:?message}`; `$${...}` is an escaped dollar for the container's shell.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
ENV_LINE = re.compile(r"^(?P<comment>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
# Environment variables compose passes that are not Settings fields, and who reads them.
BENCH_VARS = {external_url_var(backend) for backend in BACKENDS}  # fbt-bench compare, external mode
MONITORING_VARS = {"RQ_DASHBOARD_REDIS_URL"}  # rq-dashboard's own RQ_DASHBOARD_* options
# Console scripts and Celery subcommands of packages the Dockerfile pins with pip (not in uv.lock).
PINNED_SCRIPTS = {"rq-dashboard": "rq-dashboard"}
PINNED_SUBCOMMANDS = {"flower": "flower"}


# --- Loading --------------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def built_services() -> dict[str, dict[str, Any]]:
    """Services whose image is built from our Dockerfile."""
    return {name: svc for name, svc in services().items() if "build" in svc}


@cache
def env_example() -> dict[str, tuple[str, bool]]:
    """Every variable .env.example documents: name -> (value, active). Commented `# NAME=value` counts."""
    found: dict[str, tuple[str, bool]] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_LINE.match(line.strip())
        if match:
            found[match["name"]] = (match["value"], not match["comment"])
    return found


def settings_vars() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def resolve(value: object) -> str:
    """A compose value with every interpolation replaced as compose would with .env.example as .env."""

    def one(match: re.Match[str]) -> str:
        documented = env_example().get(match["name"], ("", False))
        if match["op"] in (":-", "-"):
            return documented[0] if documented[1] and documented[0] else match["arg"]
        if match["op"] in (":?", "?"):
            return documented[0] or "required-value"
        return documented[0]

    return INTERPOLATION.sub(one, str(value)).replace("$$", "$")


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def as_argv(command: object) -> list[str]:
    if isinstance(command, str):
        return command.split()
    return [str(part) for part in command]  # type: ignore[union-attr]


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = as_argv(service["healthcheck"]["test"])
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return test[1:]


# --- The workspace and uv.lock --------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str
    module: str
    scripts: dict[str, str]
    backends: dict[str, str]


@cache
def members() -> dict[str, Member]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: dict[str, Member] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for pyproject in sorted(ROOT.glob(f"{pattern}/pyproject.toml")):
            data = tomllib.loads(pyproject.read_text())
            name = data["project"]["name"]
            module = data.get("tool", {}).get("uv", {}).get("build-backend", {}).get("module-name")
            scripts = data["project"].get("scripts", {})
            backends = data["project"].get("entry-points", {}).get("fbt.backends", {})
            found[name] = Member(name, module or name.replace("-", "_"), scripts, backends)
    return found


@cache
def lock_packages() -> dict[str, dict[str, Any]]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {package["name"]: package for package in lock["package"]}


def lock_closure(roots: frozenset[str]) -> set[str]:
    """Every distribution `uv sync --no-dev --package <roots>` installs (markers ignored: a superset)."""
    packages = lock_packages()
    seen: set[tuple[str, str | None]] = set()
    todo: list[tuple[str, str | None]] = [(root, None) for root in roots]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        package = packages[name]
        deps = package.get("dependencies", []) if extra is None else package["optional-dependencies"][extra]
        for dep in deps:
            todo.append((dep["name"], None))
            todo.extend((dep["name"], e) for e in dep.get("extra", []))
    return {name for name, _ in seen}


def distribution_of_module(module: str) -> str:
    top = module.split(".")[0]
    for member in members().values():
        if member.module == top:
            return member.name
    dists = importlib.metadata.packages_distributions().get(top)
    assert dists, f"no installed distribution provides {top}"
    return dists[0].lower().replace("_", "-")


def console_scripts() -> dict[str, tuple[str, str]]:
    """Script name -> (distribution, entry point target), for the workspace and the locked dependencies."""
    scripts = {
        ep.name: (ep.dist.name.lower().replace("_", "-") if ep.dist else "", ep.value)
        for ep in importlib.metadata.entry_points(group="console_scripts")
    }
    for member in members().values():
        scripts |= {name: (member.name, target) for name, target in member.scripts.items()}
    return scripts


# --- The Dockerfile -------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def runs(self) -> Iterator[str]:
        return (args for keyword, args in self.instructions if keyword == "RUN")

    def copied_from(self) -> list[str]:
        return [m for k, a in self.instructions if k == "COPY" for m in re.findall(r"--from=(\S+)", a)]

    def flag_values(self, flag: str) -> set[str]:
        return {value for run in self.runs() for value in re.findall(rf"(?<![\w-]){flag}\s+(\S+)", run)}

    def pip_pins(self) -> set[str]:
        pins = re.findall(
            r"[\"']?([A-Za-z0-9_.-]+)==", " ".join(r for r in self.runs() if "pip install" in r)
        )
        return {pin.lower().replace("_", "-") for pin in pins}


BACKSLASH = "\\"


@cache
def dockerfile_lines() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line.removesuffix(BACKSLASH).strip()}".strip()
        if not line.endswith(BACKSLASH):
            keyword, _, args = pending.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
            pending = ""
    return instructions


@cache
def stages() -> dict[str, Stage]:
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, args in dockerfile_lines():
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args, flags=re.IGNORECASE)
            assert match, f"every stage is named: FROM {args}"
            current = found[match[2]] = Stage(match[2], match[1])
        elif current is not None:
            current.instructions.append((keyword, args))
    return found


def stage_lineage(name: str) -> list[Stage]:
    """The stage, the stages it is built FROM, and the stages it COPYs the venv from, recursively."""
    stage = stages()[name]
    lineage = [stage]
    for parent in [stage.base, *stage.copied_from()]:
        if parent in stages():
            lineage += stage_lineage(parent)
    return lineage


def image_packages(target: str) -> frozenset[str]:
    return frozenset(p for stage in stage_lineage(target) for p in stage.flag_values("--package"))


def image_pins(target: str) -> set[str]:
    return {pin for stage in stage_lineage(target) for pin in stage.pip_pins()}


def image_distributions(target: str) -> set[str]:
    return lock_closure(image_packages(target)) | image_pins(target)


# --- Compose is valid Compose ---------------------------------------------------------------------


def test_compose_validates_against_the_vendored_compose_spec_schema() -> None:
    # check-jsonschema ships the Compose Specification schema ("vendor.compose-spec"): no network needed.
    script = Path(sys.executable).parent / "check-jsonschema"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "check_jsonschema"]
    result = subprocess.run(
        [*command, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_restarts_and_runs_as_a_non_root_user() -> None:
    for name, svc in services().items():
        assert svc.get("restart") in ("no", "always", "on-failure", "unless-stopped"), name
        user = resolve(svc.get("user", "root")).split(":")[0]
        assert user not in ("", "root", "0"), f"{name} runs as root"


def test_dependencies_wait_for_healthy_services() -> None:
    for name, svc in services().items():
        for dependency, condition in svc.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert "healthcheck" in services()[dependency], f"{dependency} has no healthcheck"


def test_redis_is_private_and_appends_to_an_aof() -> None:
    redis = services()["redis"]
    assert redis["image"] == "redis:7"
    assert "ports" not in redis, "Redis must be reachable on the compose network only"
    argv = as_argv(redis["command"])
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert "redis-cli ping" in " ".join(healthcheck_argv(redis))
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_third_party_healthchecks_use_what_their_images_ship() -> None:
    # Offline we cannot open the images; we check each command is the one its image documents: redis-cli
    # comes with every official redis image, `/mailpit readyz` is Mailpit's own Dockerfile HEALTHCHECK.
    assert services()["redis"]["image"].startswith("redis:")
    assert healthcheck_argv(services()["redis"])[0].endswith("redis-cli ping | grep -q PONG")
    assert services()["mailpit"]["image"].startswith("axllent/mailpit:")
    assert healthcheck_argv(services()["mailpit"]) == ["/mailpit", "readyz"]
    # rabbitmq-diagnostics ships in every official rabbitmq image; `-q ping` is its basic liveness check.
    assert (
        services()["rabbitmq"]["image"].startswith("rabbitmq:")
        and "management" in services()["rabbitmq"]["image"]
    )
    assert healthcheck_argv(services()["rabbitmq"]) == ["rabbitmq-diagnostics", "-q", "ping"]


def test_rabbitmq_is_private_persistent_and_feeds_only_its_broker_services() -> None:
    rabbitmq = services()["rabbitmq"]
    assert any(volume.endswith(":/var/lib/rabbitmq") for volume in rabbitmq["volumes"])
    assert [container for _, _, container in published_ports()["rabbitmq"]] == [15672]  # the UI, not AMQP
    for name, svc in built_services().items():
        env = svc.get("environment", {})
        on_rabbitmq = env.get("BROKER") == "rabbitmq"
        assert ("AMQP_URL" in env) == on_rabbitmq, name
        assert ("rabbitmq" in svc.get("depends_on", {})) == on_rabbitmq, name
        if on_rabbitmq:
            assert urlsplit(resolve(env["AMQP_URL"])).hostname == "rabbitmq", name
            assert "redis" in svc["depends_on"], f"{name}: results and the send-once guard stay in Redis"


# --- Ports ----------------------------------------------------------------------------------------


def published_ports() -> dict[str, list[tuple[str, int, int]]]:
    """service -> [(host address, host port, container port)] with .env.example's values."""
    found: dict[str, list[tuple[str, int, int]]] = {}
    for name, svc in services().items():
        for spec in svc.get("ports", []):
            address, host, container = resolve(spec).rsplit(":", 2)
            found.setdefault(name, []).append((address, int(host), int(container)))
    return found


def test_published_ports_are_distinct_and_bound_to_loopback_by_default() -> None:
    ports = published_ports()
    hosts = [host for entries in ports.values() for _, host, _ in entries]
    assert len(hosts) == len(set(hosts)), ports
    assert {address for entries in ports.values() for address, _, _ in entries} == {"127.0.0.1"}
    # Only UIs and APIs are published: Redis and Mailpit's SMTP stay on the compose network.
    assert ports["mailpit"] == [("127.0.0.1", int(env_example()["MAILPIT_UI_PORT"][0]), 8025)]
    assert "redis" not in ports


def test_each_api_listens_where_it_is_published_and_health_checked() -> None:
    apis = {name: svc for name, svc in services().items() if name.startswith("api-")}
    assert sorted(apis) == sorted(f"api-{service_suffix(*system)}" for system in SYSTEMS)
    for name, svc in apis.items():
        env = svc["environment"]
        broker = env.get("BROKER", load_runner(env["BACKEND"]).brokers[0])
        assert name == f"api-{service_suffix(env['BACKEND'], broker)}"
        assert env["HOST"] == "0.0.0.0"  # inside the container; published on loopback
        port = int(env["PORT"])
        assert [container for _, _, container in published_ports()[name]] == [port]
        assert f"127.0.0.1:{port}/health" in " ".join(healthcheck_argv(svc))
        assert ":?" in env["API_KEY"], "compose must refuse to start without API_KEY"


def test_the_bench_targets_every_api_and_reads_the_shared_ledger() -> None:
    from fbt_bench.profiles import PROFILES

    bench = services()["bench"]
    env = bench["environment"]
    assert BENCH_VARS <= set(env)
    argv = as_argv(bench["command"])
    assert argv[:2] == ["fbt-bench", "compare"]  # what `make compare` runs
    assert resolve(argv[argv.index("--profile") + 1]) in PROFILES
    for backend in BACKENDS:
        api = services()[f"api-{backend}"]
        assert env[external_url_var(backend)] == f"http://api-{backend}:{api['environment']['PORT']}"
        assert bench["depends_on"][f"api-{backend}"] == {"condition": "service_healthy"}
    api_env = services()["api-celery"]["environment"]
    assert env["REDIS_URL"] == api_env["REDIS_URL"]
    assert env["LEDGER_FILE"] == api_env["LEDGER_FILE"]
    assert env["API_KEY"] == api_env["API_KEY"]
    # fbt-bench writes to results/ under its working directory, the image's WORKDIR.
    workdir = [args for keyword, args in stages()["runtime"].instructions if keyword == "WORKDIR"][-1]
    assert f"./results:{workdir}/results" in bench["volumes"]


def test_profiles_keep_monitoring_and_bench_out_of_a_plain_up() -> None:
    assert services()["flower"]["profiles"] == ["monitoring"]
    assert services()["rq-dashboard"]["profiles"] == ["monitoring"]
    assert services()["bench"]["profiles"] == ["bench"]
    plain = {name for name, svc in services().items() if "profiles" not in svc}
    workers = {f"{service_suffix(b, broker)}-worker" for b, broker in SYSTEMS if broker != "none"}
    apis = {f"api-{service_suffix(*system)}" for system in SYSTEMS}
    assert plain == {"redis", "rabbitmq", "mailpit", *apis, *workers}


# --- Shutdown and shared state --------------------------------------------------------------------


def test_workers_and_apis_get_longer_than_a_task_to_shut_down() -> None:
    smtp_timeout = float(env_example()["SMTP_TIMEOUT_S"][0])
    for name, svc in services().items():
        if name.startswith("api-") or name.endswith("-worker"):
            assert seconds(svc["stop_grace_period"]) > smtp_timeout, name
    # uvicorn drains for 30 s (fbt_api.__main__); Docker must not SIGKILL before that.
    assert all(seconds(services()[f"api-{b}"]["stop_grace_period"]) > 30 for b in BACKENDS)


def test_apis_workers_and_bench_share_one_volume_for_ledger_log_and_media() -> None:
    # Flower reads the Celery settings but runs no task, so it needs no volume.
    for name, svc in built_services().items():
        env = svc.get("environment", {})
        paths = [env[key] for key in ("LEDGER_FILE", "LOG_FILE", "MEDIA_DIR") if key in env]
        if not paths or svc.get("profiles") == ["monitoring"]:
            continue
        mounts = dict(volume.split(":")[::-1] for volume in svc["volumes"])
        assert all(path.startswith("/app/var/") for path in paths), name
        assert mounts.get("/app/var") == "fbt-var", name
    assert "fbt-var" in compose()["volumes"]


# --- Commands and healthchecks exist in their images ----------------------------------------------


def check_runnable(argv: list[str], target: str, where: str) -> None:
    """argv names a console script, a module or stdlib-only code that the `target` image has installed."""
    installed = image_distributions(target)
    if argv[0] == "python":
        if argv[1] == "-m":
            assert importlib.util.find_spec(argv[2]) is not None, f"{where}: no module {argv[2]}"
            assert distribution_of_module(argv[2]) in installed, (
                f"{where}: {argv[2]} not in the {target} image"
            )
            return
        assert argv[1] == "-c", where
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(ast.parse(argv[2]))
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert imported <= set(sys.stdlib_module_names), f"{where}: imports beyond the stdlib: {imported}"
        return
    script = argv[0]
    if script in PINNED_SCRIPTS:
        assert PINNED_SCRIPTS[script] in installed, f"{where}: {script} is not pinned in the {target} image"
        return
    scripts = console_scripts()
    assert script in scripts, f"{where}: no console script {script}"
    dist, entry_point = scripts[script]
    assert dist in installed, f"{where}: {script} comes from {dist}, not installed in the {target} image"
    module = entry_point.split(":")[0].strip()
    assert importlib.util.find_spec(module) is not None, f"{where}: {script} -> missing module {module}"
    if script == "celery":
        app = argv[argv.index("-A") + 1]
        assert importlib.util.find_spec(app) is not None, f"{where}: no Celery app module {app}"
        for subcommand, dist in PINNED_SUBCOMMANDS.items():
            if subcommand in argv:
                assert dist in installed, f"{where}: `celery {subcommand}` needs {dist} in the {target} image"


def test_every_command_and_healthcheck_is_installed_in_its_image() -> None:
    for name, svc in built_services().items():
        target = svc["build"]["target"]
        assert target in stages(), f"{name}: no Dockerfile stage {target}"
        check_runnable(as_argv(svc["command"]), target, f"{name} command")
        if "healthcheck" in svc:
            check_runnable(healthcheck_argv(svc), target, f"{name} healthcheck")


def test_api_and_bench_images_can_load_every_backend() -> None:
    # The API picks its runner through the fbt.backends entry points; the bench describes each runner so.
    for target in ("app", "bench"):
        installed = image_distributions(target)
        loadable = {b for m in members().values() if m.name in installed for b in m.backends}
        assert loadable >= set(BACKENDS), f"the {target} image cannot load {set(BACKENDS) - loadable}"


def test_runner_services_call_the_entry_points_make_calls() -> None:
    # make worker runs fbt-worker, which execs the runner's worker_command: compose runs that command.
    makefile = (ROOT / "Makefile").read_text()
    assert "fbt-worker\n" in makefile and "fbt-api" in makefile
    for backend, broker in SYSTEMS:
        suffix = service_suffix(backend, broker)
        assert services()[f"api-{suffix}"]["command"] == ["fbt-api"]
        command = load_runner(backend).worker_command(configure(Settings(backend=backend, broker=broker)))  # type: ignore[arg-type]
        if command is not None:
            worker = services()[f"{suffix}-worker"]
            assert worker["command"] == command
            assert healthcheck_argv(worker) == ["python", "-m", "fbt_tasks.health"]
            assert worker["environment"]["BACKEND"] == backend
            assert worker["environment"].get("BROKER", load_runner(backend).brokers[0]) == broker


# --- Environment: compose.yaml, .env.example and Settings agree -----------------------------------


def test_compose_passes_only_settings_and_documented_variables() -> None:
    allowed = settings_vars() | BENCH_VARS | MONITORING_VARS
    for name, svc in built_services().items():
        environment = svc.get("environment", {})
        # A runner's own settings are named after it (RQ_WORKER_MODE) and only its own services pass them.
        own = str(environment.get("BACKEND", "")).upper().replace("-", "_") + "_"
        unknown = {variable for variable in environment if not variable.startswith(own)} - allowed
        assert not unknown, f"{name} passes variables nothing reads: {unknown}"


def test_every_settings_field_and_compose_variable_is_documented_in_env_example() -> None:
    documented = set(env_example())
    assert not settings_vars() - documented, "Settings fields missing from .env.example"
    interpolated = {m["name"] for m in INTERPOLATION.finditer(COMPOSE.read_text())}
    assert not interpolated - documented, "compose.yaml variables missing from .env.example"
    passed = {key for svc in built_services().values() for key in svc.get("environment", {})}
    stale = documented - settings_vars() - interpolated - passed
    assert not stale, f".env.example documents variables nothing reads: {stale}"


def test_compose_defaults_are_the_values_env_example_gives() -> None:
    for match in INTERPOLATION.finditer(COMPOSE.read_text()):
        if match["op"] == ":-":
            value, _ = env_example()[match["name"]]
            assert value == match["arg"], f"{match['name']}: compose {match['arg']!r}, .env.example {value!r}"


def test_every_active_setting_in_env_example_reaches_the_apis_and_workers() -> None:
    active = {name for name, (_, on) in env_example().items() if on} & settings_vars()
    for name, svc in built_services().items():
        if name.startswith("api-") or name.endswith("-worker"):
            # API-only settings need not reach the workers.
            wanted = (
                active if name.startswith("api-") else active - {"API_KEY", "API_THREADPOOL", "ACCESS_LOG"}
            )
            ignored = {key for key in wanted if f"${{{key}" not in str(svc["environment"].get(key))}
            assert not ignored, f"{name} ignores .env settings: {ignored}"


def test_the_settings_compose_passes_are_valid_settings() -> None:
    for name, svc in built_services().items():
        env = {k.lower(): resolve(v) for k, v in svc.get("environment", {}).items() if k in settings_vars()}
        Settings(_env_file=None, **env)  # type: ignore[call-arg]  # raises on any invalid value
        if "smtp_port" in env:
            assert (env["smtp_host"], env["smtp_port"]) == ("mailpit", "1025"), name  # Mailpit's SMTP port
        if "redis_url" in env:
            assert urlsplit(env["redis_url"]).hostname == "redis" and urlsplit(env["redis_url"]).port == 6379


def test_no_secret_is_committed() -> None:
    assert env_example()["API_KEY"] == ("", True)
    assert env_example()["REDIS_PASSWORD"] == ("", True)
    assert "API_KEY:?" in COMPOSE.read_text()


# --- The Dockerfile installs the locked workspace -------------------------------------------------


def test_dockerfile_packages_are_workspace_members_and_rebuilt_from_source() -> None:
    for stage in stages().values():
        packages = stage.flag_values("--package")
        # The cached dependency layer and the final sync must install the same thing.
        per_sync = [
            set(re.findall(r"(?<![\w-])--package\s+(\S+)", r)) for r in stage.runs() if "uv sync" in r
        ]
        assert all(synced == packages for synced in per_sync), f"{stage.name}: uv sync calls differ"
        assert packages <= set(members()), f"{stage.name}: not workspace members: {packages - set(members())}"
        reinstalled = stage.flag_values("--reinstall-package")
        if any("uv sync" in run and "--no-install-workspace" not in run for run in stage.runs()):
            # uv caches a built member by its pyproject.toml only: each member must be rebuilt.
            needed = lock_closure(frozenset(packages)) & set(members())
            assert needed <= reinstalled, f"{stage.name}: members not rebuilt: {needed - reinstalled}"
    for service in built_services().values():
        assert image_packages(service["build"]["target"]), "every built image installs a workspace member"


def test_dockerfile_and_compose_use_the_same_frozen_uv_lock() -> None:
    uv_calls = [
        run for stage in stages().values() for run in stage.runs() if re.search(r"\buv (sync|export)", run)
    ]
    assert uv_calls
    for run in uv_calls:
        assert "--frozen" in run and "--no-dev" in run, run
    copies = [args for keyword, args in dockerfile_lines() if keyword == "COPY"]
    assert any("uv.lock" in args.split() for args in copies), "the Dockerfile must install from uv.lock"
    for svc in built_services().values():
        assert (ROOT / svc["build"]["context"]).resolve() == ROOT
        assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DOCKERFILE
    # The same lock, frozen, for `make run` and `make compare` on a host.
    assert "RUN := $(UV) run --frozen" in (ROOT / "Makefile").read_text()


def test_images_run_as_the_user_compose_names() -> None:
    runtime = stages()["runtime"]
    args = dict(a.split("=", 1) for k, a in runtime.instructions if k == "ARG" and "=" in a)
    assert (args["APP_UID"], args["APP_GID"]) == (env_example()["APP_UID"][0], env_example()["APP_GID"][0])
    assert args["APP_UID"] != "0"
    assert any(k == "USER" for k, _ in runtime.instructions)


# --- .dockerignore --------------------------------------------------------------------------------


def dockerignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches everything under a directory."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        candidates = {pattern, pattern.removeprefix("**/")}
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(prefix, c) for prefix in prefixes for c in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_local_state_out_and_the_build_inputs_in() -> None:
    for path in (".venv/bin/python", "results/latest/results.json", "var/ledger.jsonl", ".env", ".git/HEAD"):
        assert dockerignored(path), f"{path} would be sent to the Docker build"
    assert dockerignored("celery_worker/src/fbt_celery/__pycache__/app.cpython-311.pyc")
    for path in (
        "uv.lock",
        "pyproject.toml",
        "packages/tasks/pyproject.toml",
        "rq_worker/src/fbt_rq/health.py",
    ):
        assert not dockerignored(path), f"{path} is needed by the Dockerfile"
    assert not dockerignored(".env.example")


def test_make_has_up_down_and_logs_for_the_stack() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^COMPOSE \?= docker compose$", makefile, flags=re.MULTILINE)
    for target in ("up", "down", "logs"):
        match = re.search(rf"^{target}:.*## .+\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
        assert match and "$(COMPOSE)" in match[1], f"make {target}"


@pytest.mark.parametrize(
    "path", [COMPOSE, DOCKERFILE, ENV_EXAMPLE, ROOT / ".dockerignore", ROOT / "docs/deploy.md"]
)
def test_deploy_files_exist(path: Path) -> None:
    assert path.is_file()
