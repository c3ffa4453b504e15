"""The template's filters: quoted literals read back as the answer, and a
switch means what its answer says, in the templates and the hooks alike."""

import ast
import os
import re
import shutil
import sys
import tomllib

import pytest
import yaml
from conftest import CONTEXT, FILTERS_MODULE, TEMPLATE
from jinja2 import Environment

from fastapi_celery_filters import (
    YES_WORDS,
    enabled,
    image_tag,
    kubernetes_name,
    python_string,
    toml_string,
)

ANSWERS = [
    "My Service",
    "O'Brien",
    'Say "hi"',
    """Both ' and " and ''' and \"\"\"""",
    "back\\slash and \\N{not an escape}",
    "Ünïcödé & <tags> 🚀",
    "tab\tand bell\x07 and del\x7f",
    "",
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_python_literal_reads_back(answer):
    literal = python_string(answer)
    assert ast.literal_eval(literal) == answer
    assert "\n" not in literal


@pytest.mark.parametrize("answer", ANSWERS)
def test_toml_string_reads_back(answer):
    assert tomllib.loads(f"value = {toml_string(answer)}")["value"] == answer


@pytest.mark.parametrize("answer", ANSWERS)
def test_the_toml_string_is_a_yaml_string_too(answer):
    assert yaml.safe_load(f"value: {toml_string(answer)}")["value"] == answer


def test_python_literal_prefers_double_quotes():
    assert python_string("plain") == '"plain"'
    assert python_string("it's") == '"it\'s"'
    assert python_string('say "hi"') == "'say \"hi\"'"


@pytest.mark.parametrize(
    ("answer", "meant"),
    [(True, True), (False, False), ("yes", True), (" On ", True), ("no", False), ("0", False)],
)
def test_enabled_reads_a_switch_as_the_prompt_would(answer, meant):
    assert enabled(answer) is meant


def tuple_in(path, name):
    """The value of a module-level literal assignment in a hook's source."""
    source = path.read_text().replace("{{ cookiecutter | jsonify | tojson }}", '"{}"')
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"no {name} in {path}")


# An RFC 1123 label, as Kubernetes names namespaces and labels.
KUBERNETES_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


@pytest.mark.parametrize(
    ("slug", "name"),
    [("my_service", "my-service"), ("_private_", "private"), ("a__b", "a-b"), ("_", "service")],
)
def test_kubernetes_name_of_a_slug(slug, name):
    assert kubernetes_name(slug) == name


def test_kubernetes_name_of_the_longest_slug_is_a_label():
    assert KUBERNETES_LABEL.fullmatch(kubernetes_name("s" * 40 + "_" + "t" * 40))


@pytest.mark.parametrize(
    ("version", "tag"),
    [("0.1.0", "0.1.0"), ("1.0.0rc1", "1.0.0rc1"), ("1!2.0+local.7", "1-2.0-local.7")],
)
def test_image_tag_of_a_version(version, tag):
    assert image_tag(version) == tag


def test_the_hooks_know_the_same_yes_words_as_the_filter():
    hooks = TEMPLATE / "hooks"
    assert tuple_in(hooks / "post_gen_project.py", "YES_WORDS") == YES_WORDS
    switch_words = tuple_in(hooks / "pre_gen_project.py", "SWITCH_WORDS")
    assert set(YES_WORDS) < set(switch_words)


def test_the_hook_checks_exactly_the_choices_of_cookiecutter_json():
    checked = tuple_in(TEMPLATE / "hooks" / "pre_gen_project.py", "CHOICES")
    offered = {
        name: tuple(value)
        for name, value in CONTEXT.items()
        if isinstance(value, list) and not name.startswith("_")
    }
    assert checked == offered


def test_a_filters_module_rewritten_in_place_is_read_again(
    tmp_path, monkeypatch, import_path_without_this_checkout
):
    """cruft checks the newer commit out over the module it imported for the
    older one, in the same directory and process: even an edit of the same
    length with the same modification time (Python's bytecode cache checks
    only these) must give the newer filters."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    sys.path.append(str(tmp_path))
    module = tmp_path / f"{FILTERS_MODULE}.py"
    shutil.copy2(TEMPLATE / module.name, module)
    assert "enabled" in Environment(extensions=CONTEXT["_extensions"]).filters

    written = module.stat()
    module.write_text(module.read_text().replace('filters["enabled"]', 'filters["ENABLED"]'))
    os.utime(module, ns=(written.st_atime_ns, written.st_mtime_ns))
    assert module.stat().st_size == written.st_size

    filters = Environment(extensions=CONTEXT["_extensions"]).filters
    assert "ENABLED" in filters
    assert "enabled" not in filters
