"""Closed-loop HTTP load generator for the benchmarks (run by bench/ingest.py and
bench/redeem.py).

Each of N clients holds one keep-alive HTTP/1.1 connection and sends the next
GraphQL request as soon as the previous answer arrives. Requests completed during
the warm-up are not counted; the measurement window is the `--duration` seconds
after it. Every answer is parsed and checked: an HTTP error, a top-level GraphQL
`errors` list or a non-empty `errors` list in the payload is a failure, counted and
sampled (never silently measured as throughput).

Prints one JSON object on stdout. Three interchangeable clients:
- `httpx`: httpx.AsyncClient (HTTP/1.1, keep-alive), the library integrators use;
- `h11`: raw asyncio streams framed by h11;
- `raw`: raw asyncio streams with a minimal Content-Length parser (the cheapest).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

RECORD_EVENT = (
    "mutation($input: RecordEventInput!) { recordEvent(input: $input) "
    "{ outcome { pointsAwarded wallet { balance } } errors { code message } } }"
)
RECORD_EVENTS = (
    "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) "
    "{ outcomes { pointsAwarded } errors { field code message } } }"
)
NOOP_BATCH = (
    "mutation($input: [RecordEventInput!]!) { noopBatch(input: $input) "
    "{ outcomes { pointsAwarded } errors { field code message } } }"
)
NOOP = (
    "mutation($input: RecordEventInput!) { noop(input: $input) "
    "{ outcome { pointsAwarded wallet { balance } } errors { code message } } }"
)
BOARD = (
    "query($period: LeaderboardPeriod!, $around: ID) { leaderboard(period: $period, "
    "first: 10, around: $around) { totalPlayers entries { rank points previousRank "
    "streakDays player { id } } me { rank points } } }"
)
REDEEM_REWARD = (
    "mutation($input: RedeemRewardInput!) { redeemReward(input: $input) "
    "{ redemption { id status code } wallet { balance } errors { code message } } }"
)
OPS = {
    # op: (query, payload field, events per request is the batch size?)
    "record": (RECORD_EVENT, "recordEvent", False),
    "redeem": (REDEEM_REWARD, "redeemReward", False),
    "records": (RECORD_EVENTS, "recordEvents", True),
    "noop": (NOOP, "noop", False),
    "noops": (NOOP_BATCH, "noopBatch", True),
    "board": (BOARD, "leaderboard", False),  # a read: `--period`, around lb-p<n < players>
}
# Telco event types and a typical value for each.
EVENT_TYPES = (("APP_LOGIN", 1.0), ("DATA_USAGE", 250.0), ("RECHARGE", 10.0))
MAX_SAMPLES = 5


class SchemaMissing(Exception):
    """The mutation under test is not in the server's schema."""


@dataclass
class Stats:
    requests: int = 0  # answered requests, whole run (warm-up included)
    failures: int = 0  # failed requests, whole run
    ok_events: int = 0  # events accepted, whole run (warm-up included)
    transport_errors: int = 0
    window_requests: int = 0
    window_events: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, window only
    samples: list[str] = field(default_factory=list)
    outcome_mismatches: int = 0  # batches whose outcomes list is not one per event

    def fail(self, message: str) -> None:
        self.failures += 1
        if len(self.samples) < MAX_SAMPLES and message not in self.samples:
            self.samples.append(message)


class EventFactory:
    """Event inputs over `players` player ids, each with a unique idempotency key."""

    def __init__(self, players: int, tag: str, worker: int) -> None:
        self.players = players
        self.prefix = f"{tag}-w{worker}-"
        self.seq = 0
        self.rng = random.Random(f"{tag}-{worker}")

    def event(self) -> dict[str, Any]:
        self.seq += 1
        event_type, value = self.rng.choice(EVENT_TYPES)
        return {
            "playerId": f"bench-p{self.rng.randrange(self.players)}",
            "eventType": event_type,
            "value": value,
            "source": "bench",
            "metadata": {"cell": f"c{self.seq % 97}"},
            "idempotencyKey": f"{self.prefix}{self.seq}",
        }


