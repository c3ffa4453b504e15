"""Bad answers stop the render with one readable line each and leave nothing behind."""

import json
import re
import subprocess
import sys
from importlib import metadata

import pytest
from conftest import CONTEXT, TEMPLATE
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

BAD_ANSWERS = [
    ("project_slug", "My Service", "must be a lowercase Python identifier"),
    ("project_slug", "my-service", "must be a lowercase Python identifier"),
    ("project_slug", "2fast", "must be a lowercase Python identifier"),
    ("project_slug", "class", "is a Python keyword"),
    ("project_slug", "app", "would shadow a module the service imports"),
    ("project_slug", "worker", "would shadow a module the service imports"),
    ("project_slug", "celery", "would shadow a module the service imports"),
    ("project_slug", "fastapi", "would shadow a module the service imports"),
    ("project_slug", "test", "would shadow a module the service imports"),
    ("project_slug", "json", "would shadow a module the service imports"),
    ("project_slug", "asyncio", "would shadow a module the service imports"),
    ("project_slug", "a" * 41, "is longer than 40 characters"),
    ("worker_name", "my worker", "must be lowercase letters, digits"),
    ("worker_name", "Worker", "must be lowercase letters, digits"),
    ("worker_name", "-worker", "must be lowercase letters, digits"),
    ("worker_name", "jobs/queue", "must be lowercase letters, digits"),
    ("worker_name", "amq.jobs", "starts with 'amq.'"),
    ("worker_name", "w" * 64, "is longer than 63 characters"),
    ("author_email", "not-an-email", "does not look like an e-mail address"),
    ("author_email", "team@localhost", "does not look like an e-mail address"),
    ("author_email", "two words@example.com", "does not look like an e-mail address"),
    ("author_email", 'a"b@example.com', "does not look like an e-mail address"),
    ("author_email", "admin@corp.local", "uses a special-use domain"),
    ("author_email", "a" * 50 + "@example.com", "is longer than 60 characters"),
    ("project_name", "   ", "is empty"),
    ("project_name", "N" * 61, "is longer than 60 characters"),
    ("version", "one", "is not a PEP 440 version"),
    ("version", "1.0.0-banana", "is not a PEP 440 version"),
    ("version", "", "is not a PEP 440 version"),
    ("use_websockets", "maybe", "is neither yes nor no"),
]
# cookiecutter 2.7 (which CI tests, as the newest) refuses a switch that is
# neither yes nor no itself, before the hooks run, and logs a traceback of its
# own after a hook's refusal; 2.2 to 2.6 leave both to the hook.
COOKIECUTTER_2_7 = tuple(map(int, metadata.version("cookiecutter").split(".")[:2])) >= (2, 7)
GOOD_EXAMPLES = {
    "project_name": "My Service",
    "project_slug": "my_service",
    "worker_name": "my-service-worker",
    "author_email": "team@example.com",
    "version": "0.1.0",
    "use_websockets": "no",
}


def render(tmp_path, **answers):
    return cookiecutter(
        str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(tmp_path)
    )


@pytest.mark.parametrize(("name", "value", "problem"), BAD_ANSWERS)
def test_bad_answer_is_refused_with_one_readable_line(tmp_path, capfd, name, value, problem):
    if COOKIECUTTER_2_7 and name.startswith("use_"):
        with pytest.raises(ValueError, match=f"{value} provided for variable {name}"):
            render(tmp_path, **{**GOOD_EXAMPLES, name: value})
        assert list(tmp_path.iterdir()) == []
        return
    # Every other answer is good, so this one is the only problem.
    with pytest.raises(FailedHookException):
        render(tmp_path, **{**GOOD_EXAMPLES, name: value})
    errors = capfd.readouterr().err.strip().splitlines()
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"ERROR: {name} {value!r} {problem}")
    assert f"; for example {GOOD_EXAMPLES[name]!r}." in errors[0]
    assert list(tmp_path.iterdir()) == []


def test_every_problem_is_reported_at_once(tmp_path, capfd):
    with pytest.raises(FailedHookException):
        render(tmp_path, project_slug="app", worker_name="amq.x", author_email="x", version="v")
    errors = capfd.readouterr().err.strip().splitlines()
    assert [line.split()[1] for line in errors] == [
        "project_slug",
        "worker_name",
        "author_email",
        "version",
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("project_name", "expected"),
    [
        ("2048 Game", ["ERROR: project_slug '2048_game' must be a lowercase Python identifier"]),
        ("!!!", ["ERROR: project_slug '(none)' must be a lowercase Python identifier"]),
    ],
)
def test_a_name_without_a_usable_slug_is_reported_once(tmp_path, capfd, project_name, expected):
    with pytest.raises(FailedHookException):
        render(tmp_path, project_name=project_name)
    errors = capfd.readouterr().err.strip().splitlines()
    assert [line.split(";")[0][: len(expected[0])] for line in errors] == expected
    assert errors[0].endswith("Unless answered, it is derived from project_name.")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "answers",
    [
        {"project_slug": "billing"},
        {"project_slug": "a" * 40},
        {"worker_name": "billing.jobs_v2"},
        {"worker_name": "w" * 63},
        {"author_email": "first.last+tag@mail.example.org"},
        {"version": "1.0.0rc1"},
        {"version": "2024.1.post2.dev3"},
    ],
)
def test_good_answers_are_accepted(tmp_path, answers):
    project = render(tmp_path, **answers)
    assert (tmp_path / answers.get("project_slug", "my_service")).resolve() == (
        tmp_path / project
    ).resolve()


