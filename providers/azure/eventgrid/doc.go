// Package eventgrid connects crossbus to Azure Event Grid.
//
// Three entry points cover Event Grid's two delivery models:
//
//   - Namespace (URL scheme "azeventgridns://<namespace-host>") publishes to
//     namespace topics and pulls from their queue event subscriptions:
//     receive with a lock, acknowledge, release with a delay, reject to the
//     dead-letter destination, renew the lock; the delivery count is the
//     attempt number.
//   - Topics (URL scheme "azeventgrid://<topic-host>") publishes to basic
//     (custom) topics with the CloudEvents input schema; they push their
//     events to subscribers.
//   - Webhook is the http.Handler those pushes arrive at: CloudEvents 1.0
//     schema with the abuse-protection OPTIONS handshake, or the Event Grid
//     event schema with its SubscriptionValidationEvent; single events and
//     batches. Each event runs through a crossbus.Endpoint, the same
//     pipeline a pulled event runs through.
//
// Sub-package functions serves endpoints as an Azure Functions custom
// handler (Service Bus and Event Grid triggers); sub-package egtest is an
// HTTPS test server that speaks the Event Grid data plane the Azure SDK
// clients use.
//
// # Authenticating pushes
//
// A Webhook authenticates its callers unless told otherwise: NewWebhook
// refuses WebhookOptions that set neither Auth nor
// InsecureNoAuthentication. Event Grid offers two ways, each one line:
//
//	// Microsoft Entra ID delivery authentication: Event Grid sends a token
//	// for the webhook's application; EntraID checks it against the tenant's keys.
//	eventgrid.WebhookOptions{Auth: eventgrid.BearerToken{Verifier: eventgrid.NewEntraID(tenantID, "api://my-webhook")}}
//
//	// A secret in the endpoint URL (https://host/events?secret=...) or in a
//	// delivery header of the event subscription.
//	eventgrid.WebhookOptions{Auth: eventgrid.SharedSecret{Secret: os.Getenv("WEBHOOK_SECRET")}}
//
// Authentication runs on the URL and headers before a byte of the body is
// read; refused requests get 401, which Event Grid does not retry (503 if
// the tenant's keys cannot be fetched, which it does). NewWebhook refuses
// an Auth that would refuse everything (an empty secret, a bearer token
// without verifier, an EntraID without tenant or audience). Set
// InsecureNoAuthentication only behind something that authenticates
// callers itself, or for local development.
//
// # URLs
//
//	azeventgridns://<namespace-host>[:port]?lockduration=60s&maxwait=60s&deadletter=native&keyenv=NAME
//	azeventgrid://<topic-host>[:port][/path]?topic=NAME&keyenv=NAME
//
// Topics and event subscriptions are named by Publish and Subscribe, not in
// the URL. lockduration is the subscriptions' receive lock duration (the
// default ack deadline), maxwait the receive long poll, deadletter=native
// says the subscriptions have a dead-letter destination. For basic topics
// the path defaults to /api/events and the topic name to the host's first
// label. The access key is read from the environment variable keyenv names
// (default AZURE_EVENTGRID_KEY); without one the Azure default credential
// chain (Microsoft Entra ID) is used.
//
// # Events on the wire
//
// Event Grid speaks CloudEvents 1.0 in the JSON event format, so an event
// travels as itself: every attribute and extension is a member of the JSON
// object, extensions keep their CloudEvents type (Integer as a number,
// Boolean as a boolean, others as canonical strings). Data travels as a
// JSON value for application/json, text/json and content-type-less JSON; as
// a JSON string for other text (text/*, XML); as data_base64 otherwise (+json
// media types included, which the CloudEvents Go SDK does not read as JSON
// values). Receiving accepts every form a CloudEvents producer may write.
// Event Grid schema events (Microsoft.Storage.BlobCreated and the like) map
// to CloudEvents by the rule on DecodeEventGridEvent.
//
// # Undecodable events and receive errors
//
// Event Grid carries only CloudEvents and Event Grid schema events, so
// nothing it delivers is a foreign message; an event crossbus cannot decode
// (say a text/plain event whose data is a JSON object) is undecodable. The
// namespace receiver hands it to the portable layer as a
// driver.Undecodable delivery whose event is the placeholder of
// UndecodableEvent (the event's JSON as data), and the portable layer
// dead-letters it (reject, with NamespaceOptions.NativeDeadLetter, else the
// route's dead-letter topic) without running the handler. The Webhook does
// the same for the events of a pushed batch; a push whose body does not
// decode at all is answered 400. A namespace receive answered 404 (the
// event subscription or its topic was deleted) stops the subscription with
// driver.ErrSubscriptionNotFound, 401 or 403 with driver.ErrUnauthorized
// (which ErrUnauthorized matches); other failures are retried.
//
// Topic and subscription names given to the Bus are portable names
// (crossbus.ValidateName), which Event Grid accepts as they are.
//
// # Native and portable
//
// Native: lock-based pull delivery, delayed redelivery (release delays are
// rounded up to Event Grid's 0 s, 10 s, 1 min, 10 min or 1 h; at most 1 h),
// lock renewal (batched across a receiver's locks), dead-letter by reject
// when NamespaceOptions.NativeDeadLetter is set, per-event publish failures
// (a refused batch is split to find the refused events). Portable: ordering
// (Event Grid does not order), dead-lettering with reasons (a rejected event
// keeps only Event Grid's own reason, and the dead-letter blobs cannot be
// read through the data plane), retries of pushed events.
//
// Limits: 1 MiB per event and per request, counted on the JSON form; 1,000
// events per namespace publish, 5,000 per basic topic publish; 100 events
// per receive; an event subscription delivers an event at most 10 times
// (maxDeliveryCount), so a retry policy may allow at most 10 attempts.
package eventgrid
