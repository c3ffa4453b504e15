import uuid

import pytest
from httpx import AsyncClient

from app.models import User
from tests.conftest import MakeUser

NOTES_URL = "/api/v1/notes"


async def create(client: AsyncClient, headers: dict, title: str, body: str = "") -> dict:
    response = await client.post(NOTES_URL, json={"title": title, "body": body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_read_update_delete(client: AsyncClient, user: User, auth_headers) -> None:
    headers = auth_headers(user)
    note = await create(client, headers, "Groceries", "eggs")
    url = f"{NOTES_URL}/{note['id']}"

    read = await client.get(url, headers=headers)
    assert read.status_code == 200
    assert read.json()["body"] == "eggs"

    updated = await client.patch(url, json={"body": "eggs, milk"}, headers=headers)
    assert updated.status_code == 200
    assert updated.json()["title"] == "Groceries"
    assert updated.json()["body"] == "eggs, milk"
    assert updated.json()["updated_at"] >= note["updated_at"]

    deleted = await client.delete(url, headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404
    assert (await client.delete(url, headers=headers)).status_code == 404


async def test_users_only_ever_see_their_own_notes(
    client: AsyncClient, user: User, make_user: MakeUser, auth_headers
) -> None:
    owner, other = auth_headers(user), auth_headers(await make_user())
    note = await create(client, owner, "Private")
    url = f"{NOTES_URL}/{note['id']}"

    assert (await client.get(url, headers=other)).status_code == 404
    assert (await client.patch(url, json={"body": "mine now"}, headers=other)).status_code == 404
    assert (await client.delete(url, headers=other)).status_code == 404
    assert (await client.get(NOTES_URL, headers=other)).json()["total"] == 0
    # The owner's note is untouched.
    read = await client.get(url, headers=owner)
    assert read.status_code == 200
    assert read.json()["body"] == ""


async def test_same_title_is_a_conflict_for_one_user_only(
    client: AsyncClient, user: User, make_user: MakeUser, auth_headers
) -> None:
    headers = auth_headers(user)
    await create(client, headers, "Plan")
    duplicate = await client.post(NOTES_URL, json={"title": "Plan"}, headers=headers)
    assert duplicate.status_code == 409
    other = await create(client, headers, "Other")
    renamed = await client.patch(
        f"{NOTES_URL}/{other['id']}", json={"title": "Plan"}, headers=headers
    )
    assert renamed.status_code == 409
    # Another user may use the same title.
    await create(client, auth_headers(await make_user()), "Plan")


async def test_list_is_paginated_newest_first(
    client: AsyncClient, user: User, auth_headers
) -> None:
    headers = auth_headers(user)
    titles = [f"note {index}" for index in range(5)]
    for title in titles:
        await create(client, headers, title)
    page = (await client.get(NOTES_URL, params={"limit": 2}, headers=headers)).json()
    rest = (await client.get(NOTES_URL, params={"offset": 2}, headers=headers)).json()
    assert page["total"] == rest["total"] == 5
    assert (page["offset"], page["limit"]) == (0, 2)
    listed = [note["title"] for note in page["items"] + rest["items"]]
    assert sorted(listed) == sorted(titles)
    assert listed[0] == "note 4"


@pytest.mark.parametrize("note", [{"title": "a\x00b"}, {"title": "t", "body": "\x00"}])
async def test_a_nul_character_is_422_not_a_500(
    client: AsyncClient, user: User, auth_headers, note: dict
) -> None:
    response = await client.post(NOTES_URL, json=note, headers=auth_headers(user))
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "x" * 201},
        {"body": "no title"},
        {"title": "t", "body": "x" * 10_001},
    ],
)
async def test_invalid_note_is_422(
    client: AsyncClient, user: User, auth_headers, body: dict
) -> None:
    response = await client.post(NOTES_URL, json=body, headers=auth_headers(user))
    assert response.status_code == 422


async def test_unknown_and_malformed_ids(client: AsyncClient, user: User, auth_headers) -> None:
    headers = auth_headers(user)
    assert (await client.get(f"{NOTES_URL}/{uuid.uuid4()}", headers=headers)).status_code == 404
    assert (await client.get(f"{NOTES_URL}/not-a-uuid", headers=headers)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", NOTES_URL), ("POST", NOTES_URL), ("GET", f"{NOTES_URL}/{uuid.uuid4()}")],
)
async def test_notes_need_a_token(client: AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json={"title": "x"})
    assert response.status_code == 401