def assert_no_traceback(result):
    """The hook's lines are all the user reads (but for cookiecutter 2.7's own traceback)."""
    if not COOKIECUTTER_2_7:
        assert "Traceback" not in result.stderr + result.stdout


def test_cli_reports_a_bad_answer_without_a_traceback(tmp_path):
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE)),
            *("--output-dir", str(tmp_path), "project_slug=app"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "ERROR: project_slug 'app' would shadow a module the service imports" in result.stderr
    assert_no_traceback(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("word", "on"), [("no", False), ("False", False), ("off", False), ("yes", True), ("TRUE", True)]
)
def test_a_switch_answered_on_the_command_line_means_what_it_says(tmp_path, word, on):
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE)),
            *("--output-dir", str(tmp_path), f"use_websockets={word}"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    project = tmp_path / "my_service"
    assert (project / "api/app/api/v1/sockets").exists() == on
    assert ("WS_AUTH_TIMEOUT" in (project / "docs/settings.md").read_text()) == on


def test_every_switch_is_read_through_the_enabled_filter():
    """A bare `{% if cookiecutter.use_x %}` takes the text "no" for yes."""
    bare = []
    for path in (TEMPLATE / "{{cookiecutter.project_slug}}").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="ignore")
            for match in re.finditer(r"cookiecutter\.use_\w+(?!\w)(?! \| enabled)", text):
                bare.append(f"{path.relative_to(TEMPLATE)}: {match.group()}")
    assert bare == []


def replayed(tmp_path, **answers):
    """Render from an answers file, as `cookiecutter --replay-file` does."""
    # A choice's first value is its default; private lists stay whole.
    context = {
        name: value[0] if isinstance(value, list) and not name.startswith("_") else value
        for name, value in CONTEXT.items()
        if not name.startswith("__") and name != "_extensions"
    }
    context.update(project_slug="my_service", worker_name="my-service-worker", **answers)
    context["_extensions"] = CONTEXT["_extensions"]
    replay = tmp_path / "answers.json"
    replay.write_text(json.dumps({"cookiecutter": context}))
    output = tmp_path / "out"
    output.mkdir()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cookiecutter", str(TEMPLATE)),
            *("--replay-file", str(replay), "--output-dir", str(output)),
        ],
        capture_output=True,
        text=True,
    )
    return result, output


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("task_serializer", 'json"\nimport os  #'),
        ("task_serializer", "yaml"),
        ("open_source_license", "GPL-3.0"),
        ("open_source_license", 'MIT"\nevil = true'),
    ],
)
def test_a_tampered_answers_file_is_refused_and_writes_nothing(tmp_path, name, value):
    result, output = replayed(tmp_path, **{name: value})
    assert result.returncode == 1
    assert f"ERROR: {name} {value!r} is not one of" in result.stderr
    assert_no_traceback(result)
    assert list(output.iterdir()) == []


def test_an_untampered_answers_file_renders(tmp_path):
    result, output = replayed(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (output / "my_service" / "api").is_dir()


def hook_function(name):
    """A function of the post-generation hook, loaded without rendering it."""
    source = (TEMPLATE / "hooks" / "post_gen_project.py").read_text()
    source = source.replace("{{ cookiecutter | jsonify | tojson }}", '"{}"')
    namespace = {"__name__": "hook"}
    exec(compile(source, "post_gen_project.py", "exec"), namespace)
    return namespace[name]


def test_the_answers_file_keeps_nothing_of_how_it_was_rendered(tmp_path):
    """Every render of the same answers writes the same file (`cruft update`
    applies the difference of two renders of its own to it); and with no
    template URL kept, none of its credentials are."""
    answers = {
        "project_name": "My Service",
        "_extensions": ["filters.Extension"],
        "_copy_without_render": ["api/migrations/script.py.mako"],
        "_template": "https://user:token@git.example.com/team/tpl.git",
        "_commit": "0123456789abcdef0123456789abcdef01234567",
        "_checkout": "main",
        "_output_dir": str(tmp_path),
        "_repo_dir": "/home/me/.cookiecutters/tpl",
    }
    hook_function("write_answers")(tmp_path, answers)
    kept = json.loads((tmp_path / ".cookiecutter.json").read_text())["cookiecutter"]
    assert kept == {
        "project_name": "My Service",
        "_extensions": ["filters.Extension"],
        "_copy_without_render": ["api/migrations/script.py.mako"],
    }
