-- crossbus postgres store, schema version 2: the event archive and replay
-- progress of package ops. § stands for the store's schema. published is
-- Unix nanoseconds (UTC); bodies use internal/eventcodec.

CREATE TABLE §archive_events (
	seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	topic     text NOT NULL,
	published bigint NOT NULL,
	size      integer NOT NULL,
	body      bytea NOT NULL
);
CREATE INDEX archive_events_topic ON §archive_events (topic, seq);
CREATE INDEX archive_events_published ON §archive_events (published);

CREATE TABLE §archive_replays (
	id      text PRIMARY KEY,
	started bigint NOT NULL,
	state   jsonb NOT NULL
);
