"""Reject oversized request bodies with 413 before they are read into memory."""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# JSON bodies are a few hundred bytes; the cap only stops a client from making the API buffer megabytes.
MAX_BODY_BYTES = 64 * 1024
# Uploads get their own, larger cap: the one route whose body is a file (see UPLOAD_PATH).
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
UPLOAD_PATH = "/resize/upload"


class BodySizeLimit:
    """Pure ASGI middleware: checks Content-Length up front and counts streamed bytes for chunked bodies."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_max_bytes: int, upload_prefix: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes
        self.upload_prefix = upload_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_max_bytes if scope["path"].startswith(self.upload_prefix) else self.max_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reject(send, limit)
            return
        seen = 0
        rejected = False

        async def counting_receive() -> Message:
            nonlocal seen, rejected
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit and not rejected:
                    # Answer 413 ourselves, then tell the app the client left, so it stops reading.
                    rejected = True
                    await _reject(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:  # the 413 is already on the wire; drop whatever the app answers
                await send(message)

        await self.app(scope, counting_receive, guarded_send)


async def _reject(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"Request body exceeds the {limit}-byte limit"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
