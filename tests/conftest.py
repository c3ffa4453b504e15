"""Shared helpers of the template's test suite."""

import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
# pytest-cookies renders the answers before cookiecutter puts the template on
# the import path, so the template's Jinja extension must be importable already.
# The extension forgets its module once loaded (fastapi_celery_filters.py), so
# each render imports it again, from here: this entry comes before the one that
# cookiecutter appends for a render. A render of another copy of the template
# in this process uses `import_path_without_this_checkout`.
sys.path.append(str(TEMPLATE))
CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text())
# The module of the template's Jinja extension, as cookiecutter.json names it.
FILTERS_MODULE = CONTEXT["_extensions"][0].rpartition(".")[0]

# Rendered files that are neither text nor ours to scan.
BINARY_SUFFIXES = {".png", ".jpg", ".ico", ".gz", ".zip"}
SKIPPED_DIRS = {".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


def choice_variables() -> dict[str, list]:
    """Every answer that is a choice or a switch, with all of its values."""
    choices = {}
    for name, value in CONTEXT.items():
        if name.startswith("_"):
            continue
        if isinstance(value, list):
            choices[name] = value
        elif isinstance(value, bool):
            choices[name] = [True, False]
    return choices


# Answers that change a few lines, whatever the other answers: every other
# answer's full product is taken, and these are spread over it.
SPREAD = ("open_source_license", "queue_type")


def all_combinations(**fixed) -> list[dict]:
    """Every combination of the choices and switches, as extra contexts; those
    given in `fixed` keep that one value. Each spread answer takes its values
    in turn, by the number of other answers away from their first value, so
    that each of its values meets each value of every answer not spread."""
    choices = {**choice_variables(), **{name: [value] for name, value in fixed.items()}}
    spread = {name: choices.pop(name) for name in SPREAD}
    names = sorted(choices)
    combinations = []
    for values in itertools.product(*(choices[name] for name in names)):
        combination = dict(zip(names, values, strict=True))
        turn = sum(choices[name].index(value) > 0 for name, value in combination.items())
        for name, spread_values in spread.items():
            combination[name] = spread_values[turn % len(spread_values)]
        combinations.append(combination)
    return combinations


def combination_id(combination: dict) -> str:
    return "-".join(f"{name}={value}" for name, value in sorted(combination.items()))


def project_files(project: Path) -> Iterator[Path]:
    for path in sorted(project.rglob("*")):
        if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(project).parts):
            yield path


def text_files(project: Path) -> Iterator[Path]:
    for path in project_files(project):
        if path.suffix not in BINARY_SUFFIXES:
            yield path


def render(output_dir: Path, **answers) -> Path:
    """A real cookiecutter render (hooks included) with these answers, no questions."""
    return Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, output_dir=str(output_dir), extra_context=answers
        )
    )


@pytest.fixture
def bake(cookies):
    """Render with the given answers and insist that rendering succeeded."""

    def render(**answers):
        result = cookies.bake(extra_context=answers, template=str(TEMPLATE))
        assert result.exception is None, result.exception
        assert result.exit_code == 0
        return result.project_path

    return render


@pytest.fixture
def import_path_without_this_checkout(monkeypatch):
    """sys.path without this checkout and sys.modules without the filters, as
    in a process of cruft's: a render of another copy of the template imports
    that copy's filters, from the directory cookiecutter appends for it."""
    monkeypatch.setattr(
        sys, "path", [entry for entry in sys.path if Path(entry or ".").resolve() != TEMPLATE]
    )
    monkeypatch.delitem(sys.modules, FILTERS_MODULE, raising=False)


# The two long parts of the suite, in the order the processes should take them.
LONG_PARTS = ("boot", "service")


def pytest_collection_modifyitems(items):
    """The long parts first: xdist hands its first work unit to each process, so
    each process starts on one of them and the short render tests fill in after
    (two long parts on one process would take about twice as long)."""

    def rank(item) -> int:
        marks = {mark.name for mark in item.iter_markers()}
        ranks = [rank for rank, part in enumerate(LONG_PARTS) if part in marks]
        return ranks[0] if ranks else len(LONG_PARTS)

    items.sort(key=rank)


def pytest_terminal_summary(terminalreporter):
    """Name what the rendered services' tests left to look at (screenshots)."""
    artifacts = sorted((TEMPLATE / ".cache" / "artifacts").rglob("*.png"))
    if artifacts:
        terminalreporter.section("artifacts")
        for path in artifacts:
            terminalreporter.write_line(str(path))
