// Package redis keeps crossbus state that must be shared by many processes
// but need not outlive Redis's own durability in Redis, with go-redis: the
// idempotency store (crossbus.IdempotencyStore), LatestWins and Resequence
// sequence state (sequence.Store), projection checkpoints
// (sourcing.CheckpointStore) and leader leases.
//
//	store, err := redis.Open(ctx, "redis://localhost:6379/0", redis.Options{Prefix: "shop"})
//	defer store.Close()
//	route := crossbus.WithIdempotency(store.Idempotency(), crossbus.IdempotencyOptions{})
//	latest, _ := sequence.LatestWins(store.Sequences())
//
// New takes any redis.UniversalClient (a *redis.Client, a
// *redis.ClusterClient, a Sentinel failover client) instead of a URL.
//
// # Atomicity
//
// Every operation is one command or one Lua script on one key, so it is
// atomic on the server and nothing is ever half-written: a claim is SET NX
// GET PX; renewing, completing and releasing a claim, advancing a sequence
// and taking a lease are scripts that check the caller's token (or the
// stored number) and change the key in the same step. Expiry is Redis's:
// a lease or a completed record's TTL is the key's PEXPIRE, so the
// machines using the store need no synchronised clocks.
//
// When the server cannot be reached, every method returns an error that
// names the operation and wraps go-redis's (a *net.OpError, io.EOF, a
// timeout). A call whose reply was lost may or may not have run; each is
// safe to retry, except that a Complete or Release that ran reports
// crossbus.ErrLeaseLost when retried (the claim is no longer held) —
// which the idempotency middleware treats as settled.
//
// # Batching
//
// Calls made concurrently (a consumer running many handlers) are sent
// together: while Options.Pipelines pipelines are in flight, further calls
// wait and go in the next one, so a busy store makes one round trip, and
// Redis one read and one write, for many calls. A lone call is sent at
// once. Each call remains its own command or script.
//
// # Keys
//
// Every key is Prefix:kind:{name}, with name (the idempotency key, the
// partition key, the checkpoint or lease name) in braces as the key's hash
// tag; '%', '{' and '}' in names are percent-encoded, so the tag is always
// the whole name. In a Redis Cluster each name's keys therefore share a
// slot (the two keys of a lease, which one script changes together), and
// different names spread over all slots. No operation touches keys of two
// names, so the layout is Cluster-safe.
//
//	Key                                 Type    Value                             Expiry
//	Prefix:idem:{key}                   string  "p:"+token while claimed, "c"     the lease, then the TTL
//	                                            once completed
//	Prefix:seq:{partition key}          string  last applied sequence (decimal)   none
//	Prefix:checkpoint:{name}            string  position (decimal)                none
//	Prefix:leader:{name}:lease          hash    holder, token                     the lease's ttl
//	Prefix:leader:{name}:token          string  the last token handed out         none
//
// Sequences and positions are compared as decimal strings, never as Lua
// numbers, so every uint64 keeps all its digits.
//
// # Durability
//
// The store is as durable as the Redis behind it. Without persistence a
// restart forgets every claim, completed record and sequence: duplicates
// delivered afterwards run their handlers again, and LatestWins may apply
// an older state. For exactly-once effects across restarts, run Redis with
// appendonly yes (appendfsync everysec loses at most a second), or keep the
// state in a transactional store (stores/sqlite, stores/postgres).
package redis