class RedeemFactory:
    """redeemReward inputs: a random player and reward (of `rewards`), a unique key each."""

    def __init__(self, players: int, rewards: list[int], tag: str, worker: int) -> None:
        self.players, self.rewards = players, rewards
        self.prefix = f"{tag}-w{worker}-"
        self.seq = 0
        self.rng = random.Random(f"{tag}-{worker}")

    def event(self) -> dict[str, Any]:
        self.seq += 1
        return {
            "playerId": f"bench-p{self.rng.randrange(self.players)}",
            "rewardId": str(self.rng.choice(self.rewards)),
            "quantity": 1,
            "idempotencyKey": f"{self.prefix}{self.seq}",
        }


def parse_ids(text: str) -> list[int]:
    """`3`, `1,5,9` or a range `2-1001`."""
    ids: list[int] = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        ids.extend(range(int(first), int(last or first) + 1))
    return ids


# ---------------------------------------------------------------- HTTP clients


class HttpxClient:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        import httpx

        self.url = url
        self.client = httpx.AsyncClient(
            headers=headers,
            http1=True,
            http2=False,
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def post(self, body: bytes) -> tuple[int, bytes]:
        response = await self.client.post(self.url, content=body)
        return response.status_code, response.content

    async def close(self) -> None:
        await self.client.aclose()


class _StreamClient:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.headers = {"Host": f"{self.host}:{self.port}", **headers}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self._connect()
        try:
            return await self._exchange(body)
        except BaseException:
            await self.close()  # a broken exchange leaves the connection unusable
            raise


class RawClient(_StreamClient):
    """HTTP/1.1 with a minimal parser: status line, headers, Content-Length body."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(url, headers)
        lines = [f"POST {self.path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        self.head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode()

    async def _exchange(self, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"%s%d\r\n\r\n%s" % (self.head, len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = None
        close = False
        for line in header_lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise RuntimeError("raw client: chunked responses are not supported")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length is None:
            raise RuntimeError("raw client: response without Content-Length")
        content = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, content


class H11Client(_StreamClient):
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(url, headers)
        import h11

        self.h11 = h11
        self.conn: Any = None

    async def _connect(self) -> None:
        await super()._connect()
        self.conn = self.h11.Connection(self.h11.CLIENT)

    async def _exchange(self, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        h11, conn = self.h11, self.conn
        headers = [*self.headers.items(), ("Content-Length", str(len(body)))]
        out = conn.send(h11.Request(method="POST", target=self.path, headers=headers))
        out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        self.writer.write(out)
        status, chunks = 0, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("server closed the connection")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await self.close()
        return status, b"".join(chunks)


CLIENTS = {"httpx": HttpxClient, "h11": H11Client, "raw": RawClient}


# ---------------------------------------------------------------- checking


def check(status: int, content: bytes, payload_field: str, expected: int) -> tuple[bool, str, int]:
    """(ok, failure message, outcomes count) for one answer."""
    if status != 200:
        return False, f"HTTP {status}: {content[:200]!r}", 0
    try:
        doc = json.loads(content)
    except ValueError:
        return False, f"not JSON: {content[:200]!r}", 0
    if doc.get("errors"):
        message = str(doc["errors"][0].get("message", doc["errors"][0]))
        if "Cannot query field" in message:
            raise SchemaMissing(message)
        return False, f"GraphQL error: {message}", 0
    payload = (doc.get("data") or {}).get(payload_field)
    if payload is None:
        return False, f"no data.{payload_field} in {content[:200]!r}", 0
    errors = payload.get("errors")
    if errors:
        first = errors[0]
        return False, f"{len(errors)} user error(s), first: {first}", 0
    outcomes = payload.get("outcomes")
    return True, "", len(outcomes) if isinstance(outcomes, list) else expected


# ---------------------------------------------------------------- the load


async def worker(
    n: int, args: argparse.Namespace, stats: Stats, window: tuple[float, float], deadline: float
) -> None:
    query, payload_field, batched = OPS[args.op]
    size = args.batch_size if batched else 1
    factory: EventFactory | RedeemFactory = (
        RedeemFactory(args.players, parse_ids(args.rewards), args.tag, n)
        if args.op == "redeem"
        else EventFactory(args.players, args.tag, n)
    )
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"
    client = CLIENTS[args.client](args.url, headers)
    start, end = window
    # Paced clients (--interval): each sends on its own schedule, like a dashboard that
    # refreshes, instead of back to back; a late answer skips the missed slots.
    next_at = time.perf_counter() + factory.rng.random() * args.interval
    try:
        while True:
            if args.interval:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += args.interval
                while next_at < time.perf_counter():
                    next_at += args.interval
            now = time.perf_counter()
            if now >= end or stats.requests >= args.max_requests or now >= deadline:
                return
            if args.op == "board":
                around = f"lb-p{factory.rng.randrange(args.players)}"
                variables: dict[str, Any] = {"period": args.period, "around": around}
            elif batched:
                variables = {"input": [factory.event() for _ in range(size)]}
            else:
                variables = {"input": factory.event()}
            body = json.dumps({"query": query, "variables": variables}).encode()
            t0 = time.perf_counter()
            try:
                status, content = await asyncio.wait_for(client.post(body), args.timeout)
            except (
                OSError,
                EOFError,
                RuntimeError,
                TimeoutError,
                asyncio.IncompleteReadError,
            ) as e:
                stats.transport_errors += 1
                stats.fail(f"transport: {type(e).__name__}: {e}")
                await asyncio.sleep(0.05)
                continue
            t1 = time.perf_counter()
            stats.requests += 1
            ok, message, outcomes = check(status, content, payload_field, size)
            if not ok:
                stats.fail(message)
                continue
            stats.ok_events += size
            if batched and outcomes != size:
                stats.outcome_mismatches += 1
            if start <= t1 <= end:
                stats.window_requests += 1
                stats.window_events += size
                stats.latencies.append(t1 - t0)
    finally:
        await client.close()


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    t0 = time.perf_counter()
    window = (t0 + args.warmup, t0 + args.warmup + args.duration)
    deadline = window[1] + args.timeout  # hard bound whatever happens
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    tasks = [
        asyncio.create_task(worker(n, args, stats, window, deadline))
        for n in range(args.concurrency)
    ]
    error: str | None = None
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), args.warmup + args.duration + args.timeout)
    except SchemaMissing as exc:
        error = f"schema: {exc}"
    except TimeoutError:
        error = "load generator timed out"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    lat = sorted(stats.latencies)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "op": args.op,
        "client": args.client,
        "concurrency": args.concurrency,
        "batch_size": args.batch_size if OPS[args.op][2] else 1,
        "duration_s": args.duration,
        "interval_s": args.interval,
        "warmup_s": args.warmup,
        "requests": stats.requests,
        "failures": stats.failures,
        "ok_events": stats.ok_events,
        "transport_errors": stats.transport_errors,
        "failure_samples": stats.samples,
        "outcome_mismatches": stats.outcome_mismatches,
        "window_requests": stats.window_requests,
        "window_events": stats.window_events,
        "events_per_s": stats.window_events / args.duration,
        "requests_per_s": stats.window_requests / args.duration,
        "p50_ms": ms(percentile(lat, 0.50)),
        "p90_ms": ms(percentile(lat, 0.90)),
        "p99_ms": ms(percentile(lat, 0.99)),
        "max_ms": ms(lat[-1] if lat else None),
        "client_cpu_util": cpu / wall if wall else None,
        "error": error,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="http://host:port/graphql")
    p.add_argument("--key", default="", help="API key (Authorization: Bearer)")
    p.add_argument("--op", choices=sorted(OPS), required=True)
    p.add_argument("--client", choices=sorted(CLIENTS), default="raw")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--players", type=int, default=2000)
    p.add_argument("--rewards", default="", help="reward ids for --op redeem: 1,5 or 2-1001")
    p.add_argument("--tag", default="lg", help="makes idempotency keys unique per run")
    p.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    p.add_argument("--max-requests", type=int, default=10_000_000)
    p.add_argument("--period", default="ALL_TIME", help="the board op's period")
    p.add_argument(
        "--interval", type=float, default=0.0, help="seconds between a client's requests"
    )
    args = p.parse_args(argv)
    if not (1 <= args.concurrency <= 1000 and args.duration > 0 and args.batch_size >= 1):
        p.error("need 1 <= concurrency <= 1000, duration > 0, batch size >= 1")
    if args.op == "redeem" and not parse_ids(args.rewards):
        p.error("--op redeem needs --rewards")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    result["event_loop"] = "uvloop" if "uvloop" in sys.modules else "asyncio"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0 if result["error"] is None and result["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
