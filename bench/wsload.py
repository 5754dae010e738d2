"""WebSocket subscribers for the fan-out benchmark (run by bench/fanout.py, several at once).

One process holds many graphql-transport-ws connections on one asyncio loop (uvloop
when installed). The client is a minimal RFC 6455 implementation on asyncio.Protocol,
like the raw HTTP client of bench/loadgen.py: the `websockets` library costs several
times more CPU per message, and on one shared core the clients would measure
themselves. It offers no permessage-deflate (browsers do; see bench/README.md).

Each connection sends `connection_init` (with the API key), waits for the ack, then
subscribes to one operation, chosen by its kind:

- `hot`: `pointsChanged(playerId: HOT)`, the shared channel (many viewers of one
  player); every `next` records (receive time, the transaction's `createdAt`);
- `board`: `leaderboardChanged(period: ALL_TIME, first: 10)`; receive times only;
- `own`: `pointsChanged` of a player of its own (`fan-<n>`), who never gets events:
  idle subscriptions on distinct channels.

Protocol on stdin/stdout (one JSON object per line on stdout):
- after connecting: `{"ready": ..., "failed": ..., "connect_s": ...}`;
- stdin `count`: prints the deliveries so far;
- stdin `report PATH`: writes the deliveries to PATH (array of doubles: receive time,
  createdAt, ... for `hot`) and prints the counters;
- stdin `quit` (or EOF): closes everything and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import sys
import time
from array import array
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HOT_QUERY = (
    "subscription($id: ID!) { pointsChanged(playerId: $id) "
    "{ playerId amount wallet { balance earnedToday } transaction { id amount createdAt } } }"
)
BOARD_QUERY = (
    "subscription { leaderboardChanged(period: ALL_TIME, first: 10) "
    "{ entries { rank points player { id } } } }"
)


def frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: FIN, masked (RFC 6455 5.3)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + masked


class Shared:
    def __init__(self) -> None:
        self.hot = array("d")  # receive time, createdAt, receive time, createdAt, ...
        self.board = array("d")  # receive times
        self.own_messages = 0
        self.subscribed = 0
        self.failed = 0  # refused, error or complete from the server
        self.closed = 0  # connection lost after subscribing
        self.pings = 0
        self.errors: list[str] = []

    def error(self, text: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(text[:300])


class Subscriber(asyncio.Protocol):
    def __init__(self, shared: Shared, host: str, path: str, kind: str, n: int, init: dict):
        self.shared, self.host, self.path, self.kind, self.n, self.init = (
            shared,
            host,
            path,
            kind,
            n,
            init,
        )
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.active = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            ).encode()
        )

    def send(self, message: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(frame(0x1, json.dumps(message).encode()))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status:
                self._fail(f"handshake: {status.decode(errors='replace')}")
                return
            self.upgraded = True
            buf = buf[end + 4 :]
            self.send({"type": "connection_init", "payload": self.init})
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            payload = buf[pos + head : pos + head + length]
            pos += head + length
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
        self.buffer = buf[pos:]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == 0x9:  # ping
            assert self.transport is not None
            self.transport.write(frame(0xA, payload))
            return
        if opcode == 0x8:  # close
            assert self.transport is not None
            self.transport.close()
            return
        if opcode in (0x1, 0x2, 0x0):
            if not fin or self.fragments:
                self.fragments.append(payload)
                if not fin:
                    return
                payload, self.fragments = b"".join(self.fragments), []
            self._message(payload)

    def _message(self, raw: bytes) -> None:
        now = time.time()
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "next":
            data = message["payload"].get("data")
            if message["payload"].get("errors") or data is None:
                self.shared.error(json.dumps(message))
            elif self.kind == "hot":
                created = data["pointsChanged"]["transaction"]["createdAt"]
                self.shared.hot.append(now)
                self.shared.hot.append(datetime.fromisoformat(created).timestamp())
            elif self.kind == "board":
                self.shared.board.append(now)
            else:
                self.shared.own_messages += 1
        elif kind == "ping":
            self.shared.pings += 1
            self.send({"type": "pong"})
        elif kind == "connection_ack":
            variables = {"id": self.init.get("hot")} if self.kind == "hot" else {}
            if self.kind == "own":
                variables = {"id": f"fan-{self.n}"}
            query = BOARD_QUERY if self.kind == "board" else HOT_QUERY
            self.send(
                {
                    "type": "subscribe",
                    "id": "1",
                    "payload": {"query": query, "variables": variables},
                }
            )
            self.active = True
            if not self.ready.done():
                self.ready.set_result(True)
        elif kind in ("error", "complete"):
            self.shared.failed += 1
            self.shared.error(json.dumps(message))

    def _fail(self, text: str) -> None:
        self.shared.error(text)
        if not self.ready.done():
            self.ready.set_result(False)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.active:
            self.shared.closed += 1
            self.active = False
        if not self.ready.done():
            self.ready.set_result(False)

    def close(self) -> None:
        self.active = False
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self.transport.write(frame(0x8, (1000).to_bytes(2, "big")))
            self.transport.close()


def kinds(spec: str, count: int, first: int) -> list[str]:
    """Deterministic mix, e.g. `hot=0.9,board=0.05,own=0.05`, spread over the numbers."""
    shares = [(name, float(share)) for name, share in (p.split("=") for p in spec.split(","))]
    total = sum(s for _, s in shares)
    out = []
    for n in range(first, first + count):
        x = (n * 0.6180339887) % 1.0 * total  # low-discrepancy: any slice keeps the mix
        for name, share in shares:
            if x < share:
                out.append(name)
                break
            x -= share
        else:
            out.append(shares[-1][0])
    return out


def write(path: Path, shared: Shared) -> None:
    path.write_bytes(shared.hot.tobytes())
    Path(f"{path}.board").write_bytes(shared.board.tobytes())


async def main(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.count + 256))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    shared = Shared()
    init: dict[str, Any] = {"hot": args.hot}
    if args.key:
        init["Authorization"] = f"Bearer {args.key}"
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.connect_concurrency)
    subscribers: list[Subscriber] = []

    async def connect(n: int, kind: str) -> None:
        async with gate:
            for _attempt in range(3):
                sub = Subscriber(shared, f"{host}:{port}", url.path or "/", kind, n, init)
                try:
                    await loop.create_connection(lambda s=sub: s, host, port)
                    ok = await asyncio.wait_for(sub.ready, 30)
                except (OSError, TimeoutError) as exc:
                    shared.error(f"connect: {type(exc).__name__}: {exc}")
                    sub.close()
                    await asyncio.sleep(0.2)
                    continue
                if ok:
                    subscribers.append(sub)
                    shared.subscribed += 1
                    return
                sub.close()
                await asyncio.sleep(0.2)
            shared.failed += 1

    t0 = time.monotonic()
    mix = kinds(args.mix, args.count, args.first)
    await asyncio.gather(*(connect(args.first + i, k) for i, k in enumerate(mix)))
    connect_s = time.monotonic() - t0
    counts = {k: mix.count(k) for k in sorted(set(mix))}
    print(
        json.dumps(
            {
                "ready": shared.subscribed,
                "failed": shared.failed,
                "connect_s": round(connect_s, 3),
                "kinds": counts,
                "errors": shared.errors,
            }
        ),
        flush=True,
    )
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            break
        if line == "count":
            counts = {"hot": len(shared.hot) // 2, "board": len(shared.board)}
            print(json.dumps(counts), flush=True)
            continue
        if line.startswith("report "):
            write(Path(line.split(" ", 1)[1]), shared)  # once, at the end: may block
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            print(
                json.dumps(
                    {
                        "hot_deliveries": len(shared.hot) // 2,
                        "board_deliveries": len(shared.board),
                        "own_messages": shared.own_messages,
                        "subscribed": shared.subscribed,
                        "failed": shared.failed,
                        "closed": shared.closed,
                        "pings": shared.pings,
                        "errors": shared.errors,
                        "cpu_s": round(cpu.ru_utime + cpu.ru_stime, 3),
                    }
                ),
                flush=True,
            )
    for sub in subscribers:
        sub.close()
    await asyncio.sleep(0.2)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="WebSocket subscribers for bench/fanout.py")
    p.add_argument("--url", required=True, help="ws://host:port/graphql")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--first", type=int, default=0, help="number of the first subscriber")
    p.add_argument("--mix", default="hot=1")
    p.add_argument("--hot", default="hot", help="the shared player's id")
    p.add_argument("--key", default="", help="API key for connection_init")
    p.add_argument("--connect-concurrency", type=int, default=64)
    return p.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    try:
        import uvloop

        uvloop.run(main(arguments))
    except ImportError:
        asyncio.run(main(arguments))
