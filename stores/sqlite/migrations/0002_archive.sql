-- crossbus sqlite store, schema version 2: the event archive and replay
-- progress of package ops. Times are Unix nanoseconds (UTC).

CREATE TABLE archive_events (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	topic     TEXT NOT NULL,
	published INTEGER NOT NULL,
	size      INTEGER NOT NULL,
	body      BLOB NOT NULL
);
CREATE INDEX archive_events_topic ON archive_events (topic, seq);
CREATE INDEX archive_events_published ON archive_events (published);

CREATE TABLE archive_replays (
	id      TEXT PRIMARY KEY,
	started INTEGER NOT NULL,
	state   BLOB NOT NULL
);
