"""Validate the answers before cookiecutter writes anything that matters.

Each problem is reported on one line that names the answer, says what is wrong
and gives an example of a good value. The hook exits 1 without a traceback, and
cookiecutter then removes the half-made output directory.
"""

import json
import keyword
import re
import sys

# Cookiecutter renders this file first: the answers arrive as a JSON string.
ANSWERS = json.loads({{ cookiecutter | jsonify | tojson }})  # noqa: F821  # fmt: skip

# Names the rendered service imports or runs as top-level modules: a project
# package with one of these names would shadow them.
RESERVED_SLUGS = frozenset(
    {
        "alembic",
        "api",
        "app",
        "asyncpg",
        "celery",
        "conftest",
        "fastapi",
        "httpx",
        "kombu",
        "migrations",
        "pydantic",
        "pydantic_settings",
        "pytest",
        "redis",
        "sqlalchemy",
        "starlette",
        "test",
        "tests",
        "uvicorn",
        "worker",
    }
)

SLUG = re.compile(r"[a-z_][a-z0-9_]*")
# The slug names the PostgreSQL database; the API's tests derive names up to
# 22 characters longer from it, and PostgreSQL allows 63.
SLUG_MAX = 40
# RabbitMQ queue names and compose service names share this safe subset;
# "amq." is reserved by AMQP for the broker's own queues and exchanges.
WORKER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
WORKER_NAME_MAX = 63
EMAIL = re.compile(r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}", re.IGNORECASE)
# Top-level domains that the API's e-mail validation refuses (RFC 6761 and kin).
SPECIAL_USE_DOMAINS = ("arpa", "invalid", "local", "localhost", "onion", "test")
# The e-mail and the name end up inside Python string literals; past this
# length the formatter would wrap those lines and the project would not pass
# its own `ruff format --check`.
TEXT_MAX = 60
# PEP 440's public version scheme, as written in its appendix.
PEP440 = re.compile(
    r"v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*"
    r"(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?"
    r"(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?"
    r"(?:[-_.]?dev[-_.]?[0-9]*)?"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?",
    re.IGNORECASE,
)


def slug_problem(slug: str) -> str | None:
    if not SLUG.fullmatch(slug):
        return (
            "must be a lowercase Python identifier (letters, digits, _; not starting with a digit)"
        )
    if len(slug) > SLUG_MAX:
        return f"is longer than {SLUG_MAX} characters"
    if keyword.iskeyword(slug):
        return "is a Python keyword"
    if slug in RESERVED_SLUGS or slug in sys.stdlib_module_names:
        return "would shadow a module the service imports"
    return None


def worker_name_problem(name: str) -> str | None:
    if len(name) > WORKER_NAME_MAX:
        return f"is longer than {WORKER_NAME_MAX} characters"
    if name.startswith("amq."):
        return "starts with 'amq.', which AMQP reserves for the broker"
    if not WORKER_NAME.fullmatch(name):
        return "must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def email_problem(email: str) -> str | None:
    if len(email) > TEXT_MAX:
        return f"is longer than {TEXT_MAX} characters"
    if not EMAIL.fullmatch(email):
        return "does not look like an e-mail address"
    if email.rsplit(".", 1)[-1].lower() in SPECIAL_USE_DOMAINS:
        return "uses a special-use domain that e-mail validation refuses"
    return None


def name_problem(name: str) -> str | None:
    if not name.strip():
        return "is empty"
    if len(name) > TEXT_MAX:
        return f"is longer than {TEXT_MAX} characters"
    return None


def version_problem(version: str) -> str | None:
    return None if PEP440.fullmatch(version) else "is not a PEP 440 version"


# A switch answered on the command line (`use_websockets=no`) arrives as text;
# these are the words cookiecutter's own yes/no prompt accepts.
SWITCH_WORDS = ("1", "true", "t", "yes", "y", "on", "0", "false", "f", "no", "n", "off")


def switch_problem(answer: str) -> str | None:
    return None if answer.strip().lower() in SWITCH_WORDS else "is neither yes nor no"


CHECKS = (
    ("project_name", name_problem, "My Service"),
    ("project_slug", slug_problem, "my_service"),
    ("worker_name", worker_name_problem, "my-service-worker"),
    ("author_email", email_problem, "team@example.com"),
    ("version", version_problem, "0.1.0"),
    ("use_examples", switch_problem, "no"),
    ("use_websockets", switch_problem, "no"),
    ("use_monitoring", switch_problem, "no"),
    ("use_github_actions", switch_problem, "no"),
)


# Answers that default to a value derived from another one: say so, since the
# user may never have typed the value that is refused.
DERIVED_FROM = {
    "project_slug": " Unless answered, it is derived from project_name.",
    "worker_name": " Unless answered, it is derived from project_slug.",
}


def derived_worker_name(slug: str) -> str:
    """The default worker_name, as cookiecutter.json derives it from the slug."""
    return slug.replace("_", "-") + "-worker"


# The choices of cookiecutter.json (a template test keeps them equal).
# Cookiecutter checks a choice only when it prompts: a replayed or edited
# answers file is taken as written, and its text would land in Python and TOML.
CHOICES = {
    "task_serializer": ("json", "pickle"),
    "queue_type": ("quorum", "classic"),
    "open_source_license": ("MIT", "BSD-3-Clause", "Apache-2.0", "Not open source"),
}


def choice_problems(answers: dict) -> list[str]:
    found = []
    for name, choices in CHOICES.items():
        if answers.get(name) not in choices:
            found.append(f"ERROR: {name} {answers.get(name)!r} is not one of {list(choices)}.")
    return found


def problems(answers: dict) -> list[str]:
    found = choice_problems(answers)
    bad = set()
    for name, check, example in CHECKS:
        value = str(answers[name])
        # A worker_name derived from a refused slug repeats the slug's mistake.
        slug = answers["project_slug"]
        if name == "worker_name" and "project_slug" in bad and value == derived_worker_name(slug):
            continue
        problem = check(value)
        if problem:
            bad.add(name)
            line = f"ERROR: {name} {value!r} {problem}; for example {example!r}."
            found.append(line + DERIVED_FROM.get(name, ""))
    return found


def main() -> int:
    found = problems(ANSWERS)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
