"""The PostgreSQL statements of the ingest hot path (app.services.ingest_store runs them).

Fixed texts, so asyncpg prepares each once per connection.
"""

from __future__ import annotations

WALLET_COLUMNS = (
    "player_id",
    "balance",
    "lifetime_earned",
    "level",
    "streak_current",
    "streak_best",
    "last_active_day",
    "last_event_at",
)


# PostgreSQL: every write of a batch in one statement (data-modifying CTEs). Fixed text,
# so asyncpg prepares it once per connection; one round trip instead of four. Each table's
# rows arrive as one JSON array of arrays, encoded by orjson: asyncpg's binary encoding of
# ~25,000 typed array elements per batch of 500 cost the server ~5x the CPU, inside the
# wallet locks. The ledger lines name the new events without a foreign key (migration
# 0011: no other statement writes lines that name an event). $1 events, $2 now, $3
# wallets, $4 days, $5 ledger lines, $6 the tenant, $7 board points (rows as
# `write_batch` takes them), $8 the batch's player ids.
# A small batch adds its board points in the same statement (WRITE_BATCH_INLINE_POSTGRES);
# a large one parks them for after commit (WRITE_BATCH_POSTGRES, board_points.settle).
_WRITE_ROWS = """
WITH new_events AS (
    INSERT INTO event (id, tenant_id, player_id, event_type, category, value, occurred_at,
                       recorded_at, source, metadata, points_awarded, idempotency_key,
                       payload_hash, outcome)
    SELECT (e->>0)::uuid, $6, (e->>2)::int, e->>3, e->>4, (e->>5)::numeric,
           (e->>6)::timestamptz, $2, e->>8, e->9, (e->>10)::numeric, e->>11, e->>12, e->13
    FROM jsonb_array_elements($1::jsonb) AS e
), updated_wallets AS (
    UPDATE wallet AS w
    SET balance = (v->>1)::numeric, lifetime_earned = (v->>2)::numeric,
        level = (v->>3)::int, streak_current = (v->>4)::int, streak_best = (v->>5)::int,
        last_active_day = (v->>6)::date, last_event_at = (v->>7)::timestamptz, updated_at = $2
    FROM jsonb_array_elements($3::jsonb) AS v
    WHERE w.player_id = (v->>0)::int AND w.player_id = ANY($8::int[])
), upserted_days AS (
    INSERT INTO player_day (player_id, day, events, earned)
    SELECT (d->>0)::int, (d->>1)::date, (d->>2)::int, (d->>3)::numeric
    FROM jsonb_array_elements($4::jsonb) AS d
    ON CONFLICT (player_id, day) DO UPDATE SET events = excluded.events, earned = excluded.earned
), new_lines AS (
    INSERT INTO point_transaction (tenant_id, player_id, kind, amount, balance_after, reason,
                                   event_id, created_at)
    SELECT $6, (t->>1)::int, t->>2, (t->>3)::numeric, (t->>4)::numeric, t->>5,
           (t->>6)::uuid, $2
    FROM jsonb_array_elements($5::jsonb) WITH ORDINALITY AS x(t, n)
    ORDER BY n  -- ids in the order of the lines
    RETURNING id
)
"""

# Period score rows upserted from `source` (rows: player_id, period, period_key, points,
# with tenant_id and reached_at beside them), locked in (player, period, key) order like
# every other writer of period scores, so concurrent writers cannot deadlock; a late
# write never moves reached_at back. `written` returns the rows as they now stand.
_UPSERT_SCORES = """
    INSERT INTO period_score (tenant_id, player_id, period, period_key, points, reached_at)
    {source}
    ORDER BY 2, 3, 4
    ON CONFLICT (tenant_id, period, period_key, player_id) DO UPDATE
    SET points = period_score.points + excluded.points,
        reached_at = GREATEST(period_score.reached_at, excluded.reached_at)
    RETURNING tenant_id, player_id, period, period_key, points, reached_at
"""
# The `written` rows per board, already in the Redis APPLY script's form (board_cache: a
# JSON array of pk, score, member strings; hidden players with an empty member), so the
# server does no per-row work: the tenant, the board, the row count and that text.
_PACK_BOARDS = """
SELECT w.tenant_id, w.period, w.period_key, COUNT(*) AS n,
       '[' || string_agg(
           '"' || w.player_id || '","' || (-(w.points * 100))::bigint || '","' ||
           CASE WHEN p.hidden_from_boards THEN ''
                ELSE lpad(((EXTRACT(EPOCH FROM w.reached_at) * 1000000)::bigint)::text, 17, '0')
                     || lpad(w.player_id::text, 12, '0') END || '"',
           ',') || ']' AS packed
FROM written AS w JOIN player AS p ON p.id = w.player_id{players}
GROUP BY w.tenant_id, w.period, w.period_key
"""

