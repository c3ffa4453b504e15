"""Shape the rendered project to the answers, write its secrets, say what is next.

Runs inside the new project directory, offline, with the standard library only.
"""

import json
import runpy
import shutil
import sys
from pathlib import Path

# Cookiecutter renders this file first: the answers arrive as a JSON string.
ANSWERS = json.loads({{ cookiecutter | jsonify | tojson }})  # noqa: F821  # fmt: skip

# What each answer turns off: (answer, value) -> paths removed from the project.
# A new capability adds its switch here together with its files.
PRUNED_PATHS = {
    ("open_source_license", "Not open source"): ["LICENSE"],
    ("queue_type", "classic"): ["compose.cluster.yaml", "docs/broker-cluster.md", "rabbitmq"],
    ("use_examples", False): [
        "api/app/api/v1/private/example_tasks.py",
        "api/app/api/v1/private/notes.py",
        "api/app/api/v1/sockets/live_page.py",
        "api/app/api/v1/sockets/page",
        "api/app/models/note.py",
        "api/app/schemas/example_task.py",
        "api/app/schemas/note.py",
        "api/migrations/versions/20260102_0002_notes.py",
        "api/tests/test_example_task_socket.py",
        "api/tests/test_example_tasks.py",
        "api/tests/test_live_page.py",
        "api/tests/test_notes.py",
        "worker/tests/test_example_tasks.py",
        "worker/worker/example_tasks.py",
    ],
    ("use_websockets", False): [
        "api/app/api/v1/sockets",
        "api/benchmarks/socket_events.py",
        "api/tests/test_example_task_socket.py",
        "api/tests/sockets.py",
        "api/tests/test_live_page.py",
        "api/tests/test_task_socket.py",
        "docs/websockets.md",
    ],
    ("use_monitoring", False): [
        "api/tests/test_kubernetes_monitoring.py",
        "compose.monitoring.yaml",
        "deploy/kubernetes/monitoring",
        "docs/kubernetes-monitoring.md",
        "docs/monitoring.md",
        "monitoring",
        "scripts/kubernetes_rules.py",
    ],
    ("use_github_actions", False): [".github"],
    ("use_kubernetes", False): [
        "api/tests/kubernetes_manifests.py",
        "api/tests/test_kubernetes.py",
        "api/tests/test_kubernetes_monitoring.py",
        "deploy",
        "docs/kubernetes-monitoring.md",
        "docs/kubernetes.md",
        "scripts/kubernetes_rules.py",
        "scripts/kubernetes_secrets.py",
    ],
}

# Keys that describe how the project was rendered, not the project: where,
# from which checkout or commit (`_commit` is cruft's), and the template's
# location, which may carry credentials and is spelled as each command was
# given it. The answers file must come out the same from every render of the
# same answers and template commit: `cruft update` applies the difference
# between two renders of its own to the project's copy, and a line that differs
# there is a conflict. The template's other private keys (_extensions,
# _copy_without_render) stay: a replay needs them.
RENDER_KEYS = ("_output_dir", "_repo_dir", "_checkout", "_commit", "_template")


# A switch answered on the command line arrives as text: the words of
# cookiecutter's yes/no prompt (the pre-generation hook refused any other).
YES_WORDS = ("1", "true", "t", "yes", "y", "on")


def means(answer: object, value: object) -> bool:
    """Whether the answer is this value; a switch's text means its boolean."""
    if isinstance(value, bool) and isinstance(answer, str):
        return (answer.strip().lower() in YES_WORDS) == value
    return answer == value


def prune(project: Path, answers: dict) -> None:
    for (name, value), paths in PRUNED_PATHS.items():
        if not means(answers[name], value):
            continue
        for relative in paths:
            path = project / relative
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def write_env(project: Path) -> None:
    """Write .env with fresh secrets, unless a re-render finds one to keep: the
    project's own script does it, the one `make env` runs after a fresh clone."""
    script = runpy.run_path(str(project / "scripts" / "write_env.py"))
    script["write_env"](project)


def write_answers(project: Path, answers: dict) -> None:
    """Keep the answers, in cookiecutter's replay format, to re-render later."""
    kept = {key: value for key, value in answers.items() if key not in RENDER_KEYS}
    text = json.dumps({"cookiecutter": kept}, indent=2, sort_keys=True)
    (project / ".cookiecutter.json").write_text(text + "\n")


def next_steps(project: Path, answers: dict) -> str:
    return (
        f"\nRendered {answers['project_name']} into {project}\n"
        "Next steps:\n"
        f"  cd {project}\n"
        "  docker compose up --build   # the whole stack in containers; then open\n"
        "                              # http://127.0.0.1:8000/docs\n"
        "Or run it locally:\n"
        "  make install   # virtual environment with the API, the worker and dev tools\n"
        "  make migrate   # database schema (PostgreSQL must be running)\n"
        "  make worker    # in one terminal (RabbitMQ and Redis must be running)\n"
        "  make api       # in another; then open http://127.0.0.1:8000/docs\n"
        "  make test      # the service's tests, against the real services\n"
        "Secrets are in .env (git-ignored); .env.example documents each setting.\n"
    )


def main() -> int:
    project = Path.cwd()
    prune(project, ANSWERS)
    write_env(project)
    write_answers(project, ANSWERS)
    print(next_steps(project, ANSWERS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
