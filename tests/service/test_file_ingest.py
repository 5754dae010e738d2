"""`questline ingest`: CSV and JSONL files through a tenant's DataSource, in batches,
with rejects, checkpoints and resumption, on the real database."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from app import presets
from app.errors import UserError
from app.services.file_ingest import plan_ingest, run_ingest
from app.services.ingest import EventInput, record_events
from app.services.players import player_channel
from app.services.tenants import create_tenant
from models import DataSource, Event, PointTransaction, Tenant, Wallet
from tests.conftest import REDIS_URL, gql
from tests.service.test_cli import questline, start_questline

CDR_HEADER = "customer_id,call_id,call_type,duration,call_time"
# Seed 001's example CDR (no call_id of its own), then CDRs with ids: a call past the
# per-call cap, an incoming call, data and SMS (other rules of the preset).
CDR_ROWS = [
    "uuid-here,,outgoing,120,2026-01-22T10:00:00Z",
    "sub-1,c-1,outgoing,240,2026-01-22T10:05:00Z",
    "sub-1,c-2,incoming,7200,2026-01-22T11:00:00Z",
    "sub-2,c-3,outgoing,90,2026-01-22T12:00:00Z",
    "sub-2,c-4,data,600,2026-01-22T12:30:00Z",
    "sub-2,c-5,sms,1,2026-01-22T13:00:00Z",
]


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def cdr_csv(tmp_path: Path, rows: list[str] = CDR_ROWS, name: str = "cdrs.csv") -> Path:
    return write(tmp_path, name, [CDR_HEADER, *rows])


async def ingest(rt: Any, path: Path, **options: Any) -> Any:
    options.setdefault("tenant", "default")
    options.setdefault("source", "cdr")
    return await run_ingest(rt, await plan_ingest(path, **options))


def preset_points(call_type: str, duration: str) -> Decimal:
    """The telco preset's points for one CDR, worked out from the preset's data: the cdr
    source's lookup and unit conversion, then the event type's rule steps."""
    telco = presets.load("telco")
    mapping = next(s for s in telco["data_sources"] if s["source_type"] == "cdr")
    mapping = mapping["event_mapping"]
    lookup = mapping["event_type"]
    event_type = lookup["lookup"].get(call_type, lookup["lookup_default"])
    value_spec = mapping["value"]
    assert (value_spec["unit"], value_spec["to"]) == ("seconds", "minutes")
    places = Decimal(1).scaleb(-value_spec["round"])
    value = (Decimal(duration) / 60).quantize(places, ROUND_HALF_UP)
    rules = {rule["event_type"]: rule for rule in telco["rules"]}
    points = Decimal(0)
    for step in rules.get(event_type, rules["*"])["steps"]:
        if step["type"] == "per_unit":
            points += Decimal(str(step["points"])) * value
        elif step["type"] == "cap":
            points = min(points, Decimal(str(step["max"])))
        else:
            raise AssertionError(f"no expectation for a {step['type']} step")
    return points.quantize(Decimal("0.01"), ROUND_HALF_UP)


def expected(rows: list[str]) -> dict[str, Decimal]:
    """Points per player for CDR rows, by the preset's rules."""
    totals: dict[str, Decimal] = {}
    for row in rows:
        player, _, call_type, duration, _ = row.split(",")
        totals[player] = totals.get(player, Decimal(0)) + preset_points(call_type, duration)
    return totals


async def balances(tenant: Tenant) -> dict[str, Decimal]:
    wallets = await Wallet.filter(tenant_id=tenant.id).prefetch_related("player")
    return {w.player.external_id: w.balance for w in wallets}


async def assert_ledger_matches_wallets(tenant: Tenant) -> None:
    for wallet in await Wallet.filter(tenant_id=tenant.id):
        amounts = await PointTransaction.filter(player_id=wallet.player_id).values_list(
            "amount", flat=True
        )
        assert sum(amounts, Decimal(0)) == wallet.balance


def state_text(path: Path) -> str:
    return Path(f"{path}.ingest-state.json").read_text(encoding="utf-8")


def beside(path: Path, suffix: str) -> list[str]:
    """The names of the files beside `path` whose name is its name plus `suffix`."""
    return [p.name for p in path.parent.iterdir() if p.name == path.name + suffix]


def rejects_of(path: Path) -> list[dict[str, Any]]:
    rejects = Path(f"{path}.rejected.jsonl")
    return [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]


