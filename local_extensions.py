"""Jinja filters of this template, loaded by cookiecutter through `_extensions`.

Free-text answers (names, descriptions, e-mails) land inside string literals;
these filters quote them so that any answer gives valid, formatted code.
"""

import json

from jinja2 import Environment
from jinja2.ext import Extension


def toml_string(value: object) -> str:
    """A TOML basic string. JSON's string syntax is a subset of TOML's; unlike
    Jinja's `tojson`, this keeps `&`, `<`, `>`, `'` and accents as they are."""
    # DEL is the one character TOML wants escaped that JSON leaves alone.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def python_string(value: object) -> str:
    """A Python string literal quoted the way ruff's formatter writes it:
    double quotes, unless single quotes need fewer escapes."""
    text = str(value).replace("\\", "\\\\")
    quote = '"' if text.count('"') <= text.count("'") else "'"
    text = text.replace(quote, "\\" + quote)
    escaped = (
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )
    return quote + "".join(escaped) + quote


class QuotingExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["toml_string"] = toml_string
        environment.filters["python_string"] = python_string
