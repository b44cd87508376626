// Package claimcheck sends events whose data is too large for a message
// through object storage: the data goes to a bucket (any gocloud.dev/blob
// bucket: S3, Cloud Storage, Azure Blob Storage, a directory, memory), the
// event goes through the bus with a CloudEvents dataref extension naming
// the object, and consumers get the whole event back.
//
//	store, err := claimcheck.Open(ctx, "s3://orders-payloads?region=eu-west-1", nil)
//	bus, err := crossbus.Open(ctx, "awssqs://...", claimcheck.Option(store, 256<<10))
//
// # Publish
//
// An event whose data is larger than the threshold — or that would be over
// the provider's size limit (Capabilities.MaxEventBytes) whatever the
// threshold — is published as a copy: its data is written to the bucket
// under a content-addressed key, PREFIX + "sha256/" + the hex SHA-256 of the
// data, the copy's data is removed and its dataref extension is set to the
// bucket's URI followed by "/" and the key, for example
//
//	s3://orders-payloads/claimcheck/sha256/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//
// Every other attribute (datacontenttype included) is kept. The caller's
// event is never changed. The object is written before the event is sent,
// so a consumer never sees a reference to data that is not there; a publish
// that fails after the write leaves only an unreferenced object, which
// expiry removes. When the bucket cannot be written (missing, unreachable,
// refused) the event is not sent and its error, in the *crossbus.PublishError,
// names the bucket. An object of the same key written less than
// Options.Reuse ago (default one hour) is not written again: equal keys are
// equal bytes.
//
// An event that already carries data and a dataref naming this bucket whose
// key is the data's hash (an event a consumer received through the claim
// check and publishes again: a bridge, a dead-letter topic) is sent without
// its data and without writing anything.
//
// # Delivery
//
// The portable layer fetches the data eagerly, before the route's filter, so
// filters (event patterns on data fields included) and handlers see the
// whole event, with its dataref still set. A fetch that fails is a failed
// attempt: it is retried by the route's RetryPolicy and dead-lettered after
// the last attempt with the fetch error as the reason (the dead letter keeps
// the reference, not the data). Data whose SHA-256 differs from its
// content-addressed key fails permanently. Batch routes and push endpoints
// fetch the same way.
//
// Events from other producers that carry a dataref and no data are fetched
// the same way when the reference names this bucket; references to anything
// else are left alone, and the handler sees the event as it came.
//
// # Deleting the objects
//
// Consumers never delete what they fetched: an event may fan out to many
// subscriptions, be redelivered, replayed, dead-lettered and redriven, or
// bridged to another bus, so no consumer knows it is the last. Objects are
// removed by age instead. Give the bucket a lifecycle rule (S3 lifecycle
// expiration, Cloud Storage Object Lifecycle Management, Azure Blob lifecycle
// management) on the prefix that deletes objects older than the longest time
// an event can stay in flight — the longest retention of a subscription or
// dead-letter queue that may hold the references, plus Options.Reuse. For a
// bucket without lifecycle rules (a directory, an emulator, a store without
// them) run Store.Sweep or Store.RunSweeper with the same age.
package claimcheck