async def test_seed_001_cdrs_in_a_csv_earn_the_telco_presets_points(rt, default_tenant, tmp_path):
    path = cdr_csv(tmp_path)
    result = await ingest(rt, path)

    want = expected(CDR_ROWS)
    assert want["sub-1"] == preset_points("outgoing", "240") + preset_points("incoming", "7200")
    assert (result.total.read, result.total.applied, result.total.rejected) == (6, 6, 0)
    assert result.complete and result.total.points == sum(want.values())
    assert await balances(default_tenant) == want
    await assert_ledger_matches_wallets(default_tenant)
    source = await DataSource.get(tenant_id=default_tenant.id, source_type="cdr")
    keys = set(
        await Event.filter(tenant_id=default_tenant.id).values_list("idempotency_key", flat=True)
    )
    digest = json.loads(state_text(path))["digest"]
    # The seed's record has no id: keyed by the file and its line; the others by their id.
    assert keys == {f"file-{digest[:16]}:2"} | {
        f"source-{source.id}:cdr-c-{n}" for n in range(1, 6)
    }
    types = sorted(
        await Event.filter(tenant_id=default_tenant.id).values_list("event_type", flat=True)
    )
    assert types == ["CALL", "CALL", "CALL", "CALL", "DATA_SESSION", "SMS"]
    assert beside(path, ".rejected.jsonl") == []


async def test_jsonl_and_csv_numbers_as_text_convert_alike(rt, default_tenant, tmp_path):
    # Network records: bytes -> MB (round 2), 1 point per 100 MB (the preset's DATA_USAGE).
    csv_path = write(
        tmp_path,
        "net.csv",
        [
            "subscriber_id,bytes,session_end,qoe_score,cell_id",
            "n-1,524288000,2026-01-22T11:00:00Z,3.5,A7",
        ],
    )
    jsonl_path = write(
        tmp_path,
        "net.ndjson",
        [
            "",
            json.dumps(
                {"subscriber_id": "n-2", "bytes": 524288000, "session_end": "2026-01-22T11:00:00Z"}
            ),
            "   ",
            json.dumps(
                {"subscriber_id": "n-2", "bytes": 1048576, "session_end": "2026-01-22T12:00:00Z"}
            ),
        ],
    )
    from_csv = await ingest(rt, csv_path, source="network")
    from_jsonl = await ingest(rt, jsonl_path, source="network")

    assert (from_csv.total.read, from_csv.total.applied) == (1, 1)
    assert (from_jsonl.total.read, from_jsonl.total.applied) == (2, 2)  # blank lines skipped
    values = sorted(await Event.filter(tenant_id=default_tenant.id).values_list("value", flat=True))
    assert values == [Decimal(1), Decimal(500), Decimal(500)]  # MB
    assert from_csv.total.points == Decimal("5.00")
    assert from_jsonl.total.points == Decimal("5.01")
    assert await balances(default_tenant) == {"n-1": Decimal("5.00"), "n-2": Decimal("5.01")}


