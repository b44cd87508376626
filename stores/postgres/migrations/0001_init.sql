-- crossbus postgres store, schema version 1. § stands for the store's
-- schema (Options.Schema). Event bodies and outbox messages use the compact
-- binary encoding of internal/eventcodec, so replay avoids JSON parsing.

CREATE TABLE §idempotency (
	key       bytea PRIMARY KEY,
	token     text NOT NULL,
	completed boolean NOT NULL,
	expires   timestamptz NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX idempotency_expires ON §idempotency (expires);

CREATE TABLE §streams (
	id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name    text NOT NULL UNIQUE,
	version bigint NOT NULL
) WITH (fillfactor = 80);

-- head is the global order's last position: one row, which every append
-- updates after its other checks and holds locked until it commits. So
-- positions are handed out one transaction at a time, in commit order and
-- without gaps (a rolled-back append rolls the counter back too).
CREATE TABLE §head (
	id       integer PRIMARY KEY CHECK (id = 1),
	position bigint NOT NULL
);
INSERT INTO §head (id, position) VALUES (1, 0);

CREATE TABLE §events (
	position  bigint PRIMARY KEY,
	stream_id bigint NOT NULL,
	version   bigint NOT NULL,
	event_id  text NOT NULL,
	recorded  timestamptz NOT NULL,
	body      bytea NOT NULL,
	CONSTRAINT events_stream_version UNIQUE (stream_id, version),
	CONSTRAINT events_stream_event_id UNIQUE (stream_id, event_id)
);

CREATE TABLE §snapshots (
	stream  text PRIMARY KEY,
	version bigint NOT NULL,
	schema  text NOT NULL,
	state   bytea NOT NULL,
	taken   timestamptz NOT NULL
);

CREATE TABLE §checkpoints (
	name     text PRIMARY KEY,
	position bigint NOT NULL,
	updated  timestamptz NOT NULL
);

CREATE TABLE §outbox (
	id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	topic    text NOT NULL,
	stream   text NOT NULL,
	version  bigint NOT NULL,
	body     bytea NOT NULL,
	enqueued timestamptz NOT NULL,
	sent     timestamptz
) WITH (fillfactor = 80);
CREATE INDEX outbox_pending ON §outbox (id) WHERE sent IS NULL;

CREATE TABLE §chain_instances (
	id       text PRIMARY KEY,
	chain    text NOT NULL,
	status   text NOT NULL,
	revision bigint NOT NULL,
	updated  timestamptz NOT NULL,
	body     json NOT NULL
);
CREATE INDEX chain_instances_unfinished ON §chain_instances (chain, status)
	WHERE status IN ('running', 'compensating');

CREATE TABLE §chain_steps (
	instance text NOT NULL,
	step     text NOT NULL,
	kind     text NOT NULL,
	token    text NOT NULL,
	done     boolean NOT NULL,
	expires  timestamptz NOT NULL,
	output   bytea,
	PRIMARY KEY (instance, step, kind)
);

-- Leader leases: the row of a name is kept after a release, so its token
-- only ever rises.
CREATE TABLE §leases (
	name    text PRIMARY KEY,
	holder  text NOT NULL,
	token   bigint NOT NULL,
	expires timestamptz NOT NULL
);

CREATE TABLE §sequences (
	key  text PRIMARY KEY,
	last bigint NOT NULL
);
