"""A TCP proxy that a test can cut and restore: a broker outage for our processes only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from switchboard_testing.net import free_port


class CuttableProxy:
    """Forwards 127.0.0.1:`port` to `target`. `cut()` drops every connection and
    refuses new ones; `restore()` listens again on the same port."""

    def __init__(self, port: int, target_host: str, target_port: int) -> None:
        self.port = port
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    @classmethod
    def in_front_of(cls, url: str, default_port: int) -> CuttableProxy:
        """A proxy on a free port for the server at `url`; `.url` is `url` through it."""
        parts = urlsplit(url)
        proxy = cls(free_port(), parts.hostname or "127.0.0.1", parts.port or default_port)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        proxy.url = urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))
        return proxy

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            self._writers.discard(writer)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()


@contextlib.asynccontextmanager
async def cuttable_proxy(
    port: int, target_host: str, target_port: int
) -> AsyncIterator[CuttableProxy]:
    proxy = CuttableProxy(port, target_host, target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
