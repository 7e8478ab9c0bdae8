"""Customer data over HTTP only for a caller with the token; none at all without a token set."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from streams.live.web import authenticated

pytestmark = pytest.mark.unit


class Web:
    def json(self, value: Any, status: int = 200, headers: Any = None) -> tuple[int, Any]:
        return status, value


async def handler(web: Any, request: Any, customer_id: str) -> tuple[int, Any]:
    return 200, {"customer_id": customer_id}


def call(token: str | None, header: str | None) -> tuple[int, Any]:
    request = SimpleNamespace(headers={} if header is None else {"Authorization": header})
    return asyncio.run(authenticated(token)(handler)(Web(), request, customer_id="c1"))


def test_the_right_token_gets_the_customer() -> None:
    assert call("s3cret", "Bearer s3cret") == (200, {"customer_id": "c1"})


@pytest.mark.parametrize("header", [None, "Bearer wrong", "s3cret", "Bearer s3cret ", "Basic s3cret"])
def test_no_token_or_another_gets_401(header: str | None) -> None:
    assert call("s3cret", header)[0] == 401


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer anything"])
def test_without_a_token_configured_no_one_gets_customer_data(header: str | None) -> None:
    status, body = call(None, header)
    assert status == 403 and "SEGMENTER_WEB_TOKEN" in body["error"]
