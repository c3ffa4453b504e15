"""Every setting of both services, and every variable of the compose files, is
in the one settings table of the rendered docs/settings.md, with its default;
.env.example holds only what differs between deployments, grouped, and each of
its variables is a setting or a compose variable that the table documents."""

import ast
import re

import pytest
from conftest import TEMPLATE

# Where each settings class of a render lives, and its name; the service the
# table's "read by" column names for it.
SETTINGS_CLASSES = {
    "API": ("api/app/core/config.py", "Settings"),
    "API WebSocket": ("api/app/api/v1/sockets/config.py", "SocketSettings"),
    "worker": ("worker/worker/config.py", "Settings"),
}
READ_BY = {"API": "API", "API WebSocket": "API", "worker": "worker"}
COMPOSE_FILES = ("compose.yaml", "compose.monitoring.yaml", "compose.cluster.yaml")
# Read by Compose itself, not through ${...} in a compose file.
COMPOSE_OWN = {"COMPOSE_FILE"}
MAX_ENV_EXAMPLE_VARIABLES = 25
# A variable a compose file reads, with its default when it has one:
# ${NAME}, ${NAME:-default}, ${NAME:?message}; `$${NAME}` is the container's own.
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)(?::?([-?])([^}]*))?\}")
ENV_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=")

RENDERS = {
    "every switch on": {},
    "every switch off": {
        "use_examples": False,
        "use_websockets": False,
        "use_monitoring": False,
        "use_github_actions": False,
    },
}


@pytest.fixture(params=list(RENDERS), scope="module")
def project(request, cookies_session):
    result = cookies_session.bake(extra_context=RENDERS[request.param], template=str(TEMPLATE))
    assert result.exception is None, result.exception
    return result.project_path


def settings_fields(source: str, class_name: str = "Settings") -> dict[str, ast.expr | None]:
    """The fields of a settings class in a rendered config module, each with
    the expression of its default (None when it has none)."""
    (settings,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == class_name
    ]
    fields = {}
    for statement in settings.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            value = statement.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "Field":
                value = next((kw.value for kw in value.keywords if kw.arg == "default"), None)
            fields[statement.target.id] = value
    return fields


def constant(node: ast.expr | None) -> object:
    """The value of a default written with constants only (`1024 * 1024`), or None."""
    if node is None:
        return None
    allowed = ast.Constant | ast.BinOp | ast.operator
    if not all(isinstance(part, allowed) for part in ast.walk(node)):
        return None
    return eval(compile(ast.Expression(node), "<default>", "eval"))  # constants only


