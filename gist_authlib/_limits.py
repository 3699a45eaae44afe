"""Bounded answers: every body read from Gist has a size cap and a deadline.

httpx2's timeouts bound each wait for a byte, not a whole answer: a server trickling one byte a second keeps a
request alive for ever, and one sending 100 MB is read into memory whole. The token exchange, the token
information lookup and the API client read every answer through :func:`read_bounded` (or its async form)
instead, from a response opened with ``stream=True``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import NamedTuple

import httpx2

from ._types import JSON

__all__ = [
    "Answer",
    "AnswerTooLarge",
    "Deadline",
    "Send",
    "aread_bounded",
    "asend",
    "read_bounded",
    "read_json",
    "send",
]


class AnswerTooLarge(Exception):
    """An answer's body is larger than its cap; what was read of it is dropped.

    Attributes:
        limit: the cap, in bytes.
        status: the answer's HTTP status, when known.
    """

    def __init__(self, limit: int, status: int | None = None) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit
        self.status = status


class Deadline:
    """A point in time (``time.monotonic``) a whole call must end by.

    Args:
        seconds: how long from now; ``None`` for no deadline beyond each request's own timeouts.
    """

    __slots__ = ("at",)

    def __init__(self, seconds: float | None) -> None:
        self.at = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        """Seconds left (0 when past), or ``None`` without a deadline."""
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def timeout(self, per_request: float | httpx2.Timeout | None) -> httpx2.Timeout:
        """A request's timeout, cut to what is left of the deadline.

        Raises:
            httpx2.TimeoutException: the deadline has passed.
        """
        base = per_request if isinstance(per_request, httpx2.Timeout) else httpx2.Timeout(per_request)
        left = self.remaining()
        if left is None:
            return base
        if left <= 0:
            raise httpx2.ReadTimeout("the call ran past its deadline")

        def cut(value: float | None) -> float:
            return left if value is None else min(value, left)

        return httpx2.Timeout(
            connect=cut(base.connect), read=cut(base.read), write=cut(base.write), pool=cut(base.pool)
        )

    def check(self) -> None:
        """Raise when the deadline has passed.

        Raises:
            httpx2.ReadTimeout: it has.
        """
        if self.at is not None and time.monotonic() > self.at:
            raise httpx2.ReadTimeout("the answer took longer than its deadline")


def _declared_too_large(response: httpx2.Response, limit: int) -> bool:
    declared = response.headers.get("content-length", "")
    return declared.isdigit() and int(declared) > limit


def read_bounded(response: httpx2.Response, *, limit: int, deadline: Deadline) -> bytes:
    """The body of a streamed ``response``, at most ``limit`` bytes (decoded), read before ``deadline``.

    The response is closed either way.

    Raises:
        AnswerTooLarge: the body (as declared, or as read) is larger than ``limit``.
        httpx2.TimeoutException: the deadline passed between two chunks, or a chunk took longer than the
            request's read timeout.
    """
    try:
        if _declared_too_large(response, limit):
            raise AnswerTooLarge(limit, response.status_code)
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise AnswerTooLarge(limit, response.status_code)
            deadline.check()
        return bytes(body)
    finally:
        response.close()


async def aread_bounded(response: httpx2.Response, *, limit: int, deadline: Deadline) -> bytes:
    """The async form of :func:`read_bounded`."""
    try:
        if _declared_too_large(response, limit):
            raise AnswerTooLarge(limit, response.status_code)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise AnswerTooLarge(limit, response.status_code)
            deadline.check()
        return bytes(body)
    finally:
        await response.aclose()


def read_json(body: bytes) -> JSON:
    """``body`` parsed as JSON.

    Raises:
        ValueError: it is not JSON (``json.JSONDecodeError`` and ``UnicodeDecodeError`` are both ValueErrors).
    """
    parsed: JSON = json.loads(body)
    return parsed


class Answer(NamedTuple):
    """An answer read whole (within its cap): its status, headers and body."""

    status: int
    headers: httpx2.Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class Send:
    """The effect of a flow that needs an HTTP request sent: answer it with an :class:`Answer` whose body is at
    most ``limit`` bytes, read before ``deadline`` (:func:`send` and :func:`asend` do)."""

    request: httpx2.Request
    limit: int
    deadline: Deadline


def send(client: httpx2.Client, effect: Send) -> Answer:
    """Perform a :class:`Send` with a sync client."""
    effect.request.extensions["timeout"] = effect.deadline.timeout(client.timeout).as_dict()
    response = client.send(effect.request, stream=True)
    body = read_bounded(response, limit=effect.limit, deadline=effect.deadline)
    return Answer(response.status_code, response.headers, body)


async def asend(client: httpx2.AsyncClient, effect: Send) -> Answer:
    """Perform a :class:`Send` with an async client."""
    effect.request.extensions["timeout"] = effect.deadline.timeout(client.timeout).as_dict()
    response = await client.send(effect.request, stream=True)
    body = await aread_bounded(response, limit=effect.limit, deadline=effect.deadline)
    return Answer(response.status_code, response.headers, body)
