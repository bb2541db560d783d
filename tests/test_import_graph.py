"""The shape of the code: no import cycle between the project's modules, and settings that name no runner.

Every ``import`` counts, at module level or inside a function or an ``if TYPE_CHECKING:`` block: a cycle that
only a lazy import hides is still one to a reader.
"""

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(ROOT.glob("*/src/fbt_*")) + sorted(ROOT.glob("packages/*/src/fbt_*"))


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in SOURCES:
        for path in package.rglob("*.py"):
            parts = path.relative_to(package.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, each resolved to the longest known module name."""
    targets: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package.rsplit('.', node.level - 1)[0]}.{base}".rstrip(".")
            # ``from package import module`` depends on that module, not on the package's __init__.
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known
            targets.update(submodules or {base})
    resolved = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def test_the_sources_were_found() -> None:
    names = modules()
    assert {"fbt_tasks.settings", "fbt_tasks.registry", "fbt_api.app", "fbt_rq.plugin"} <= set(names)


def test_no_import_cycle_between_the_projects_modules() -> None:
    names = modules()
    known = set(names)
    graph = {name: imported(path, name, known) for name, path in names.items()}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_reading_the_settings_loads_no_runner() -> None:
    """Settings() is plain data: it neither scans the fbt.backends entry points nor imports a plugin."""
    code = (
        "import sys; from fbt_tasks.settings import Settings; Settings(backend='rq'); "
        "print(sorted(m for m in sys.modules if m.startswith('fbt_') and not m.startswith('fbt_tasks.settings')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['fbt_tasks']"
