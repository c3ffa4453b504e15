"""Jinja filters of this template, loaded by cookiecutter through `_extensions`.

Free-text answers (names, descriptions, e-mails) land inside string literals;
these filters quote them so that any answer gives valid, formatted code. A
switch is read through `enabled`, whatever form its answer took.

`cruft update` renders the project's template commit and then the newest one in
one Python process, and Jinja imports this module by name each time. So that the
second render gets its own filters, the extension forgets this module once it
has loaded (see QuotingExtension). Neither cookiecutter nor cruft imports the
module from a path of its own choosing: they append the template's directory to
sys.path around a render (cookiecutter's `main`, cruft's AltTemporaryDirectory),
and cruft checks both commits out in that one directory. A re-import therefore
finds the file of the commit being rendered. The module's name is used by no
older commit of the template (they had `local_extensions`, which stays cached
after an old render), and must stay unique on sys.path: an earlier entry with a
module of this name would win.
"""

import contextlib
import json
import re
import sys
from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension


def toml_string(value: object) -> str:
    """A TOML basic string, which is also a YAML double-quoted scalar: JSON's
    string syntax is a subset of both. Unlike Jinja's `tojson`, this keeps `&`,
    `<`, `>`, `'` and accents as they are."""
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


# The words of cookiecutter's yes/no prompt that mean yes. A switch answered on
# the command line (`use_websockets=no`) arrives as text, which Jinja would
# take as true whatever it says; the pre-generation hook refuses other words.
YES_WORDS = ("1", "true", "t", "yes", "y", "on")


def enabled(answer: object) -> bool:
    """A switch's answer as a boolean: true/false from cookiecutter.json, a
    prompt or a replay file, or the text of a command-line answer."""
    if isinstance(answer, str):
        return answer.strip().lower() in YES_WORDS
    return bool(answer)


def kubernetes_name(value: object) -> str:
    """A Kubernetes name (an RFC 1123 label) made of a slug: lowercase letters,
    digits and inner hyphens; a slug may start or end with an underscore."""
    return re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-")[:63].rstrip("-") or "service"


def image_tag(value: object) -> str:
    """A container image tag made of a version: PEP 440's `+` and `!` are not
    allowed in one."""
    return re.sub(r"[^\w.-]", "-", str(value))[:128]


def forget_this_module() -> None:
    """Let the next import read this module's file again, wherever it is then.

    Not done at import time: the import machinery looks the module up in
    sys.modules right after running it. Its cached bytecode goes too: cruft
    rewrites this file in place between its two renders, and Python trusts a
    cache whose recorded size and modification second match, as an edit of
    the same length within the same second would.
    """
    sys.modules.pop(__name__, None)
    cached = globals().get("__cached__")
    if cached:
        # cruft's checkout is a temporary directory of its own; elsewhere, best effort.
        with contextlib.suppress(OSError):
            Path(cached).unlink(missing_ok=True)


class QuotingExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        forget_this_module()
        environment.filters["toml_string"] = toml_string
        environment.filters["python_string"] = python_string
        # The same quoting, named for where it is used.
        environment.filters["yaml_string"] = toml_string
        environment.filters["enabled"] = enabled
        environment.filters["kubernetes_name"] = kubernetes_name
        environment.filters["image_tag"] = image_tag
