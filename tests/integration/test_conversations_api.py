from __future__ import annotations

import uuid

import httpx


async def test_create_then_get_a_conversation(client: httpx.AsyncClient) -> None:
    made = await client.post("/v1/conversations", json={"title": "Payments", "metadata": {"k": 1}})
    assert made.status_code == 201
    body = made.json()
    assert made.headers["location"] == f"/v1/conversations/{body['id']}"
    got = await client.get(made.headers["location"])
    assert got.status_code == 200
    assert got.json() == body


async def test_list_is_paginated_newest_first(client: httpx.AsyncClient) -> None:
    for i in range(5):
        assert (await client.post("/v1/conversations", json={"title": f"c{i}"})).status_code == 201
    titles, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/conversations", params=params)).json()
        titles += [c["title"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert titles == ["c4", "c3", "c2", "c1", "c0"]


async def test_unknown_fields_are_refused_not_silently_dropped(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/conversations", json={"title": "t", "owner": "someone-else"})
    assert answer.status_code == 422
    assert answer.json()["detail"] == "body.owner: Extra inputs are not permitted"
    listed = (await client.get("/v1/conversations")).json()
    assert listed["items"] == []


async def test_a_blank_title_is_a_422_and_nothing_is_written(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/conversations", json={"title": "   "})
    assert answer.status_code == 422
    assert answer.json()["detail"] == "title must not be blank"
    assert (await client.get("/v1/conversations")).json()["items"] == []


async def test_bad_ids_cursors_and_limits_get_clear_errors(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/v1/conversations/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert "does not exist" in missing.json()["detail"]
    not_uuid = await client.get("/v1/conversations/42")
    assert not_uuid.status_code == 422
    assert not_uuid.json()["errors"][0]["location"] == "path.conversation_id"
    too_big = await client.get("/v1/conversations", params={"limit": 1000})
    assert too_big.status_code == 422
    assert too_big.json()["errors"][0]["location"] == "query.limit"
    bad_cursor = await client.get("/v1/conversations", params={"cursor": "zzz"})
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["detail"] == "cursor is not one this API returned"
