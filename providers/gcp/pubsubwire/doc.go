// Package pubsubwire maps CloudEvents onto Google Cloud Pub/Sub messages and
// back, following Google's CloudEvents binding for Pub/Sub
// (googleapis/google-cloudevents, docs/spec/pubsub.md).
//
// It has no dependency on the Pub/Sub client, so the pull provider
// (providers/gcp) and the HTTP push receiver (providers/gcp/push) share it,
// and programs using the raw Pub/Sub client can produce and read the same
// messages.
//
// # Binary mode (the default)
//
// Every CloudEvents attribute becomes a message attribute named "ce-" plus
// the attribute name, lower-case ("ce-id", "ce-source", "ce-type",
// "ce-specversion", "ce-time", "ce-subject", "ce-dataschema", "ce-tenant"
// for an extension "tenant"), valued with the attribute's canonical string
// form (time as RFC 3339 in UTC). datacontenttype travels in the attribute
// "content-type". The event data is the message data, byte for byte. The
// partitionkey extension also becomes the message's ordering key.
//
// The CloudEvents Go SDK's Pub/Sub binding spells that attribute
// "Content-Type" and reads only that spelling: Encoder.Spelling =
// SDKSpelling writes it so (for both modes), for consumers on the SDK.
//
// # Structured mode (automatic fallback)
//
// The binding allows binary mode only when the attributes fit Pub/Sub's
// limits: at most 100 attributes per message, keys of at most 256 bytes and
// values of at most 1024 bytes. When an event would break one of them (many
// extensions, a long subject or source, a large extension value), Encode
// switches to structured mode: the message data is the event in the JSON
// event format and the attribute "content-type" is
// "application/cloudevents+json; charset=UTF-8". The ce- attributes that fit
// are kept alongside (the binding allows it), except "ce-specversion", so
// subscription filters on ce-type or ce-source still work and no reader
// mistakes the message for binary mode. The whole message must stay within
// Pub/Sub's 10 MB limit in either mode.
//
// # Reading
//
// Decode accepts both modes: a "content-type" attribute (any letter case)
// starting with "application/cloudevents" means structured mode; otherwise
// a "ce-specversion" attribute means binary mode. "content-type",
// "Content-Type" (as the CloudEvents Go SDK writes it) and
// "ce-datacontenttype" are all read as datacontenttype. Attributes without
// the "ce-" prefix, and ce- attributes whose names are not valid
// CloudEvents extension names, are not part of the event and are ignored.
//
// A message that carries neither is a plain Pub/Sub message that no
// CloudEvents producer wrote. It is delivered the way Eventarc delivers
// Pub/Sub messages: as an event of type
// google.cloud.pubsub.topic.v1.messagePublished whose source is
// //pubsub.googleapis.com/projects/P/topics/T, whose id and time are the
// message id and publish time, and whose data is the MessagePublishedData
// JSON ({"message": {"data", "attributes", "messageId", "publishTime",
// "orderingKey"}, "subscription"}).
//
// A message that claims to be a CloudEvent but is not a valid one (a
// structured body that does not parse, a missing ce-id) is not guessed at:
// Decode fails with the reason (FormatInvalid) and returns the message's
// UndecodableEvent placeholder, which carries the data and attributes as
// they arrived. The pull provider and the push handler hand it to crossbus
// as an undecodable delivery (driver.Undecodable), so the portable layer
// dead-letters it with that reason and no handler runs.
//
// Messages that Pub/Sub itself forwarded to a dead-letter topic carry the
// CloudPubSubDeadLetterSource* attributes; Decode maps them onto the crossbus
// dead-letter extensions (reason, attempts, subscription, time) when the
// event does not already carry them.
package pubsubwire
