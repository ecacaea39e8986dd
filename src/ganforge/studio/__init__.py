"""``ganforge studio``: a local web app to look at runs and use every model.

One page (``static/``: HTML, vanilla JavaScript and CSS, nothing fetched from elsewhere) over a
small Starlette app (`app`) served by uvicorn on 127.0.0.1 unless told otherwise.  The views:
Runs (figures, sample grid, loss curves, two side by side), Generate, Explore (interpolation,
style mixing, InfoGAN's code sweep), Image in/image out (translate, inpaint, upscale) and Text
in (stackgan).  Every field is checked on the server with the CLI's one-line messages
(`fields`, `work`); runs are named by ids the studio hands out, never by paths (`runs`).

It is an optional extra (``pip install 'ganforge[studio]'``): nothing here is imported by the
rest of the package, and the CLI imports it only for ``ganforge studio``."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UserError

EXTRA_MISSING = "the studio needs its extra: pip install 'ganforge[studio]'"
DEFAULT_PORT = 8765


def _require_extra() -> None:
    try:
        import multipart  # noqa: F401  (python-multipart: the uploads)
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UserError(EXTRA_MISSING) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def address(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), or a one-line error."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: use a port from 1 to 65535 (or 0 for a free one)")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as err:
        raise UserError(
            f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --port "
            "(0 picks a free one) or --host"
        ) from None
    return sock


def _server(roots: list[str | Path], host: str, port: int, device: str):
    _require_extra()
    import uvicorn

    from .app import Studio, build_app

    studio = Studio(roots, device=device)
    sock = _bind(host, port)
    config = uvicorn.Config(
        build_app(studio), log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )
    return uvicorn.Server(config), sock


def serve(
    roots: list[str | Path],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    device: str = "cpu",
) -> None:
    """Serve the studio on the runs under ``roots`` until interrupted; prints its address."""
    server, sock = _server(roots, host, port, device)
    if not is_loopback(host):
        print(
            f"warning: the studio listens on {host}: anyone who can reach this machine on that "
            "network can use it and see the runs it shows (it has no login)",
            file=sys.stderr,
        )
    print(f"GANForge studio at {address(host, sock.getsockname()[1])}", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@contextlib.contextmanager
def running(
    roots: list[str | Path], *, host: str = "127.0.0.1", port: int = 0, device: str = "cpu"
) -> Iterator[str]:
    """The studio served from a thread for as long as the ``with`` lasts; yields its address
    (for tests and the screenshot script)."""
    server, sock = _server(roots, host, port, device)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()

    def wait() -> None:
        while not server.started and thread.is_alive():
            started.wait(0.02)

    wait()
    try:
        if not server.started:
            raise RuntimeError("the studio did not start")
        yield address(host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


__all__: list[Any] = ["EXTRA_MISSING", "running", "serve"]
