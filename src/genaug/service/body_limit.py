"""A cap on request bodies outside uploads: a 20 MB JSON job would be stored in the job's row
and sent back by every ``GET /api/jobs``.

Pure ASGI middleware, so the cap holds for chunked bodies too: a declared Content-Length over
the cap is answered 413 before the body is read, and an undeclared body is counted as it
arrives and cut off at the cap. Uploads (``POST /api/datasets``) have their own, larger limit
(``GENAUG_MAX_UPLOAD_BYTES``), enforced while they stream to disk.
"""
from __future__ import annotations

import json
from typing import Callable


class BodyLimitMiddleware:
    """413 for a request body over ``max_bytes`` on every path except ``exempt`` ones."""

    def __init__(self, app, max_bytes: int, exempt: Callable[[str, str], bool]):
        self.app, self.max_bytes, self.exempt = app, int(max_bytes), exempt

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.exempt(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        received = 0
        state = {"started": False, "refused": False}

        async def counting_receive():
            nonlocal received
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not state["started"]:
                    # Answer now, and tell the app the client has gone: whatever it does with
                    # that (FastAPI's body parser would say 400), nothing more is sent.
                    state["refused"] = True
                    await self._refuse(send, None)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, send, size) -> None:
        what = f"{size:,} bytes" if size is not None else "more"
        body = json.dumps({"detail": f"body: {what} is over this service's limit of {self.max_bytes:,} bytes "
                                     "for a request (uploads have their own limit)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