async def test_bad_lines_and_records_go_to_the_rejects_file_and_the_rest_is_applied(
    rt, default_tenant, tmp_path
):
    good = [
        {
            "customer_id": "sub-1",
            "call_id": "c-1",
            "call_type": "outgoing",
            "duration": 120,
            "call_time": "2026-01-22T10:00:00Z",
        },
        {
            "customer_id": "sub-1",
            "call_id": "c-2",
            "call_type": "outgoing",
            "duration": 60,
            "call_time": "2026-01-22T10:10:00Z",
        },
        {
            "customer_id": "sub-2",
            "call_id": "c-3",
            "call_type": "outgoing",
            "duration": 600,
            "call_time": "2026-01-22T10:20:00Z",
        },
    ]
    no_player = {"call_id": "c-4", "call_type": "outgoing", "duration": 60}
    future = {
        "customer_id": "sub-2",
        "call_id": "c-5",
        "call_type": "outgoing",
        "duration": 60,
        "call_time": "2999-01-01T00:00:00Z",
    }
    conflict = {**good[0], "duration": 999}  # c-1 again, another call: CONFLICT
    path = write(
        tmp_path,
        "calls.jsonl",
        [
            json.dumps(good[0]),  # 1
            '{"customer_id": "sub-1", "call_id": ',  # 2: cut short
            json.dumps(good[1]),  # 3
            "",  # 4
            json.dumps(no_player),  # 5
            json.dumps(future),  # 6
            json.dumps(conflict),  # 7
            "[1, 2]",  # 8: JSON, but not an object
            json.dumps(good[2]),  # 9
        ],
    )
    result = await ingest(rt, path, batch_size=4)

    assert (result.total.read, result.total.applied, result.total.rejected) == (8, 3, 5)
    rejects = rejects_of(path)
    assert [(r["line"], r["code"], r["field"]) for r in rejects] == [
        (2, "INVALID", ["line"]),
        (5, "INVALID", ["event", "player_id"]),
        (6, "INVALID", ["occurredAt"]),
        (7, "CONFLICT", ["idempotencyKey"]),
        (8, "INVALID", ["event", "event"]),
    ]
    assert (
        rejects[0]["text"] == '{"customer_id": "sub-1", "call_id": '
        and "JSON" in rejects[0]["message"]
    )
    assert rejects[1]["record"] == no_player and "player_id" in rejects[1]["message"]
    assert rejects[2]["message"] == "occurredAt is in the future"
    assert rejects[3]["record"] == conflict
    assert await balances(default_tenant) == expected(
        ["sub-1,c-1,outgoing,120,", "sub-1,c-2,outgoing,60,", "sub-2,c-3,outgoing,600,"]
    )

    # CSV: a row with the wrong number of columns; an empty cell is an absent value.
    csv_path = cdr_csv(
        tmp_path,
        [
            "sub-3,c-6,outgoing,60",
            "sub-3,c-7,outgoing,,2026-01-22T10:00:00Z",
            "sub-3,c-8,outgoing,60,2026-01-22T10:00:00Z",
        ],
        name="short.csv",
    )
    from_csv = await ingest(rt, csv_path)
    assert (from_csv.total.applied, from_csv.total.rejected) == (1, 2)
    assert [(r["line"], r["message"]) for r in rejects_of(csv_path)] == [
        (2, "expected 5 columns, found 4"),
        (3, "the mapping found no value (looked at raw 'duration')"),
    ]
    assert rejects_of(csv_path)[0]["text"] == "sub-3,c-6,outgoing,60"


async def test_a_second_run_applies_nothing_new(rt, default_tenant, tmp_path):
    path = cdr_csv(tmp_path)
    first = await ingest(rt, path)
    before = (await balances(default_tenant), await PointTransaction.all().count())

    again = await plan_ingest(path, tenant="default", source="cdr")
    assert again.status == "complete" and "already ingested" in (again.note or "")
    assert again.start.counts == first.total

    reread = await ingest(rt, path, restart=True)  # every record a duplicate
    assert (reread.total.read, reread.total.applied, reread.total.duplicates) == (6, 0, 6)
    assert reread.total.points == 0
    (tmp_path / "cdrs.csv.ingest-state.json").unlink()  # no checkpoint at all: the same
    fresh = await ingest(rt, path)
    assert (fresh.total.applied, fresh.total.duplicates) == (0, 6)
    (tmp_path / "cdrs.csv.ingest-state.json").write_text('{"version": 1, "offset": "x"}')
    unusable = await plan_ingest(path, tenant="default", source="cdr")
    assert unusable.status == "unreadable" and "starting over" in (unusable.note or "")
    assert (await run_ingest(rt, unusable)).total.duplicates == 6
    assert (await balances(default_tenant), await PointTransaction.all().count()) == before
    await assert_ledger_matches_wallets(default_tenant)


