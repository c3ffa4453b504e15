"""scripts/smoke_test.py runs without the project's code, so it writes out the
echo task's route: it must stay the route the API serves."""

import importlib.util
from pathlib import Path

from app.api.v1.private.tasks import ECHO_PATH

SMOKE_TEST = Path(__file__).resolve().parents[2] / "scripts" / "smoke_test.py"


def test_the_smoke_test_calls_the_echo_route() -> None:
    spec = importlib.util.spec_from_file_location("smoke_test", SMOKE_TEST)
    assert spec is not None and spec.loader is not None
    smoke_test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke_test)
    assert smoke_test.ECHO_PATH == ECHO_PATH
