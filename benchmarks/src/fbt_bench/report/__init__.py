"""The report: results.json rendered into report.md and a self-contained report.html.

- ``analysis``         the model: repeat sets, metrics, runner facts, ``Summary``.
- ``numbers``          how numbers are written and cited.
- ``phrasing``         findings and how they phrase rankings and ties within noise.
- ``findings``         alerts, surprises and noise; ``result_findings`` what each scenario's numbers say.
- ``choose``           the "How to choose" table.
- ``tables``, ``figures`` (drawn by ``charts``) and ``render`` (the templates, ``write_reports``, ``main``).

Re-render a finished run:  python -m fbt_bench.report results/latest   (or: make report)
"""

from fbt_bench.report.render import main, write_reports

__all__ = ["main", "write_reports"]