async def test_a_run_stopped_after_a_batch_resumes_after_it_with_a_full_runs_totals(
    rt, default_tenant, tmp_path
):
    rows = [
        *CDR_ROWS,
        "sub-3,c-9,outgoing,60",  # a column short
        "sub-3,c-10,outgoing,180,2026-01-22T10:00:00Z",
        "sub-3,,outgoing,120,2026-01-22T10:30:00Z",  # no id: keyed by its line, 10
    ]
    path = cdr_csv(tmp_path, rows)
    stop = asyncio.Event()
    seen: list[int] = []

    def after_batch(offset: int, run: Any) -> None:
        seen.append(offset)
        stop.set()  # as Ctrl-C would: the batch in flight finishes

    plan = await plan_ingest(path, tenant="default", source="cdr", batch_size=3)
    first = await run_ingest(rt, plan, progress=after_batch, stop=stop)
    assert not first.complete and first.run.read == 3 and first.line == 4
    state = json.loads(state_text(path))
    head = "".join(f"{line}\n" for line in [CDR_HEADER, *rows[:3]])
    assert (state["complete"], state["line"], state["offset"]) == (False, 4, len(head.encode()))
    assert seen == [state["offset"]] and await Event.all().count() == 3
    mid_file = state_text(path)

    plan = await plan_ingest(path, tenant="default", source="cdr", batch_size=3)
    assert plan.status == "resume" and "after line 4" in (plan.note or "")
    stop.clear()
    second = await run_ingest(rt, plan, progress=after_batch, stop=stop)  # stopped again
    assert (second.run.read, second.line, second.total.read) == (3, 7, 6)
    rest = await run_ingest(rt, await plan_ingest(path, tenant="default", source="cdr"))
    assert rest.complete and rest.run.read == len(rows) - 6

    # The same file in one run, for another tenant.
    await create_tenant("other", preset="telco")
    whole = await ingest(rt, Path(shutil.copy(path, tmp_path / "copy.csv")), tenant="other")
    assert whole.total == rest.total
    assert (rest.total.applied, rest.total.rejected) == (len(rows) - 1, 1)
    other = await Tenant.get(slug="other")
    assert await balances(default_tenant) == await balances(other)
    assert rejects_of(path) == rejects_of(tmp_path / "copy.csv")

    # A crash after later batches committed but before their checkpoint was saved: the
    # run resumes at an older checkpoint than theirs, and what it reads again are
    # duplicates (a record's key does not depend on where a run began).
    (tmp_path / "cdrs.csv.ingest-state.json").write_text(mid_file, encoding="utf-8")
    before = (await balances(default_tenant), await PointTransaction.all().count())
    again = await ingest(rt, path, batch_size=3)
    assert (again.run.applied, again.run.duplicates, again.run.rejected) == (0, len(rows) - 4, 1)
    assert (await balances(default_tenant), await PointTransaction.all().count()) == before
    assert len(rejects_of(path)) == 1  # the lines written after the checkpoint went
    await assert_ledger_matches_wallets(default_tenant)


async def test_a_changed_file_starts_over_and_counts_its_records_with_ids_once(
    rt, default_tenant, tmp_path
):
    rows = CDR_ROWS[1:]  # each with its call_id
    path = cdr_csv(tmp_path, rows)
    await ingest(rt, path)
    before = await PointTransaction.all().count()

    added = "sub-1,c-6,outgoing,300,2026-01-22T15:00:00Z"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(added + "\n")
    plan = await plan_ingest(path, tenant="default", source="cdr")
    assert plan.status == "changed" and "changed since its checkpoint" in (plan.note or "")
    result = await run_ingest(rt, plan)

    assert (result.total.applied, result.total.duplicates) == (1, len(rows))
    assert result.total.points == preset_points("outgoing", "300")
    assert await balances(default_tenant) == expected([*rows, added])
    assert await PointTransaction.all().count() == before + 1
    await assert_ledger_matches_wallets(default_tenant)


async def test_a_changed_file_whose_records_were_known_by_their_line_is_refused(
    rt, default_tenant, tmp_path
):
    """Records without an id are keyed by the file's digest and their line: after the
    file changes, every line is a new key, and starting over would apply them all
    again. The run is refused (CONFLICT) unless --restart says so."""
    rows = [CDR_ROWS[0], "sub-1,,outgoing,60,2026-01-22T10:05:00Z"]  # no call ids
    path = cdr_csv(tmp_path, rows)
    first = await ingest(rt, path)
    assert first.total.applied == 2
    assert json.loads(state_text(path))["positional"] == 2
    before = await balances(default_tenant)

    with path.open("a", encoding="utf-8") as fh:
        fh.write("sub-2,,outgoing,90,2026-01-22T11:00:00Z\n")
    with pytest.raises(UserError) as refused:
        await plan_ingest(path, tenant="default", source="cdr")
    assert refused.value.code == "CONFLICT"
    assert "2 of the records applied then had no id" in refused.value.message
    assert "--restart" in refused.value.message
    assert await balances(default_tenant) == before

    # A checkpoint from before the count was kept says nothing of its records: the same.
    state = json.loads(state_text(path))
    del state["positional"]
    (tmp_path / "cdrs.csv.ingest-state.json").write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(UserError, match="some of the records applied then had no id"):
        await plan_ingest(path, tenant="default", source="cdr")

    # Asked for, the new file is read from the start: its lines are new keys.
    again = await ingest(rt, path, restart=True)
    assert (again.total.applied, again.total.duplicates) == (3, 0)


