"""The results.json contract as a JSON Schema (draft 2020-12), and the one function that checks a document.

The schema file is committed next to this module so anyone scripting against results.json can validate with
any JSON Schema tool (e.g. ``check-jsonschema --schemafile``); docs/results-schema.md explains every field.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).with_name("results_schema.json")
SCHEMA_VERSION = 2

# Enough to see a pattern without burying the first error under hundreds of identical ones.
MAX_REPORTED_ERRORS = 20


class ResultsSchemaError(ValueError):
    """results.json does not match the contract; ``problems`` lists each violation as 'path: message'."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n  - ".join(problems[:MAX_REPORTED_ERRORS])
        more = len(problems) - MAX_REPORTED_ERRORS
        suffix = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"results document does not match {SCHEMA_PATH.name} (schema_version {SCHEMA_VERSION}):"
            f"\n  - {shown}{suffix}"
        )


@cache
def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@cache
def _validator() -> Draft202012Validator:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate_results(doc: dict[str, Any]) -> None:
    """Raise ResultsSchemaError listing every violation (JSON path and reason); return None if valid."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        raise ResultsSchemaError([f"{e.json_path}: {_reason(e.message)}" for e in errors])


def _reason(message: str) -> str:
    # jsonschema repeats whole sub-documents in some messages; the path already says where.
    return message if len(message) <= 200 else message[:197] + "..."
