"""Every setting of both services is documented where users look for it."""

import ast

# Where each settings class of a default render lives, and its name.
FILES = {
    "API": ("api/app/core/config.py", "Settings"),
    "API WebSocket": ("api/app/api/v1/sockets/config.py", "SocketSettings"),
    "worker": ("worker/worker/config.py", "Settings"),
}


def settings_fields(source: str, class_name: str = "Settings") -> list[str]:
    """The field names of a settings class in a rendered config module."""
    (settings,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == class_name
    ]
    return [
        statement.target.id
        for statement in settings.body
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
    ]


def test_every_setting_is_in_env_example_and_the_readme_table(bake):
    project = bake()
    example = (project / ".env.example").read_text().splitlines()
    readme = (project / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `")]
    missing = []
    for service, (path, class_name) in FILES.items():
        names = settings_fields((project / path).read_text(), class_name)
        assert names, f"no settings found in {path}"
        for name in names:
            if not any(line.lstrip("# ").startswith(f"{name}=") for line in example):
                missing.append(f"{service} {name} not in .env.example")
            if not any(f"`{name}`" in row for row in table):
                missing.append(f"{service} {name} not in the README's settings table")
    assert missing == []


def test_the_check_finds_fields_of_a_settings_class():
    source = "class Settings(Base):\n    A: int = 1\n    B: str\n    def m(self): ...\n"
    assert settings_fields(source) == ["A", "B"]
