// Package dynamodb keeps crossbus's durable state in Amazon DynamoDB, with
// aws-sdk-go-v2: the idempotency store (crossbus.IdempotencyStore), the
// event store with snapshots and checkpoints (sourcing.Store,
// sourcing.SnapshotStore, sourcing.CheckpointStore), chain state
// (chain.Store) and leader leases. It uses only single-item conditional
// writes, queries and batch reads and writes — no transactions — so it also
// runs against DynamoDB-compatible servers that lack them (dynalite, which
// the tests use).
//
//	client := dynamodb.NewFromConfig(cfg) // github.com/aws/aws-sdk-go-v2/service/dynamodb
//	tables := crossbusdynamodb.DefaultTables("shop")
//	err := crossbusdynamodb.CreateTables(ctx, client, crossbusdynamodb.CreateTablesOptions{Tables: tables})
//	idem, err := crossbusdynamodb.NewIdempotencyStore(ctx, client, tables.Idempotency)
//	events, err := crossbusdynamodb.NewEventStore(ctx, client, tables.Events)   // also snapshots, checkpoints
//	chains, err := crossbusdynamodb.NewChainStore(ctx, client, tables.Chains)
//	leases, err := crossbusdynamodb.NewLeaderStore(ctx, client, tables.Leases)
//
// Each constructor checks that its table exists with the right keys, so a
// misconfigured store fails when it is made. Every error names the
// operation and wraps the SDK's (which wraps the network's).
//
// # Tables
//
// Four tables, one per store, each created by CreateTables (on-demand
// billing by default). Key attributes are strings: pk, and sk where the
// table has a sort key. Names inside keys are encoded as tag:name when they
// are valid UTF-8 (DynamoDB strings must be), tag~base64url(name) otherwise,
// and tag#sha256(name) when even that is over DynamoDB's key size limit
// (idempotency keys and ids only; such names cannot be read back, and need
// not be).
//
// Idempotency table (pk):
//
//	pk       k:key
//	st       "p" while claimed, "c" once completed
//	tok      the claim's token (while claimed)
//	exp      end of the lease or of the completed record, Unix milliseconds
//	ttl      the same in Unix seconds, rounded up: DynamoDB's time to live
//	         attribute (CreateTables turns it on), which deletes expired
//	         records within a day or two; the store ignores records past
//	         exp meanwhile.
//
// Begin is a PutItem conditional on attribute_not_exists(pk) OR exp <= now;
// Renew, Complete and Release are conditional on st = "p", tok = the
// caller's token and exp > now. The lease is measured with the caller's
// clock, so machines sharing the table need clocks in step to well under a
// lease (NTP keeps them within milliseconds).
//
// Event table (pk, sk):
//
//	pk                sk                   attributes
//	s:stream          c:<first version>    one append ("commit"): v first version, n event
//	                                       count, ev the events (a JSON array of
//	                                       CloudEvents), at when recorded (Unix ns),
//	                                       pos its claimed first global position,
//	                                       ok once published
//	s:stream          i:<event id>         dedupe marker: v the event's version
//	s:stream          snapshot             v, schema, state (binary), taken (Unix ns)
//	log               <position>           global log entry: s the commit's pk, v its
//	                                       first version, n its event count
//	p:name            checkpoint           pos, at
//
// Numbers in sort keys are zero-padded to 20 digits, so they sort as
// numbers.
//
// # How an append is recorded without transactions
//
// An Append reads the stream's last commit and, through the dedupe
// markers, which of its events the stream already holds; checks the
// expected version; and puts one commit item holding all its new events at
// sort key c:<version+1>, on condition that the key is free. That
// conditional put is the commit point: of concurrent appends to a stream
// exactly one gets each version, atomically for the whole batch, and a
// failed condition is a conflict (or, for an Any append, a reason to look
// again).
//
// The commit is then published: entered into the global log, which gives
// it its positions, then its dedupe markers are written, then it is marked
// ok. The log is a chain of entries in one partition, each at the position
// after the previous one's last event, each written with a conditional put
// on its key; so positions are gap-free, and an entry exists only once
// every lower one does — a reader that has seen position p never sees a
// lower one appear later. The commit's pos attribute claims a log
// position; whoever publishes it (the appender, or anyone who finds the
// commit unpublished) puts the log entry there, and when the position
// turns out to be taken by another commit moves the claim on with a
// conditional update, so a commit enters the log exactly once however many
// callers publish it at once.
//
// An appender that stops between its commit and the publication (a crash,
// a lost connection) leaves the append recorded — its version is taken,
// ReadStream and StreamVersion show it — but not yet in ReadAll. The next
// Append or ReadStream of that stream publishes it first, and Recover
// publishes every such append in the table. A stream's appends therefore
// enter the global order in version order. The Append that stopped returns
// an error; retrying it is safe (its events are found recorded and
// skipped, and the retry succeeds whatever version it expected).
//
// # What the global order costs
//
// ReadAll is the order in which appends were published, across all
// streams, as sourcing requires. It lives in one partition ("log"), so
// every append in the table writes one small item there and appends are
// serialised on that partition: DynamoDB allows about 1,000 writes a
// second per partition, which bounds appends per second (not events: an
// append may hold many). The appends of one EventStore take turns from
// reading the log's head to entering the log, so they never race each
// other for a position; appends of other processes do, and the losers
// move their claim on and retry, so in-process concurrency is cheap and
// cross-process contention costs retries. A
// store whose appends must scale past that needs another design (sharded
// logs, each with its own order) and gives up the single global order.
//
// An append's events must fit in one item: 400 KB in all, of which the
// store allows 390 KB for the events' JSON; a larger append is refused
// with crossbus.ErrTooLarge. Every append costs, besides the commit: a
// query for the stream's last commit, one for the log head, a batch read
// of the dedupe markers (none for a new stream), the log entry, a batch
// write of one marker per event and the update that marks it published.
//
// # Chain table (pk, sk)
//
//	pk            sk                 attributes
//	i:instance    instance           doc (the Instance as JSON), rev, chain, status
//	i:instance    do:step, undo:step a step claim: st, tok, exp as in the
//	                                 idempotency table; out, the step's output
//	u:chain       i:instance         unfinished index entry: ipk, the instance's pk
//
// Save is a put conditional on rev. An unfinished instance is listed in its
// chain's index before it is created; a finished one is removed from it
// after it is saved, and Unfinished reads the index and the instances it
// lists, skipping (and removing) entries whose instance has finished.
//
// # Leases table (pk)
//
//	pk       l:name
//	holder   the holder's name ("" once released)
//	tok      the token of the current (or last) term
//	exp      end of the lease, Unix milliseconds
//
// A new term is an update conditional on the lease being missing, released
// or expired that adds 1 to tok; a renewal is an update conditional on the
// caller holding a live term, which leaves tok; so tokens only rise. Expiry
// is measured with the callers' clocks (see LeaderStore). The stores do not
// fence writes by a lease's token: without transactions a write cannot be
// made conditional on another item.
package dynamodb
