"""`cruft update` of a render to this working tree applies cleanly and gives what a
fresh `cruft create` gives; two renders in one process each get their own filters.

cruft renders the project's template commit and the newest one in one process,
then applies the difference between the two renders to the project with
`git apply`: any file that differs between two renders of the same answers, or
a filter module cached from the first render, breaks every team's next update.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import FILTERS_MODULE, TEMPLATE, project_files
from cookiecutter.main import cookiecutter

# A commit of this repository's history that has the update fix (the filters
# module that forgets itself, `.env` skipped in the render's pyproject.toml, an
# answers file that every render writes alike). Projects are created there and
# updated to the working tree, so it must stay in the history of main.
BASE = "2713d86e6631824a657db3992c03e51d0ea542a9"
# The last commit before that fix: what every project made until then has.
BEFORE_FIX = "f1374e45ad22152555cf5ec9a34c791e68aec270"

SWITCHES_OFF = {"use_websockets": False, "use_monitoring": False, "use_github_actions": False}

# An author for the commits the test makes, on any machine.
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Template Test",
    "GIT_AUTHOR_EMAIL": "template-test@example.com",
    "GIT_COMMITTER_NAME": "Template Test",
    "GIT_COMMITTER_EMAIL": "template-test@example.com",
}
CONFLICT_MARKER = re.compile(r"^(<{7}|>{7})( |$)|^={7}$", re.MULTILINE)


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True)


def git(cwd: Path, *arguments: str) -> str:
    result = run(["git", *arguments], cwd)
    assert result.returncode == 0, f"git {' '.join(arguments)}: {result.stderr}"
    return result.stdout


def commit_all(repository: Path, message: str) -> None:
    git(repository, "add", "--all")
    git(repository, "-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", message)


def working_tree_files() -> list[str]:
    """This checkout's files as they are now: tracked (unless deleted) and
    untracked but not ignored, so that uncommitted work is tested too."""
    listed = git(TEMPLATE, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return sorted({name for name in listed.split("\0") if name and (TEMPLATE / name).is_file()})


def copy_working_tree(destination: Path) -> None:
    for name in working_tree_files():
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE / name, destination / name)


def cruft(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The cruft command line, run where no copy of the filters module lies:
    `python -m` puts the working directory first on sys.path."""
    result = run([sys.executable, "-m", "cruft", *arguments], cwd)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output, output
    return result


def cruft_create(template: Path, output: Path, answers: dict, *options: str) -> Path:
    output.mkdir()
    arguments = ["create", str(template), "--no-input", "--output-dir", str(output)]
    cruft([*arguments, "--extra-context", json.dumps(answers), *options], output)
    (project,) = output.iterdir()
    return project


def tree(project: Path) -> dict[str, tuple[bytes, bool]]:
    """Each file's content and whether it is executable; `.env` aside, whose
    secrets are fresh in every render, and `.git`."""
    return {
        path.relative_to(project).as_posix(): (path.read_bytes(), os.access(path, os.X_OK))
        for path in project_files(project)
        if ".git" not in path.relative_to(project).parts and path.name != ".env"
    }


def changed_paths(repository: Path) -> set[str]:
    """Every path git status reports, staged or not, untracked ones included."""
    status = git(repository, "status", "--porcelain", "-z", "--untracked-files=all")
    entries = iter(status.split("\0"))
    paths = set()
    for entry in entries:
        if entry:
            paths.add(entry[3:])
            if entry[0] in "RC":  # a rename's source follows it
                paths.add(next(entries))
    return paths


