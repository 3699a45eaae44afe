"""A Gist app with a canvas, in the spirit of Gist's starter app, with Starlette and gist_authlib.

Gist shows the app beside each conversation in the inbox. On load, Gist POSTs to the initialize URL and
the app answers with a list of the contact's orders and a Refresh button. A click on an order POSTs to the
submit URL and the app answers with that order's details and a Back button. The app keeps which orders the
teammate opened in ``stored_data``, which Gist sends back with the next click, so the app itself stores
nothing.

Settings come from the environment:

    GIST_CLIENT_SECRET    your app's client secret from Gist's Developer Hub: Gist signs its requests with it

Run it:   GIST_CLIENT_SECRET=... uvicorn --factory gist_authlib.examples.canvas_app:create_app --port 8001
Then enter http://<your host>:8001/gist/canvas/initialize and .../submit as the app's canvas URLs in Gist,
or see it in the local sandbox's inbox:

    gist-authlib sandbox --client-secret "$GIST_CLIENT_SECRET" --canvas-url http://127.0.0.1:8001/gist/canvas

and open http://127.0.0.1:8765/inbox.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gist_authlib.canvas import Button, Canvas, Divider, InitializeRequest, List, ListItem, SubmitRequest, Text
from gist_authlib.starlette import canvas_routes

#: A stand-in for your shop's database: each contact's orders, made up from the contact's id.
STATUSES = ("Delivered", "Shipped", "Being packed")


def orders_of(contact_id: object) -> list[dict[str, Any]]:
    """The contact's orders (made up, the same every time for one contact)."""
    seed = int(str(contact_id)) if str(contact_id).isdigit() else 7
    return [
        {
            "id": str(40000 + seed * 10 + n),
            "status": STATUSES[(seed + n) % len(STATUSES)],
            "total": f"{19 + (seed * 7 + n * 13) % 80}.00 EUR",
            "items": ["Tea sampler", "Ceramic mug", "Gift wrap"][: 1 + (seed + n) % 3],
        }
        for n in range(3)
    ]


def order_list(request: InitializeRequest, opened: list[str]) -> Canvas:
    """The first view: the contact's orders, as list rows Gist lets the teammate click."""
    contact = request.contact
    name = (contact.name if contact else None) or "this visitor"
    rows = [
        ListItem(
            id=f"order:{order['id']}",
            title=f"Order #{order['id']}",
            subtitle=f"{order['status']}, {order['total']}" + (" (opened)" if order["id"] in opened else ""),
        )
        for order in orders_of(contact.id if contact else None)
    ]
    return Canvas(
        [
            Text(f"**Orders of {name}**", style="header"),
            List(rows),
            Divider(),
            Button("refresh", "Refresh", style="secondary"),
        ],
        stored_data={"opened": opened},
    )


def order_detail(request: SubmitRequest, order: Mapping[str, Any], opened: list[str]) -> Canvas:
    """The second view: one order, and the way back."""
    return Canvas(
        [
            Text(f"**Order #{order['id']}**", style="header"),
            Text(f"Status: {order['status']}"),
            Text(f"Total: {order['total']}"),
            Text("Items: " + ", ".join(order["items"]), style="muted"),
            Divider(),
            Text(f"{len(opened)} order{'s' if len(opened) != 1 else ''} opened in this conversation.", style="muted"),
            Button("back", "Back to the orders", style="secondary"),
        ],
        stored_data={"opened": opened},
    )


async def on_initialize(request: InitializeRequest) -> Canvas:
    """Gist loads the app: show the orders."""
    return order_list(request, opened=[])


async def on_submit(request: SubmitRequest) -> Canvas:
    """A row or a button was clicked: ``component_id`` says which, ``stored_data`` what came before."""
    before = request.stored_data.get("opened")  # what this app stored; still JSON that came back through Gist
    opened = [str(o) for o in before if isinstance(o, str | int)] if isinstance(before, list) else []
    if request.component_id and request.component_id.startswith("order:"):
        wanted = request.component_id.removeprefix("order:")
        order = next((o for o in orders_of(request.contact.id if request.contact else None) if o["id"] == wanted), None)
        if order is not None:
            if wanted not in opened:
                opened.append(wanted)
            return order_detail(request, order, opened)
    return order_list(request, opened)  # "back", "refresh", or an order that is gone


def create_app(environ: Mapping[str, str] | None = None) -> Starlette:
    """Build the canvas app from ``environ`` (the process environment by default)."""
    env = environ if environ is not None else os.environ
    secret = env.get("GIST_CLIENT_SECRET")
    if not secret:
        raise RuntimeError("Set GIST_CLIENT_SECRET to your app's client secret: Gist signs canvas requests with it.")

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("A Gist canvas app: Gist POSTs to /gist/canvas/initialize and /gist/canvas/submit.")

    return Starlette(
        routes=[Route("/", home), *canvas_routes(secret, on_initialize=on_initialize, on_submit=on_submit)]
    )


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8001")))
