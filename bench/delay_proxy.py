"""A TCP proxy that delays traffic and counts bytes: Postgres behind a slower network.

    python bench/delay_proxy.py --listen 127.0.0.1:6543 --target 127.0.0.1:5432 --rtt-ms 2

Each direction's data is held ``rtt/2`` before it is forwarded (a one-way delay, so a
round trip costs ``rtt`` more), keeping the order of the bytes. Bytes are counted per
direction, so a benchmark can report what its client sends and receives per step
(:class:`DelayProxy` is used in-process by ``bench/pg_network.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Counts:
    """Bytes through the proxy, client to server (``up``) and back (``down``)."""

    up: int = 0
    down: int = 0
    connections: int = 0
    #: frontend messages by type (``B`` bind: one per statement run; ``Q`` simple query)
    messages: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> tuple[int, int]:
        """``(up, down)`` now."""
        return self.up, self.down


class DelayProxy:
    """Forwards ``listen`` to ``target``, delaying each direction by ``one_way`` seconds."""

    def __init__(self, target_host: str, target_port: int, one_way: float) -> None:
        self.target = (target_host, target_port)
        self.one_way = one_way
        self.counts = Counts()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; return the port."""
        self._server = await asyncio.start_server(self._handle, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        a = asyncio.create_task(self._pipe(reader, up_w, up=True))
        b = asyncio.create_task(self._pipe(up_r, writer, up=False))
        self._tasks |= {a, b}
        try:
            await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (a, b):
                t.cancel()
            for w in (writer, up_w):
                w.close()
            self._tasks -= {a, b}

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                at, data = await queue.get()
                wait = at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        parser = _FrontendParser(self.counts.messages) if up else None
        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if parser is not None:
                    self.counts.up += len(data)
                    parser.feed(data)
                else:
                    self.counts.down += len(data)
                if self.one_way > 0:
                    queue.put_nowait((loop.time() + self.one_way, data))
                else:
                    writer.write(data)
                    await writer.drain()
            while not queue.empty():
                await asyncio.sleep(self.one_way)
        finally:
            sender.cancel()


class _FrontendParser:
    """Counts the client's protocol messages by type (the first is the untyped startup
    packet, or an SSL request followed by it)."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.buf = b""
        self.untyped = True

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.untyped:
                if len(self.buf) < 8:
                    return
                n = int.from_bytes(self.buf[:4], "big")
                if len(self.buf) < n:
                    return
                code = int.from_bytes(self.buf[4:8], "big")
                self.buf = self.buf[n:]
                self.untyped = code == 80877103  # an SSL request: the startup follows
                continue
            if len(self.buf) < 5:
                return
            n = int.from_bytes(self.buf[1:5], "big")
            if len(self.buf) < n + 1:
                return
            kind = chr(self.buf[0])
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.buf = self.buf[n + 1 :]


async def _serve(listen: str, target: str, rtt_ms: float) -> None:
    host, port = listen.rsplit(":", 1)
    thost, tport = target.rsplit(":", 1)
    proxy = DelayProxy(thost, int(tport), rtt_ms / 2000)
    bound = await proxy.start(host, int(port))
    print(f"proxy {host}:{bound} -> {target}, rtt +{rtt_ms} ms", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:6543")
    p.add_argument("--target", default="127.0.0.1:5432")
    p.add_argument("--rtt-ms", type=float, default=2.0)
    a = p.parse_args()
    asyncio.run(_serve(a.listen, a.target, a.rtt_ms))
