"""The JSON Schemas of the files users write: equal to the models, and every shipped file fits them."""

import json
from pathlib import Path

import jsonschema
import pytest

from zobench import file_schemas
from zobench.cli import main
from zobench.tasks import DEFINITIONS
from zobench.yaml_files import load_yaml

ROOT = Path(__file__).parents[1]
def kind_of(document: dict) -> str:
    """A shipped YAML file's kind, by the keys only its kind has."""
    return "memory-study" if "methods" in document else "baseline-targets" if "optimizers" not in document else "suite"


SHIPPED = [(path, kind_of(load_yaml(path))) for path in sorted((ROOT / "suites").glob("*.yaml"))] + [(path, "task")
                                                                     for path in sorted(DEFINITIONS.glob("*.yaml"))]


def test_the_shipped_schemas_are_the_models_and_zobench_schema_writes_them(tmp_path, capsys):
    assert main(["schema", "--out", str(tmp_path)]) == 0
    for kind in file_schemas.KINDS:
        written = json.loads((tmp_path / f"{kind}.schema.json").read_text())
        assert written == json.loads((file_schemas.SHIPPED / f"{kind}.schema.json").read_text()), (
            f"zobench/schemas/{kind}.schema.json is stale: run zobench schema --out zobench/schemas")


@pytest.mark.parametrize("path, kind", SHIPPED, ids=[f"{p.parent.name}/{p.name}" for p, _ in SHIPPED])
def test_every_shipped_file_names_and_fits_its_schema(path, kind):
    first = path.read_text().splitlines()[0]
    named = (path.parent / first.removeprefix("# yaml-language-server: $schema=")).resolve()
    assert named == (file_schemas.SHIPPED / f"{kind}.schema.json").resolve(), first
    jsonschema.Draft202012Validator(file_schemas.schema(kind)).validate(load_yaml(path))


@pytest.mark.parametrize("change, where", [
    ({"dtype": "fp32"}, ["dtype"]),
    ({"budget": {"steps": -1}}, ["budget", "steps"]),
    ({"optimisers": []}, []),
    ({"report": {"tables": [{"name": "t", "quantity": "best", "rows": "problem", "columns": "label"}]}},
     ["report", "tables", 0, "quantity"]),
])
def test_the_suite_schema_flags_what_load_suite_refuses(change, where):
    document = {**load_yaml(ROOT / "suites" / "figure2.yaml"), **change}
    errors = list(jsonschema.Draft202012Validator(file_schemas.schema("suite")).iter_errors(document))
    assert [list(error.absolute_path) for error in errors] == [where]
