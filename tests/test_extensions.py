"""The template's quoting filters give literals that read back as the answer."""

import ast
import tomllib

import pytest

from local_extensions import python_string, toml_string

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


def test_python_literal_prefers_double_quotes():
    assert python_string("plain") == '"plain"'
    assert python_string("it's") == '"it\'s"'
    assert python_string('say "hi"') == "'say \"hi\"'"
