-- crossbus sqlite store, schema version 1.
-- Times are Unix nanoseconds (UTC). Event bodies use the store's own compact
-- encoding (see codec.go), so reads avoid JSON parsing.

CREATE TABLE idempotency (
	key       BLOB PRIMARY KEY,
	token     TEXT NOT NULL,
	completed INTEGER NOT NULL,
	expires   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX idempotency_expires ON idempotency (expires);

CREATE TABLE streams (
	id      INTEGER PRIMARY KEY,
	name    TEXT NOT NULL UNIQUE,
	version INTEGER NOT NULL
);

-- position is the global order: gap-free and in commit order, because every
-- append runs in a write transaction (one writer at a time) and takes the
-- positions after the current maximum.
CREATE TABLE events (
	position  INTEGER PRIMARY KEY,
	stream_id INTEGER NOT NULL,
	version   INTEGER NOT NULL,
	event_id  TEXT NOT NULL,
	body      BLOB NOT NULL,
	UNIQUE (stream_id, version),
	UNIQUE (stream_id, event_id)
);

CREATE TABLE snapshots (
	stream  TEXT PRIMARY KEY,
	version INTEGER NOT NULL,
	schema  TEXT NOT NULL,
	state   BLOB NOT NULL,
	taken   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE checkpoints (
	name     TEXT PRIMARY KEY,
	position INTEGER NOT NULL,
	updated  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE outbox (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	topic    TEXT NOT NULL,
	stream   TEXT NOT NULL,
	version  INTEGER NOT NULL,
	body     BLOB NOT NULL,
	enqueued INTEGER NOT NULL,
	sent     INTEGER
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent IS NULL;

CREATE TABLE chain_instances (
	id       TEXT PRIMARY KEY,
	chain    TEXT NOT NULL,
	status   TEXT NOT NULL,
	revision INTEGER NOT NULL,
	updated  INTEGER NOT NULL,
	body     BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX chain_instances_unfinished ON chain_instances (chain, status)
	WHERE status IN ('running', 'compensating');

CREATE TABLE chain_steps (
	instance TEXT NOT NULL,
	step     TEXT NOT NULL,
	kind     TEXT NOT NULL,
	token    TEXT NOT NULL,
	done     INTEGER NOT NULL,
	expires  INTEGER NOT NULL,
	output   BLOB,
	PRIMARY KEY (instance, step, kind)
) WITHOUT ROWID;
