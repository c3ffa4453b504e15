"""A single task's message filled in from a template (MessageTemplates) is the
message Celery's canvas builds for it; anything else is built by the canvas."""

from datetime import UTC, datetime, timedelta

import pytest
from celery.canvas import Signature

from app.core.config import Settings
from app.core.producer.catalog import Catalog
from app.core.producer.client import create_celery_client
from app.core.producer.messages import MessageTemplates, OutgoingMessage, build_messages
from app.services.submissions import freeze


@pytest.fixture(scope="module")
def catalog(settings: Settings) -> Catalog:
    client = create_celery_client(settings)
    return Catalog(client, "messages-test", "messages-test-long")


def signatures(catalog: Catalog, expires: datetime) -> list[Signature]:
    return [
        catalog.integer_multiplication(integer=21, expires=expires),
        catalog.integer_multiplication(integer=-(2**40), expires=expires),
        catalog.integers_sum(integers=[1, 2, 3] * 50, expires=expires),
        catalog.long_running(seconds=0.5, steps=3, expires=expires),
    ]


def comparable(message: OutgoingMessage) -> tuple[object, ...]:
    """All of a message but its TTL, which counts down while it is built."""
    properties = {key: value for key, value in message.properties.items() if key != "expiration"}
    return (
        message.exchange,
        message.routing_key,
        message.body,
        message.content_type,
        message.content_encoding,
        message.headers,
        message.delivery_mode,
        properties,
        [queue.name for queue in message.declare],
    )


@pytest.mark.parametrize("seconds", [10.0, 3600.0])
def test_a_filled_message_is_the_one_celery_builds(catalog: Catalog, seconds: float) -> None:
    templates = MessageTemplates(catalog.client)
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    # Twice over: the first of each task makes its template, the second is filled in.
    for signature in signatures(catalog, expires) * 2:
        freeze(signature)
        [filled] = templates.build(signature).messages
        [built] = build_messages(signature).messages
        assert comparable(filled) == comparable(built)
        assert filled.properties["expiration"] == pytest.approx(
            built.properties["expiration"], abs=0.5
        )
    assert len(templates._templates) == 3  # integer_multiplication, integers_sum, long_running


def test_workflows_and_other_options_are_built_by_celery(catalog: Catalog) -> None:
    templates = MessageTemplates(catalog.client)
    expires = datetime.now(UTC) + timedelta(seconds=10)
    warm = catalog.integer_multiplication(integer=1, expires=expires)
    freeze(warm)
    templates.build(warm)
    # A countdown: Celery writes an ETA, which no template has.
    delayed = catalog.integer_multiplication(integer=1, expires=expires).set(countdown=5)
    freeze(delayed)
    assert templates.build(delayed).messages[0].headers["eta"] is not None
    chain = catalog.chain(integer=1, size=2, expires=expires)
    freeze(chain)
    assert [comparable(message) for message in templates.build(chain).messages] == [
        comparable(message) for message in build_messages(chain).messages
    ]
