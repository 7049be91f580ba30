"""Route: the event feed (docs/api.md §8), read with a cursor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from sdk.models import EventPage

from ..errors import CentreError
from .common import POLL_INTERVAL_SECONDS, Context, json_response

__all__ = ["router"]


def router(ctx: Context) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/events", response_model=EventPage, tags=["events"])
    async def events(
        request: Request,
        after: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        who = await ctx.caller(request)
        position = _cursor(after)
        # an injected fault replays the last two events (the feed is at-least-once)
        start = max(0, position - 2) if position and ctx.faults.duplicate_event() else position
        batch = ctx.store.events_after(who.institution_id, start, limit + 1)
        has_more = len(batch) > limit
        batch = batch[:limit]
        cursor = str(max(position, batch[-1]["sequence"])) if batch else str(position)
        page = EventPage.model_validate(
            {
                "events": batch,
                "next_cursor": cursor,
                "has_more": has_more,
                "poll_interval_seconds": POLL_INTERVAL_SECONDS,
            }
        )
        return json_response(page)

    return api


#: a cursor is a feed position: what SQLite's INTEGER holds (a larger one answered 500, issue 17 item 8)
MAX_CURSOR = 2**63 - 1


def _cursor(after: str | None) -> int:
    """The feed position a cursor names; 422 for anything but ASCII digits up to :data:`MAX_CURSOR`."""
    if not after:
        return 0
    if not (after.isascii() and after.isdigit()) or len(after) > 19 or int(after) > MAX_CURSOR:
        raise CentreError(422, "validation_failed", "after must be a cursor from next_cursor")
    return int(after)
