"""Running the sandbox over real HTTP.

- ``start_in_thread``: a uvicorn server in a daemon thread on a free 127.0.0.1 port, for tests
  that need a real socket (a lost response only exists on one) and for the demo. It returns
  once the server accepts connections; ``stop()`` (or leaving the ``with`` block) shuts it down.
- ``serve``: the same app in the foreground until interrupted, for ``procore-sync sandbox``.

Both use uvicorn's h11 protocol, at log level "warning" with no access log. The gate drops
lost responses on purpose, so uvicorn's error line about an unfinished response is filtered out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from sandbox.app import create_app
from sandbox.config import SandboxConfig
from sandbox.store import Store

DROPPED_ON_PURPOSE = "ASGI callable returned without completing response."
START_TIMEOUT_S = 10.0


class _DroppedResponseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != DROPPED_ON_PURPOSE


def _quiet_dropped_responses() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _DroppedResponseFilter) for existing in logger.filters):
        logger.addFilter(_DroppedResponseFilter())


def _uvicorn_config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    _quiet_dropped_responses()
    return uvicorn.Config(
        app, host=host, port=port, http="h11", lifespan="off", log_level="warning", access_log=False,
        date_header=False,  # the gate sends the sandbox clock's Date, not the machine's
    )


class _SignallingServer(uvicorn.Server):
    """A uvicorn server that tells another thread when it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class SandboxServer:
    """A sandbox served on ``url`` from a background thread."""

    def __init__(self, app: FastAPI, server: _SignallingServer, thread: threading.Thread, url: str) -> None:
        self.app = app
        self.url = url
        self._server = server
        self._thread = thread

    @property
    def store(self) -> Store:
        store: Store = self.app.state.store
        return store

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=START_TIMEOUT_S)
        self.app.state.sandbox.webhooks.stop()
        self.store.flush()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def start_in_thread(
    config: SandboxConfig,
    clock: Callable[[], float] = time.time,
    host: str = "127.0.0.1",
    port: int = 0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> SandboxServer:
    """Serve a new sandbox in a daemon thread; returns once it accepts connections.

    ``sleep`` serves added latency and held syncs (``sync_hold_ms``); a test may pass one that
    waits for its signal instead of for time, to make two requests overlap for certain.
    """
    app = create_app(config, clock, sleep)
    server, thread, url = run_in_thread(app, "procore-sandbox", host, port)
    return SandboxServer(app, server, thread, url)


def run_in_thread(app: FastAPI, name: str, host: str = "127.0.0.1",
                  port: int = 0) -> tuple[_SignallingServer, threading.Thread, str]:
    """Serve ``app`` from a daemon thread; returns once it accepts connections."""
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted connections only when
    # the listener says TCP, and without it each answer on a kept-alive connection waits ~40 ms
    # for a delayed acknowledgement (measured: 42 ms a call, 2 ms with it).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))  # port 0: the OS picks a free one, and we can read which
    bound_port = listener.getsockname()[1]
    server = _SignallingServer(_uvicorn_config(app, host, bound_port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name=name, daemon=True)
    thread.start()
    if not server.ready.wait(START_TIMEOUT_S):
        server.should_exit = True
        raise RuntimeError(f"{name} did not start on {host}:{bound_port}")
    return server, thread, f"http://{host}:{bound_port}"


def serve(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve a sandbox in the foreground until interrupted (Ctrl+C)."""
    app = create_app(config)
    try:
        uvicorn.Server(_uvicorn_config(app, host, port)).run()
    finally:
        app.state.sandbox.webhooks.stop()
        app.state.store.flush()
