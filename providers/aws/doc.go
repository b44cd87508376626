// Package aws is the crossbus provider for Amazon EventBridge, SNS and SQS:
// it publishes to an EventBridge bus, an SNS topic or an SQS queue, and
// consumes from SQS queues. Import it to register the URL schemes:
//
//	import _ "github.com/crossbus/crossbus/providers/aws"
//
//	bus, err := crossbus.Open(ctx, "awseventbridge://orders?region=eu-west-1")
//	bus, err := crossbus.Open(ctx, "awssns:arn:aws:sns:eu-west-1:123456789012:orders")
//	bus, err := crossbus.Open(ctx, "awssqs://sqs.eu-west-1.amazonaws.com/123456789012/orders")
//
// Region, credentials and retries come from the standard AWS configuration
// chain (environment, shared files, SSO, web identity, container and
// instance roles); the URL's region and endpoint parameters, or Options,
// override them. See OptionsFromURL for every parameter.
//
// # Topics and subscriptions
//
// Topic and subscription names given to the Bus are portable names
// (crossbus.ValidateName: letters, digits and '-'); queue URLs, ARNs and
// ".fifo" names are not portable, so Options maps portable names onto
// them. The topic given to Publish is an EventBridge bus, an SNS topic (its
// name resolves in the account and region of the URL's topic ARN, or by
// listing topics), or an SQS queue (its name resolves with GetQueueUrl,
// trying name+".fifo" too), depending on the scheme; Options.Topics maps a
// topic name to bus ARNs, topic ARNs (a FIFO topic's, say) or queue URLs
// elsewhere, or to several targets.
//
// A subscription is always an SQS queue: the subscription name is the queue
// name (a FIFO queue is named without ".fifo"); Options.Queues maps it to
// a queue URL, for queues of another account. What reaches the queue is
// decided by AWS: an EventBridge rule with the queue as target, or an SNS
// subscription of the queue. Provision creates both for development and
// tests; it is never called implicitly.
//
// # CloudEvents on the wire
//
// EventBridge (PutEvents): source -> Source, type -> DetailType (at most 128
// characters, else the event fails validation naming the limit), the whole
// event in structured JSON -> Detail (nothing is lost: extensions, data,
// nanosecond time), time -> Time, subject -> Resources when the subject is an
// ARN. Rules therefore match {"source": [...], "detail-type": [...]} or,
// with DetailPattern, any CloudEvent field under "detail". An SQS message
// from a rule is the EventBridge envelope; DecodeEventBridge returns the
// original event, and turns AWS service events (S3 "Object Created", ...)
// into CloudEvents: id = envelope id, source = envelope source ("aws.s3"),
// type = detail-type, subject = first resource, data = detail.
//
// SQS and SNS: Structured mode (the default) puts the event's JSON form in the
// body with the attribute content-type: application/cloudevents+json. Binary
// mode puts the data in the body and the attributes in "ce-" message
// attributes (ce-id, ce-source, ce-type, ce-specversion, ce-time,
// ce-subject, ce-dataschema, content-type, ce-<extension>) when that fits
// SQS's rules — at most 10 attributes, non-empty values, data that is text
// SQS accepts — and falls back to structured otherwise, so raw SNS delivery
// never exceeds SQS's attribute limit. SNS notification envelopes (raw
// delivery off) are unwrapped. DecodeMessage lists the decoding rules,
// including how other producers' messages become events.
//
// Undecodable messages: every message without a CloudEvents claim becomes
// an event by those rules (an aws.sqs.message, an aws.sns.notification, an
// AWS service event), so only a message that claims to be a CloudEvent (a
// content-type of application/cloudevents+json, a ce-specversion attribute,
// a specversion member) and is not a valid one is undecodable. The receiver
// hands it to the portable layer as a driver.Undecodable delivery whose
// event is the placeholder of UndecodableEvent (the body as data, the
// attributes in the rawheaders extension); the portable layer dead-letters
// it (to the queue's dead-letter queue, or the route's dead-letter topic)
// with the reason "undecodable message: ..." and no handler runs.
//
// FIFO queues and topics get MessageGroupId = the partitionkey extension
// (events without one each get their own group) and MessageDeduplicationId =
// the hex SHA-256 of source and id, the CloudEvents uniqueness key.
//
// # Native and portable behaviour
//
// Native: long polling with parallel receivers (each Receive call is one
// ReceiveMessage); acks as DeleteMessageBatch calls grouped across
// deliveries (a lone ack is sent at once; under load calls carry 10; Ack
// returns once the delete is queued, or once it succeeded with
// Options.SyncAck, and closing a receiver waits for queued deletes);
// nack with delay and lease extension as ChangeMessageVisibility(Batch),
// rounded up to whole seconds and at most 12 hours; ApproximateReceiveCount
// as the attempt; per-group order on FIFO queues; the dead-letter queue of
// a queue's RedrivePolicy (Delivery.DeadLetter sends the event with the
// dead-letter extensions there and deletes the original, since SQS itself
// only dead-letters by receive count). Queues without a RedrivePolicy report
// NativeDeadLetter=false and use the route's dead-letter topic. Ordering on
// standard queues is SQS's best effort; use FIFO queues for guaranteed
// order.
//
// Receive errors: a queue that no longer exists (QueueDoesNotExist) stops
// the subscription with driver.ErrSubscriptionNotFound; a refused
// permission (AccessDenied, a KMS key the consumer may not use) or refused
// credentials (unknown access key, bad signature) stop it with
// driver.ErrUnauthorized, and Subscription.Err reports it. Every other
// error (throttling, outages, expired session credentials the SDK renews)
// is retried by the portable layer.
//
// Limits: events up to 1 MiB on SQS, 256 KiB on SNS (the default topic
// limit) and on EventBridge (per PutEvents call), 10 per batch.
//
// Package lambda (providers/aws/lambda) serves routes from Lambda functions
// triggered by SQS, EventBridge or SNS; package awstest is an in-process
// SQS, SNS and EventBridge server for tests.
package aws