async def test_the_cli_refuses_a_changed_file_of_line_keyed_records_with_exit_2(
    app, rt, default_tenant, settings, tmp_path
):
    path = cdr_csv(tmp_path, [CDR_ROWS[0], "sub-1,,outgoing,60,2026-01-22T10:05:00Z"])
    first = await questline(settings, "ingest", str(path), "--source", "cdr")
    assert first.returncode == 0, first.stderr
    before = await balances(default_tenant)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("sub-2,,outgoing,90,2026-01-22T11:00:00Z\n")

    refused = await questline(settings, "ingest", str(path), "--source", "cdr")
    assert refused.returncode == 2, refused.stderr
    assert "2 of the records applied then had no id" in refused.stderr
    assert "Give --restart to read it from the start" in refused.stderr
    assert await balances(default_tenant) == before

    restarted = await questline(settings, "ingest", str(path), "--source", "cdr", "--restart")
    assert restarted.returncode == 0, restarted.stderr
    assert "read 3 records: 3 applied, 0 duplicates, 0 rejected" in restarted.stderr


async def test_the_cli_stops_at_once_on_a_signal_while_it_reads_a_large_file(
    app, default_tenant, settings, tmp_path
):
    """Reading a file for its digest takes a while for a large one; Ctrl-C or SIGTERM
    then stops it at once (exit 130 or 143), and nothing is written."""
    path = tmp_path / "large.jsonl"
    with path.open("wb") as fh:
        fh.truncate(8 << 30)  # 8 GiB of NULs, sparse: many seconds to hash
    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        process = await start_questline(settings, "ingest", str(path), "--source", "app")
        await asyncio.sleep(2.0)  # well into the digest
        assert process.returncode is None
        sent = time.monotonic()
        process.send_signal(signum)
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == code, err.decode()
        assert time.monotonic() - sent < 10  # the whole digest takes far longer
        assert "stopped before reading" in err.decode()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["large.jsonl"]


