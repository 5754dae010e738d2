"""Tortoise's SQLite engine, with transactions begun in one hand-over to aiosqlite's
thread.

Tortoise begins a SQLite transaction with a COMMIT and then a BEGIN: two hand-overs to
the connection's thread, each ~140 µs of CPU (app.services.ingest_store._one_hop), for
a COMMIT that has nothing to commit. The connection runs in autocommit mode
(isolation_level None: sqlite3 opens no transaction of its own) and every transaction
ends in COMMIT or ROLLBACK; one left open all the same (a COMMIT that failed) is rolled
back here, not committed, and the BEGIN follows. Named as the engine in
app.db.connection_config; Tortoise's migrations pick their SQLite schema editor by
"sqlite" in the client's module name, which this one keeps.
"""

from __future__ import annotations

import sqlite3

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError


class SqliteTransaction(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            if self._connection.in_transaction:  # left open by a failed COMMIT
                await self._connection.rollback()
            await self._connection.execute("BEGIN")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class QuestlineSqliteClient(SqliteClient):
    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(SqliteTransaction(self), self._lock)


client_class = QuestlineSqliteClient
