"""rankChanged subscribers for bench/rankwatch.py: one process, many WebSockets.

    python bench/ranksubs.py --url ws://127.0.0.1:8000/graphql --key KEY \
        --first 0 --count 1000 --out counts.json

Subscriber n follows `rankChanged(playerId: "rk-<n>", period: ALL_TIME)` over
graphql-transport-ws. It writes `--out` (JSON: subscribed, first messages, messages,
errors) once every subscriber has its first rank, and again on SIGTERM, then exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

import websockets

RANK = (
    "subscription($id: ID!) { rankChanged(playerId: $id, period: ALL_TIME) "
    "{ playerId rank previousRank points } }"
)


class Counts:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.all_in = asyncio.Event()  # every subscriber has its first rank (or failed)
        self.subscribed = 0
        self.firsts = 0
        self.messages = 0
        self.errors: list[str] = []

    def check(self) -> None:
        if self.firsts + len(self.errors) >= self.expected:
            self.all_in.set()

    def as_json(self) -> dict[str, Any]:
        return {
            "subscribed": self.subscribed,
            "firsts": self.firsts,
            "messages": self.messages,
            "errors": len(self.errors),
            "error_samples": self.errors[:3],
        }


async def follow(url: str, key: str, player: str, counts: Counts, stop: asyncio.Event) -> None:
    try:
        async with websockets.connect(
            url, subprotocols=["graphql-transport-ws"], max_queue=None, ping_interval=None
        ) as ws:
            await ws.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}
                )
            )
            first = True
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "connection_ack":
                    await ws.send(
                        json.dumps(
                            {
                                "id": "1",
                                "type": "subscribe",
                                "payload": {"query": RANK, "variables": {"id": player}},
                            }
                        )
                    )
                    counts.subscribed += 1
                elif kind == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                elif kind == "next":
                    if message["payload"].get("errors"):
                        counts.errors.append(json.dumps(message["payload"]["errors"])[:300])
                    counts.messages += 1
                    if first:
                        counts.firsts += 1
                        counts.check()
                        first = False
                elif kind in ("error", "complete"):
                    counts.errors.append(json.dumps(message)[:300])
                    counts.check()
                    return
                if stop.is_set():
                    return
    except Exception as exc:
        if not stop.is_set():
            counts.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            counts.check()


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


async def main(args: argparse.Namespace) -> None:
    counts = Counts(args.count)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    out = Path(args.out)
    tasks = []
    for n in range(args.first, args.first + args.count):
        tasks.append(asyncio.create_task(follow(args.url, args.key, f"rk-{n}", counts, stop)))
        if n % 50 == 49:
            await asyncio.sleep(0.02)  # connect in waves, as clients arrive
    await asyncio.wait(
        [asyncio.ensure_future(counts.all_in.wait()), asyncio.ensure_future(stop.wait())],
        return_when=asyncio.FIRST_COMPLETED,
    )
    _write(out, {**counts.as_json(), "ready": True})
    await stop.wait()
    _write(out, {**counts.as_json(), "ready": True, "done": True})
    for task in tasks:
        task.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--out", required=True)
    asyncio.run(main(p.parse_args()))