async def test_usage_errors_are_refused_before_anything_is_written(rt, default_tenant, tmp_path):
    path = cdr_csv(tmp_path)
    (tmp_path / "cdrs.txt").write_text(path.read_text())
    cdr = await DataSource.get(tenant_id=default_tenant.id, source_type="cdr")
    await create_tenant("spare", preset="telco")
    spare_cdr = await DataSource.get(tenant__slug="spare", source_type="cdr")
    await DataSource.filter(id=spare_cdr.id).update(active=False)
    cases = [
        ({"tenant": "nobody"}, "no tenant 'nobody'"),
        ({"source": "fax"}, "unknown source 'fax'"),
        ({"source": "999"}, "no data source '999'"),
        ({"source": str(spare_cdr.id)}, "no data source"),  # another tenant's
        ({"tenant": "spare", "source": str(spare_cdr.id)}, "is inactive"),
        ({"tenant": "spare", "source": "cdr"}, "no active 'cdr' data source"),
        ({"fmt": "xml"}, "unknown format 'xml'"),
        ({"batch_size": 0}, "the batch size is 1-1000"),
        ({"batch_size": 1001}, "the batch size is 1-1000"),
        ({"path": tmp_path / "missing.csv"}, "no file"),
        ({"path": tmp_path}, "is not a file"),
        ({"path": tmp_path / "cdrs.txt"}, "give --format csv or jsonl"),
    ]
    for options, message in cases:
        target = options.pop("path", path)
        options = {"tenant": "default", "source": "cdr", **options}
        with pytest.raises(UserError) as refused:
            await plan_ingest(target, **options)
        assert message in refused.value.message, (options, refused.value.message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdrs.csv", "cdrs.txt"]
    assert await Event.all().count() == 0 and cdr.active


async def test_the_cli_loads_a_file_and_its_exit_code_says_whether_all_went_in(
    app, rt, client, default_tenant, settings, tmp_path
):
    board = "{ leaderboard(period: ALL_TIME, first: 5) { entries { points player { id } } } }"
    early = EventInput("sub-2", "CALL", value=Decimal(4), idempotency_key="early")
    await record_events(rt, default_tenant, [early])  # the boards exist before the CLI runs
    assert (await gql(client, board)).data["leaderboard"]["entries"] == [
        {"points": 2.0, "player": {"id": "sub-2"}}
    ]
    if rt.boards is not None:
        await rt.boards.wait_rebuilds()
    rows = CDR_ROWS[1:4]
    path = cdr_csv(tmp_path, [*rows, "sub-9,c-9,outgoing"])
    want = expected(rows)

    ran = await questline(settings, "ingest", str(path), "--source", "cdr", "--batch-size", "2")
    assert ran.returncode == 1, ran.stderr
    assert (
        f"read 4 records: 3 applied, 0 duplicates, 1 rejected; {sum(want.values()):.2f} points awarded"
        in ran.stderr
    )
    assert f"1 record rejected: see {path}.rejected.jsonl" in ran.stderr
    assert rejects_of(path)[0]["line"] == 5
    assert await balances(default_tenant) == {**want, "sub-2": want["sub-2"] + 2}
    entries = (await gql(client, board)).data["leaderboard"]["entries"]  # Redis or SQL
    assert {e["player"]["id"]: Decimal(str(e["points"])) for e in entries} == {
        **want,
        "sub-2": want["sub-2"] + 2,
    }

    again = await questline(settings, "ingest", str(path), "--source", "cdr")
    assert again.returncode == 1 and "was already ingested" in again.stderr

    clean = write(
        tmp_path,
        "clean.jsonl",
        [json.dumps({"customer_id": "sub-4", "call_type": "sms", "duration": 1})],
    )
    done = await questline(settings, "ingest", str(clean), "--source", "cdr")
    assert done.returncode == 0, done.stderr
    assert "read 1 record: 1 applied, 0 duplicates, 0 rejected; 0.00 points awarded" in done.stderr

    other = write(tmp_path, "other.csv", [CDR_HEADER, *rows])
    refused = await questline(
        settings, "ingest", str(other), "--source", "cdr", "--batch-size", "0"
    )
    assert refused.returncode == 2 and "the batch size is 1-1000" in refused.stderr
    unknown = await questline(settings, "ingest", str(other), "--source", "cdr", "--tenant", "x")
    assert unknown.returncode == 2 and "no tenant 'x'" in unknown.stderr
    assert beside(other, ".ingest-state.json") == []


@pytest.mark.redis
async def test_events_the_cli_records_reach_a_running_servers_subscribers(
    app, rt, default_tenant, settings, tmp_path
):
    assert REDIS_URL and rt.hub.via_redis
    path = cdr_csv(tmp_path, CDR_ROWS[1:2])  # sub-1's 240 s call
    channel = player_channel(default_tenant.id, "sub-1", "points")
    async with rt.hub.subscribe(channel) as messages:
        ran = await questline(settings, "ingest", str(path), "--source", "cdr")
        assert ran.returncode == 0, ran.stderr
        message = await asyncio.wait_for(anext(aiter(messages)), 10)
    assert message["playerId"] == "sub-1"
    assert Decimal(message["amount"]) == preset_points("outgoing", "240")


async def test_nan_metadata_and_lone_surrogates_are_rejects_not_crashes(
    rt, default_tenant, tmp_path
):
    """A NaN in a mapped metadata field is INVALID on both backends (SQLite stored it,
    and the event's metadata could no longer be read); a rejected record holding a lone
    surrogate is written to the rejects file escaped (the run crashed, on every re-run)."""
    path = write(
        tmp_path,
        "odd.jsonl",
        [
            '{"subscriber_id":"n-1","bytes":1048576,"session_end":"2026-01-22T10:00:00Z",'
            '"qoe_score":NaN,"cell_id":"C1"}',
            '{"bytes":1048576,"session_end":"2026-01-22T10:00:00Z","cell_id":"\\udc80"}',
            '{"subscriber_id":"n-3","bytes":1048576,"session_end":"2026-01-22T10:00:00Z"}',
        ],
    )
    result = await ingest(rt, path, source="network")
    assert (result.total.read, result.total.applied, result.total.rejected) == (3, 1, 2)
    rejects = rejects_of(path)
    assert [r["line"] for r in rejects] == [1, 2]
    assert rejects[0]["code"] == "INVALID" and "finite" in rejects[0]["message"]
    # Written as the JSON escape the input had (rejects_of reads the file as strict
    # UTF-8), read back to the same value.
    assert rejects[1]["record"]["cell_id"] == "\udc80"
    assert await Event.filter(tenant_id=default_tenant.id).count() == 1
    await assert_ledger_matches_wallets(default_tenant)