def documented(value: object) -> str | None:
    """How the table writes a default: `true`, `1.5`, `30/minute`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:f}".rstrip("0").rstrip(".")
    if isinstance(value, str) and value:
        return value
    return None


def settings_table(project) -> dict[str, dict[str, str]]:
    """The rows of the one table of docs/settings.md, by variable."""
    lines = (project / "docs/settings.md").read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("| variable |")]
    assert len(starts) == 1, "docs/settings.md has one settings table"
    header = [cell.strip().strip("`") for cell in lines[starts[0]].strip("|").split("|")]
    rows = {}
    for line in lines[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        values = [cell.strip() for cell in line.strip("|").split("|")]
        cells = dict(zip(header, values, strict=True))
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells["variable"])
        assert len(names) == 1, f"one variable per row: {line}"
        assert names[0] not in rows, f"{names[0]} has two rows"
        rows[names[0]] = cells
    return rows


def compose_variables(project) -> dict[str, str | None]:
    """Every variable the compose files read, with its default (None: none)."""
    variables: dict[str, str | None] = {}
    for name in COMPOSE_FILES:
        path = project / name
        if path.exists():
            for variable, kind, default in COMPOSE_VARIABLE.findall(path.read_text()):
                given = default if kind == "-" else None
                variables[variable] = variables.get(variable) or given
    return variables


def env_example(project) -> list[list[str]]:
    """.env.example as its groups: runs of lines between empty lines."""
    groups, current = [], []
    for line in (project / ".env.example").read_text().splitlines():
        if line.strip():
            current.append(line)
        elif current:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def appears(text: str, cell: str) -> bool:
    """Whether a default is written in the cell, as a whole token."""
    return re.search(rf"(?<![\w.]){re.escape(text)}(?![\w.])", cell.replace("`", " ")) is not None


def test_every_setting_is_in_the_table_with_its_service_and_default(project):
    table = settings_table(project)
    problems = []
    for service, (path, class_name) in SETTINGS_CLASSES.items():
        if not (project / path).exists():
            continue
        fields = settings_fields((project / path).read_text(), class_name)
        assert fields, f"no settings found in {path}"
        for name, default in fields.items():
            row = table.get(name)
            if row is None:
                problems.append(f"{service} {name} is not in the settings table")
                continue
            if READ_BY[service] not in row["read by"]:
                problems.append(f"{name}: 'read by' does not name the {READ_BY[service]}")
            text = documented(constant(default))
            if text is not None and not appears(text, row["default"]):
                problems.append(f"{name}: default {text} of {path} not in {row['default']!r}")
    assert problems == []


def test_every_compose_variable_is_in_the_table_with_its_default(project):
    table = settings_table(project)
    problems = []
    for name, default in compose_variables(project).items():
        row = table.get(name)
        if row is None:
            problems.append(f"{name} of the compose files is not in the settings table")
            continue
        if "compose" not in row["read by"]:
            problems.append(f"{name}: 'read by' does not name compose")
        if default and not appears(default, row["default"]):
            problems.append(f"{name}: compose's default {default} not in {row['default']!r}")
    assert problems == []


def test_the_table_names_only_what_something_reads(project):
    table = settings_table(project)
    known = set(compose_variables(project)) | COMPOSE_OWN
    for path, class_name in SETTINGS_CLASSES.values():
        if (project / path).exists():
            known |= set(settings_fields((project / path).read_text(), class_name))
    # Read from the process environment by the API's code and by uvicorn.
    known |= {"PROMETHEUS_MULTIPROC_DIR", "FORWARDED_ALLOW_IPS"}
    assert sorted(set(table) - known) == []


def test_env_example_holds_few_variables_in_groups_each_documented(project):
    groups = env_example(project)
    variables = [
        match.group(1) for group in groups for line in group if (match := ENV_LINE.match(line))
    ]
    assert len(variables) <= MAX_ENV_EXAMPLE_VARIABLES, variables
    assert len(variables) == len(set(variables)), "a variable given twice"
    # Grouped: each group of variables opens with a comment that says what it is for.
    with_variables = [group for group in groups if any(ENV_LINE.match(line) for line in group)]
    assert len(with_variables) >= 3
    for group in with_variables:
        assert group[0].startswith("#"), f"a group without its comment: {group[0]}"

    settings = set()
    for path, class_name in SETTINGS_CLASSES.values():
        if (project / path).exists():
            settings |= set(settings_fields((project / path).read_text(), class_name))
    compose = set(compose_variables(project)) | COMPOSE_OWN
    table = settings_table(project)
    marked = {name for name, row in table.items() if row[".env.example"] == "yes"}
    assert [name for name in variables if name not in settings | compose] == []
    assert [name for name in variables if name not in table] == []
    # The table's marks say exactly what .env.example holds.
    assert sorted(marked) == sorted(variables)


def test_the_check_reads_fields_and_their_defaults():
    source = (
        "class Settings(Base):\n"
        "    A: int = 1\n"
        "    B: str\n"
        "    C: int = Field(default=2 * 512, gt=0)\n"
        "    D: str = NAME + '-long'\n"
        "    def m(self): ...\n"
    )
    fields = settings_fields(source)
    assert list(fields) == ["A", "B", "C", "D"]
    assert [documented(constant(fields[name])) for name in fields] == ["1", None, "1024", None]
    assert appears("1", "`1` (one)") and not appears("1", "`10`")
    assert appears("1.5", "`1.5`") and not appears("5", "`1.5`")
