"""pytest fixtures that both suites take: the service's (tests/conftest.py)
and the engine's (tests/engine/conftest.py, which also runs on its own, as
`make test-oldest` runs it). Each conftest imports them.

Ports where a dependency is dead: one that refuses connections (a service
that is down), one that accepts them and never says a word (a service that
hangs), and `dead_port`, each of the two in turn.
"""

from collections.abc import Iterator

import pytest

import testkit


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: connections are refused at once."""
    return testkit.free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: clients wait."""
    with testkit.silent_port() as port:
        yield port


@pytest.fixture(params=["closed", "silent"])
def dead_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A closed port, then a silent one (the test runs once with each)."""
    if request.param == "closed":
        yield testkit.free_port()
    else:
        with testkit.silent_port() as port:
            yield port
