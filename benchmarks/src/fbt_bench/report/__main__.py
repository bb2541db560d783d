"""python -m fbt_bench.report RUN_DIR|results.json: re-render a run's reports next to its results.json."""

from fbt_bench.report.render import main

raise SystemExit(main())
