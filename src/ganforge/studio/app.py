"""The studio's web app: one page (static/) and a small JSON API, on Starlette.

Every request that runs a model goes through `_work`: it waits for one of `WORKERS` worker
threads (a queue of at most `QUEUE` requests; past that the studio answers "busy" at once),
holds the run's own lock while its model works, and turns a `UserError` into HTTP 400
``{"error": "<the one line>"}``.  Anything else is logged here and answered as one line
without its traceback."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import UserError
from . import runs, work

STATIC = Path(__file__).with_name("static")
#: model work at once, and requests that may wait for it
WORKERS, QUEUE = 2, 32
#: the largest request body read (an upload and its fields)
MAX_BODY = work.MAX_UPLOAD_BYTES + 64 * 2**10
#: a larger body is still read (and dropped) up to this, so that the client, which sends it
#: whole before it reads the answer, gets the one-line refusal rather than a reset connection
DRAIN_BODY = 64 * 2**20
#: what the page may load: only this server (no CDN, no fonts, no scripts from elsewhere)
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
log = logging.getLogger("ganforge.studio")


class Studio:
    """The state behind the app: the run index, the model cache and the work queue."""

    def __init__(self, roots: list[str | Path], device: str = "cpu") -> None:
        self.index = runs.RunIndex(roots)
        self.index.scan()
        self.models = work.ModelCache(device)
        self.limiter = anyio.CapacityLimiter(WORKERS)
        self.waiting = 0
        self._count = threading.Lock()

    async def run(self, fn: Callable[[], Any]) -> Any:
        with self._count:
            if self.waiting >= QUEUE:
                raise UserError("the studio is busy with other requests; try again in a moment")
            self.waiting += 1
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self.limiter)
        finally:
            with self._count:
                self.waiting -= 1


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _fields(request: Request) -> tuple[dict[str, Any], work.Upload | None]:
    """The submitted fields (JSON or a multipart form) and the uploaded image, if any."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        if length.isdigit() and int(length) <= DRAIN_BODY:
            async for _ in request.stream():  # read and dropped, so the client hears the line
                pass
        raise UserError(
            f"the request is larger than the studio takes ({MAX_BODY // 2**20} MiB with its "
            "fields); choose a smaller image"
        )
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/json"):
        body = await _body(request)
        try:
            import json

            data = json.loads(body or b"{}")
        except ValueError:
            raise UserError("the request is not valid JSON") from None
        if not isinstance(data, dict):
            raise UserError("the request must be a JSON object of fields")
        return data, None
    if not kind.startswith("multipart/form-data"):
        raise UserError("send the fields as JSON or as a form")
    try:
        form = await request.form(max_files=1, max_fields=32, max_part_size=MAX_BODY)
    except HTTPException as err:
        raise UserError(f"the form could not be read ({err.detail})") from None
    fields: dict[str, Any] = {}
    upload = None
    for key, value in form.multi_items():
        if isinstance(value, str):
            fields[key] = value
        elif key == "image":
            payload = await value.read(MAX_BODY + 1)
            upload = work.check_upload(payload, _safe_name(value.filename))
    await form.close()
    return fields, upload


async def _body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise UserError("the request is larger than the studio takes; send less")
        chunks.append(chunk)
    return b"".join(chunks)


def _safe_name(name: str | None) -> str:
    """An upload's file name as shown back: its last part, printable, at most 80 characters."""
    base = (name or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c if c.isprintable() and c not in "'\"<>" else "_" for c in base)
    return (clean or "upload")[:80]


def build_app(studio: Studio) -> Starlette:
    """The Starlette app of ``studio``."""

    async def guarded(request: Request, handler) -> Response:
        try:
            return await handler(request)
        except UserError as err:
            return _error(str(err))
        except OSError as err:  # as the CLI says it: the file system refused
            where = f" '{err.filename}'" if err.filename else ""
            return _error(f"cannot use{where}: {err.strerror or err}")
        except Exception as err:  # noqa: BLE001 - the client gets one line, never a traceback
            traceback.print_exc(file=sys.stderr)
            return _error(f"internal error ({type(err).__name__}); see the studio's log", 500)

    def endpoint(handler):
        async def wrapped(request: Request) -> Response:
            response = await guarded(request, handler)
            response.headers["Cache-Control"] = "no-store"
            return response

        return wrapped

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def list_runs(request: Request) -> Response:
        found = await anyio.to_thread.run_sync(studio.index.scan)
        described = await anyio.to_thread.run_sync(lambda: [runs.describe(r) for r in found])
        return JSONResponse({"runs": described, "roots": [str(r) for r in studio.index.roots]})

    async def run_info(request: Request) -> Response:
        ref = studio.index.get(request.query_params.get("run"))
        info = await anyio.to_thread.run_sync(lambda: runs.describe(ref))
        info["curves"] = await anyio.to_thread.run_sync(lambda: runs.loss_curves(ref))
        return JSONResponse(info)

    async def run_sample(request: Request) -> Response:
        ref = studio.index.get(request.query_params.get("run"))
        grid = runs.newest_sample(ref)
        if grid is None:
            raise UserError(f"run '{ref.name}' has no sample grid yet")
        return FileResponse(grid, media_type="image/png")

    async def model_info(request: Request) -> Response:
        ref = studio.index.get(request.query_params.get("run"))
        item = await studio.run(lambda: studio.models.get(ref))
        return JSONResponse({"id": ref.id, **work.capabilities(item)})

    def operation(fn):
        async def handler(request: Request) -> Response:
            fields, upload = await _fields(request)
            ref = studio.index.get(fields.get("run"))

            def job() -> Any:
                item = studio.models.get(ref)
                with item.lock:
                    if fn is work.image_to_image:
                        return fn(item, fields, upload)
                    if upload is not None:
                        raise UserError("this operation takes no image; drop the file")
                    return fn(item, fields)

            return JSONResponse(await studio.run(job))

        return handler

    routes = [
        Route("/", index),
        Route("/api/runs", endpoint(list_runs)),
        Route("/api/run", endpoint(run_info)),
        Route("/api/run/sample.png", endpoint(run_sample)),
        Route("/api/model", endpoint(model_info)),
        Route("/api/generate", endpoint(operation(work.generate)), methods=["POST"]),
        Route("/api/walk", endpoint(operation(work.walk)), methods=["POST"]),
        Route("/api/mix", endpoint(operation(work.mix)), methods=["POST"]),
        Route("/api/sweep", endpoint(operation(work.sweep)), methods=["POST"]),
        Route("/api/text", endpoint(operation(work.caption)), methods=["POST"]),
        Route("/api/image", endpoint(operation(work.image_to_image)), methods=["POST"]),
        Route("/api/test-item", endpoint(operation(work.test_preview)), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _error(f"{exc.status_code}: {exc.detail}", exc.status_code)

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: not_found},
        middleware=[Middleware(SecurityHeaders)],
    )


class SecurityHeaders:
    """Adds the content policy (nothing loads from elsewhere) and friends to every response."""

    HEADERS = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *self.HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