# Rows: a ledger line's id (in the lines' order), and the parked points' id (pending).
WRITE_BATCH_POSTGRES = (
    _WRITE_ROWS.rstrip("\n")
    + """, board_points AS (
    INSERT INTO board_pending (tenant_id, created_at, player_ids, periods, period_keys, points)
    SELECT $6, $2, array_agg((s->>1)::int ORDER BY n), array_agg(s->>2 ORDER BY n),
           array_agg(s->>3 ORDER BY n), array_agg((s->>4)::numeric ORDER BY n)
    FROM jsonb_array_elements($7::jsonb) WITH ORDINALITY AS x(s, n)
    HAVING count(*) > 0
    RETURNING id
)
SELECT id, FALSE AS pending FROM new_lines
UNION ALL
SELECT id, TRUE FROM board_points
"""
)
# Rows: a ledger line's id (in the lines' order) with NULLs, then one row per board
# (NULL id): the tenant, period, period key, row count and packed rows.
WRITE_BATCH_INLINE_POSTGRES = (
    _WRITE_ROWS.rstrip("\n")
    + ", written AS ("
    + _UPSERT_SCORES.format(
        source="SELECT $6, (s->>1)::int, s->>2, s->>3, (s->>4)::numeric, $2::timestamptz "
        "FROM jsonb_array_elements($7::jsonb) AS s"
    )
    + """)
SELECT id, NULL::int AS tenant_id, NULL::text AS period, NULL::text AS period_key,
       NULL::bigint AS n, NULL::text AS packed
FROM new_lines
UNION ALL
(SELECT NULL, b.* FROM ("""
    + _PACK_BOARDS.format(players=" AND p.id = ANY($8::int[])")
    + """) AS b)
"""
)

# One pending row's points into the period scores, the row deleted in the same statement:
# applied once, whoever runs it; the rows come back packed per board.
SETTLE_BOARD_POINTS_POSTGRES = (
    """
WITH claimed AS (
    DELETE FROM board_pending WHERE id = $1
    RETURNING tenant_id, created_at, player_ids, periods, period_keys, points
), written AS ("""
    + _UPSERT_SCORES.format(
        source="SELECT c.tenant_id, s.player_id, s.period, s.period_key, s.points, c.created_at "
        "FROM claimed AS c CROSS JOIN LATERAL unnest(c.player_ids, c.periods, c.period_keys, "
        "c.points) AS s(player_id, period, period_key, points)"
    )
    + ")"
    + _PACK_BOARDS.format(players="")
)


