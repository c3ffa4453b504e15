"""Every setting of both services is documented where users look for it."""

import ast

FILES = {
    "API": "api/app/core/config.py",
    "worker": "worker/worker/config.py",
}


def settings_fields(source: str) -> list[str]:
    """The field names of the `Settings` class in a rendered config module."""
    (settings,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "Settings"
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
    for service, path in FILES.items():
        names = settings_fields((project / path).read_text())
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
