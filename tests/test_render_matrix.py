"""Every combination of choices and switches renders a clean project."""

import fnmatch
import json
import py_compile
import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from conftest import CONTEXT, all_combinations, combination_id, text_files
from kubernetes_manifests import build_overlays, schema_problems

COMBINATIONS = all_combinations()
# Jinja delimiters (a GitHub Actions `${{ }}` expression is not one) and any
# reference to an answer; `.cookiecutter.json` is the answers file's name.
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|\{#|(?<![.\w-])cookiecutter\.(?!json\b)\w")
RUFF = [sys.executable, "-m", "ruff"]


def copied_without_render(relative: str) -> bool:
    """Whether the template marks this rendered path as copied as it is
    (cookiecutter matches the patterns against paths inside the project)."""
    return any(fnmatch.fnmatch(relative, pattern) for pattern in CONTEXT["_copy_without_render"])


# Free-text answers that break naive quoting, and the longest accepted values.
AWKWARD_ANSWERS = [
    {
        "project_name": 'Ünï "Quoted" \\ back\\slash \'\'\' """ & <tag> 🚀',
        "description": 'Says "hi", uses \\n and \\ and {braces} & <angles> — ok',
        "author_name": 'O\'Brien "Dev" \\ & Søn',
        "author_email": "first.last+tag@sub.example.org",
        "version": "1.0.0rc1",
    },
    {
        "project_name": "N" * 60,
        "project_slug": "s" * 40,
        "worker_name": "w" * 63,
        "author_email": "a" * 48 + "@example.com",
    },
]


@pytest.mark.parametrize("combination", COMBINATIONS, ids=combination_id)
def test_combination_renders_clean(bake, combination):
    project = bake(**combination)
    assert_clean(project)
    if (project / "deploy").exists():
        for overlay, manifests in build_overlays(project).items():
            assert schema_problems(manifests) == [], overlay


@pytest.mark.parametrize("answers", AWKWARD_ANSWERS, ids=["quotes", "longest"])
def test_awkward_answers_render_clean(bake, answers):
    project = bake(**answers)
    assert_clean(project)
    readme = (project / "README.md").read_text()
    assert answers["project_name"] in readme


def assert_clean(project):
    problems = []
    for path in text_files(project):
        relative = path.relative_to(project).as_posix()
        text = path.read_text()
        if not copied_without_render(relative) and UNRENDERED.search(text):
            problems.append(f"unrendered template syntax in {relative}")
        try:
            if path.suffix == ".py":
                py_compile.compile(str(path), doraise=True)
            elif path.suffix in (".yml", ".yaml"):
                list(yaml.safe_load_all(text))
            elif path.suffix == ".toml":
                tomllib.loads(text)
            elif path.suffix == ".json":
                json.loads(text)
        except Exception as error:  # every parser has its own error type
            problems.append(f"{relative} does not parse: {error}")
        if path.suffix == ".md":
            problems += [f"{relative}: {problem}" for problem in heading_problems(text)]
    assert problems == []

    lint = subprocess.run(
        [*RUFF, "check", "--no-cache", "."], cwd=project, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    formatting = subprocess.run(
        [*RUFF, "format", "--check", "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert formatting.returncode == 0, formatting.stdout + formatting.stderr


def heading_problems(markdown: str) -> list[str]:
    """Headings that a Jinja tag's whitespace control glued to the text
    around them, outside code blocks."""
    problems, fenced, previous = [], False, ""
    for number, line in enumerate(markdown.splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            if re.match(r"#{1,6} ", line) and previous.strip():
                problems.append(f"line {number}: a heading without a blank line above it")
            if re.search(r"[^\s#]#{2,6} ", line):
                problems.append(f"line {number}: a heading joined to the line before it")
        previous = line
    return problems


@pytest.mark.parametrize(
    "markdown",
    ["Text.\n## Heading\n", "Text (`keda`).## Heading\n"],
    ids=["no blank line", "joined"],
)
def test_a_glued_heading_is_detected(markdown):
    assert heading_problems(markdown)
    assert heading_problems("Text.\n\n## Heading\n\n```sh\nx\n# comment\n```\n") == []


@pytest.mark.parametrize(
    "leftover",
    ["{{ cookiecutter.project_slug }}", "{% if x %}", "{# note #}", "name = cookiecutter.version"],
)
def test_leftover_template_syntax_is_detected(leftover):
    assert UNRENDERED.search(f"before {leftover} after")


@pytest.mark.parametrize(
    "clean", ["run: echo ${{ matrix.python }}", "see .cookiecutter.json", "{'a': {'b': 1}}"]
)
def test_rendered_text_is_not_mistaken_for_template_syntax(clean):
    assert not UNRENDERED.search(clean)
