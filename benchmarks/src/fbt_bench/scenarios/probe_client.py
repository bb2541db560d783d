"""Start ``fbt_bench.scenarios.enqueue_probe`` (enqueue without HTTP) for a deployment and read its answer."""

import asyncio
import json
import sys
from typing import Any

import psutil

from fbt_bench.topology import Deployment

PROBE_TIMEOUT_S = 600.0


async def run_probe(deployment: Deployment, args: list[str], on_start: Any = None) -> dict[str, Any]:
    """Run one probe command in a process of its own with the deployment's settings; return its JSON.

    ``on_start(pid)`` is called once the process exists (a sampler may want to count it).
    """
    argv = [sys.executable, "-m", "fbt_bench.scenarios.enqueue_probe", *args]
    if args and args[0] == "enqueue":
        argv += deployment.probe_args()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=deployment.probe_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    if on_start is not None:
        on_start(proc.pid)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
    except BaseException:
        if proc.returncode is None:
            psutil.Process(proc.pid).kill()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"enqueue probe {args[0]} exited {proc.returncode}: {err.decode()[-1500:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))