def require_in_history(name: str, commit: str) -> None:
    if run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], TEMPLATE).returncode != 0:
        pytest.fail(
            f"{name} = {commit} (tests/test_update.py) is not in the history of "
            f"{TEMPLATE}: a shallow clone needs `git fetch --unshallow`; a rewritten "
            f"history needs {name} set to the commit that took its place",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def template_repository(tmp_path_factory) -> Path:
    """A clone of this repository with the working tree committed as its HEAD."""
    require_in_history("BASE", BASE)
    require_in_history("BEFORE_FIX", BEFORE_FIX)
    clone = tmp_path_factory.mktemp("update") / "template"
    git(TEMPLATE, "clone", "--quiet", str(TEMPLATE), str(clone))
    for name in git(clone, "ls-files", "-z").split("\0"):
        if name:
            (clone / name).unlink()
    copy_working_tree(clone)
    commit_all(clone, "The working tree under test")
    return clone


@pytest.fixture(scope="module")
def fresh_project(template_repository, tmp_path_factory):
    """What `cruft create` of the template's HEAD makes of these answers, made once."""
    made = {}

    def create(answers: dict) -> Path:
        key = json.dumps(answers, sort_keys=True)
        if key not in made:
            output = tmp_path_factory.mktemp("fresh") / "out"
            made[key] = cruft_create(template_repository, output, answers)
        return made[key]

    return create


@pytest.mark.parametrize(
    ("start", "answers"),
    [(BASE, {}), (BASE, SWITCHES_OFF), (BEFORE_FIX, {})],
    ids=["defaults", "switches-off", "made-before-the-fix"],
)
def test_cruft_update_gives_what_a_fresh_create_gives(
    template_repository, fresh_project, tmp_path, start, answers
):
    project = cruft_create(template_repository, tmp_path / "out", answers, "--checkout", start)
    # What the README asks of a project made before the fix.
    kept_state = {"skip": [".env"]} if start == BEFORE_FIX else {}
    if kept_state:
        cruft_file = project / ".cruft.json"
        cruft_file.write_text(json.dumps({**json.loads(cruft_file.read_text()), **kept_state}))
    git(project, "init", "--quiet")
    commit_all(project, "Rendered")
    before = tree(project)
    secrets = (project / ".env").read_bytes()

    cruft(["update", "-y"], project)

    after = tree(project)
    assert sorted(path for path in after if path.endswith(".rej")) == []
    text = {path: data.decode(errors="replace") for path, (data, _) in after.items()}
    assert [path for path in text if CONFLICT_MARKER.search(text[path])] == []
    fresh = tree(fresh_project(answers))
    expected = {path for path in before | fresh if before.get(path) != fresh.get(path)}
    assert changed_paths(project) == expected
    assert (project / ".env").read_bytes() == secrets

    # .cruft.json too: the template's new commit and context, as a fresh create
    # writes them, and nothing more than what the project put there itself.
    state, fresh_state = (json.loads(files.pop(".cruft.json")[0]) for files in (after, fresh))
    assert state == {**fresh_state, **kept_state}
    assert after.keys() == fresh.keys()
    assert [path for path in after if after[path] != fresh[path]] == []


def add_a_filter(template: Path) -> None:
    """A filter the template did not have, used by one of its files: what broke
    every team's update when the template changed its filters."""
    module = template / f"{FILTERS_MODULE}.py"
    last = '        environment.filters["enabled"] = enabled\n'
    source = module.read_text()
    assert last in source, f"add_a_filter needs a new place to add its line in {module.name}"
    shout = '        environment.filters["shout"] = str.upper\n'
    module.write_text(source.replace(last, last + shout))
    readme = template / "{{cookiecutter.project_slug}}" / "README.md"
    readme.write_text(readme.read_text() + "\nShouted: {{ cookiecutter.project_name | shout }}\n")


@pytest.mark.parametrize("older_commit", [None, BEFORE_FIX], ids=["working-tree", "before-the-fix"])
def test_two_renders_in_one_process_each_get_their_own_filters(
    tmp_path, monkeypatch, import_path_without_this_checkout, older_commit
):
    """The older template is this working tree, or the commit before the fix,
    whose module (`local_extensions`) stays cached after its render; the newer
    is this working tree with one more filter."""
    older, newer = tmp_path / "older", tmp_path / "newer"
    if older_commit:
        require_in_history("BEFORE_FIX", older_commit)
        archive = tmp_path / "older.zip"
        git(TEMPLATE, "archive", "--format=zip", f"--output={archive}", older_commit)
        zipfile.ZipFile(archive).extractall(older)
        monkeypatch.delitem(sys.modules, "local_extensions", raising=False)
    else:
        copy_working_tree(older)
    copy_working_tree(newer)
    add_a_filter(newer)

    # cookiecutter's own directories (replay files, clones) in tmp_path, not in ~.
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'cc'}\nreplay_dir: {tmp_path / 'replay'}\n")
    first, second = (
        cookiecutter(str(copy), no_input=True, output_dir=f"{copy}-render", config_file=str(config))
        for copy in (older, newer)
    )

    assert "Shouted" not in (Path(first) / "README.md").read_text()
    assert "Shouted: MY SERVICE" in (Path(second) / "README.md").read_text()