# Missing wallets inserted and existing ones locked, in player order, in one statement.
# `WHERE FALSE` locks a conflicting row without writing a new version of it (PostgreSQL:
# "all rows will be locked when the ON CONFLICT DO UPDATE action is taken"): a no-op
# update would double every wallet's writes, and the batch's own update of a row written
# earlier in its transaction re-runs the wallet's foreign-key checks.
LOCK_WALLETS_POSTGRES = """
INSERT INTO wallet (player_id, tenant_id, balance, lifetime_earned, level, streak_current,
                    streak_best, updated_at)
SELECT p, $2, 0, 0, 1, 0, 0, $3 FROM unnest($1::int[]) AS p ORDER BY p
ON CONFLICT (player_id) DO UPDATE SET updated_at = excluded.updated_at WHERE FALSE
"""
# A batch's first statement on PostgreSQL (IngestStore.open_batch), its rows told apart
# by `part`: the players found ('p'), the idempotency keys already stored ('k') and, only
# if every player and every wallet exists, the wallets locked in player order ('w') and
# the player_day rows of the candidate days $4 ('d'). Otherwise nothing is locked: the
# caller creates what is missing and locks with LOCK_WALLETS_POSTGRES.
#
# The lock is SELECT … FOR UPDATE: under READ COMMITTED a row it had to wait for is
# returned as the holder committed it, so the 'w' rows are current. The day rows are read
# with the statement's snapshot, taken before any wait: each 'w' row says whether its
# wallet is the version that snapshot sees (`fresh`). Every batch that writes a player's
# day rows also updates that player's wallet in the same transaction, so when all are
# fresh no batch committed this batch's players after the snapshot and the day rows are
# current too; when one is not, the caller reads again (READ_STATE_POSTGRES), with a new
# statement's snapshot. Without contention that saves a round trip per batch.
#
# The batch's transaction runs on generic plans (app.db.generic_plans), the plans these
# statements were written for (`= ANY` on indexed keys, so index scans whatever the
# arrays' sizes). PostgreSQL would otherwise plan this statement again at every
# execution, its custom plans looking cheaper because they see the arrays: 0.6-0.9 ms
# of planning for 0.4 ms of work.
OPEN_BATCH_POSTGRES = f"""
WITH found AS MATERIALIZED (
    SELECT id, external_id, kind, segment, timezone, attributes, hidden_from_boards
    FROM player WHERE tenant_id = $1 AND external_id = ANY($2::text[])
), seen AS MATERIALIZED (
    SELECT player_id, xmin::text AS version FROM wallet
    WHERE player_id = ANY(ARRAY(SELECT id FROM found))
), ready AS MATERIALIZED (
    SELECT (SELECT count(*) FROM found) = cardinality($2::text[])
           AND (SELECT count(*) FROM seen) = cardinality($2::text[]) AS ok
), locked AS MATERIALIZED (
    SELECT {", ".join(WALLET_COLUMNS)}, xmin::text AS version FROM wallet
    WHERE player_id = ANY(ARRAY(SELECT id FROM found)) AND (SELECT ok FROM ready)
    ORDER BY player_id
    FOR UPDATE
)
SELECT 'p' AS part, id AS player_id, external_id, kind, segment, timezone, attributes,
       hidden_from_boards, NULL::numeric AS balance, NULL::numeric AS lifetime_earned,
       NULL::int AS level, NULL::int AS streak_current, NULL::int AS streak_best,
       NULL::date AS last_active_day, NULL::timestamptz AS last_event_at,
       NULL::boolean AS fresh, NULL::date AS day, NULL::int AS events,
       NULL::numeric AS earned
FROM found
UNION ALL
SELECT 'k', NULL, idempotency_key, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM event WHERE tenant_id = $1 AND idempotency_key = ANY($3::text[])
UNION ALL
SELECT 'w', l.player_id, NULL, NULL, NULL, NULL, NULL, NULL, l.balance, l.lifetime_earned,
       l.level, l.streak_current, l.streak_best, l.last_active_day, l.last_event_at,
       l.version = s.version, NULL, NULL, NULL
FROM locked AS l JOIN seen AS s USING (player_id)
UNION ALL
SELECT 'd', player_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, day, events, earned
FROM player_day
WHERE player_id = ANY(ARRAY(SELECT player_id FROM locked)) AND day = ANY($4::date[])
"""
# The wallets and the player_day rows of IngestStore.days, told apart by `day`. Read by a
# statement of its own once the locks are held: under READ COMMITTED a new statement sees
# what the batches it waited for committed (the locking statement's own snapshot
# predates them).
READ_STATE_POSTGRES = f"""
SELECT {", ".join(WALLET_COLUMNS)}, NULL::date AS day, NULL::int AS events,
       NULL::numeric AS earned
FROM wallet WHERE player_id = ANY($1::int[])
UNION ALL
SELECT player_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, day, events, earned
FROM player_day WHERE player_id = ANY($1::int[]) AND day = ANY($2::date[])
"""
