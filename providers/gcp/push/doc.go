// Package push receives events that Google Cloud pushes over HTTP, for
// services on Cloud Run, Cloud Functions (2nd gen) or anywhere else an
// Eventarc trigger or a Pub/Sub push subscription can reach, and runs them
// through a crossbus route exactly as pulled deliveries run: filters,
// middleware, idempotency, the retry policy and dead-lettering.
//
// A Handler is a plain http.Handler. It accepts:
//
//   - CloudEvents over HTTP in binary mode (ce- headers, the data as the
//     body) and in structured mode (application/cloudevents+json), as
//     Eventarc delivers them to Cloud Run and Cloud Functions;
//   - Pub/Sub push envelopes: a JSON body {"message": {"data",
//     "attributes", "messageId", "publishTime", "orderingKey"},
//     "subscription", "deliveryAttempt"}. The message is read with the
//     Pub/Sub CloudEvents binding (see package pubsubwire): a message that
//     crossbus (or any binding-conformant producer) published arrives as
//     the original event, any other message as a
//     google.cloud.pubsub.topic.v1.messagePublished event, as Eventarc
//     would deliver it;
//   - Eventarc messagePublished events whose Pub/Sub message is itself a
//     CloudEvent in the binding's form: the inner event is delivered, so a
//     route sees the event crossbus published, not its envelope.
//
// # Responses
//
// Pub/Sub push and Eventarc retry every response other than 102, 200, 201,
// 202 and 204, with the subscription's backoff, until the message's
// retention ends or the subscription's dead-letter policy forwards it. The
// Handler answers:
//
//   - 204 No Content when the event was handled, filtered out, a duplicate,
//     or dead-lettered through the route's dead-letter topic: nothing more
//     to do. That includes the message of a push envelope that claims to
//     be a CloudEvent (content-type application/cloudevents+json, or a
//     ce-specversion attribute) and is not a valid one: the Handler hands
//     it to the route as undecodable (driver.Undecodable), and the
//     portable layer dead-letters its placeholder
//     (pubsubwire.UndecodableEvent) with the reason "undecodable message:
//     ..." without running the handler;
//   - 503 Service Unavailable with Retry-After (the retry policy's delay, in
//     seconds) when the handler failed and the event should be retried.
//     Pub/Sub push (and so Eventarc) schedules the retry by the
//     subscription's retry policy, not by Retry-After; other CloudEvents
//     senders may honour it;
//   - 400 Bad Request for a request that is neither a CloudEvent nor a push
//     envelope, or an invalid one (a CloudEvent over HTTP whose headers or
//     body do not decode, an envelope that does not parse). Such a request never parses, however
//     often it is retried; it is still rejected rather than acknowledged so
//     that nothing is dropped silently: with a dead-letter policy on the
//     push subscription (recommended) it lands in the dead-letter topic
//     after the policy's attempts, where it can be inspected.
//     Options.AcknowledgeMalformed answers 204 instead (and logs the
//     request), for deployments that prefer to drop poison requests;
//   - 401 Unauthorized when the request carries no valid token, answered
//     before a byte of the body is read; 503 when the verifier cannot fetch
//     signing keys;
//   - 405 for methods other than POST; 413 for bodies over
//     Options.MaxBodyBytes (default DefaultMaxBodyBytes), answered without
//     reading further (without reading at all when the Content-Length
//     says so); 415 for CloudEvents batches and structured formats other
//     than JSON.
//
// # Attempts
//
// The retry policy needs the attempt number. Pub/Sub push envelopes carry
// deliveryAttempt only when the push subscription has a dead-letter
// policy; Eventarc does not report one. Without it the Handler counts the
// retryable failures it answered for each event (by source and id) itself,
// per process: with several instances an event may be tried up to the
// policy's limit on each instance before it is dead-lettered. Give the
// push subscription a dead-letter policy for exact counts.
//
// # Authentication
//
// A Handler authenticates its callers unless told otherwise: NewHandler
// refuses Options that set neither a Verifier nor
// InsecureNoAuthentication. Pub/Sub push subscriptions and Eventarc
// triggers with a service account send a Google-signed OIDC token in the
// Authorization header; one line checks it:
//
//	push.Options{Verifier: push.NewGoogleOIDC(audience, serviceAccountEmail)}
//
// GoogleOIDC checks the RS256 signature against Google's published keys
// (fetched and cached), the issuer (accounts.google.com), the audience,
// the expiry and the service account's email. The audience is the push
// subscription's (--push-auth-token-audience; by default its push endpoint
// URL); an Eventarc trigger pushes through a subscription named in its
// transport, whose audience "gcloud pubsub subscriptions describe" shows.
// The email is the subscription's or the trigger's service account
// (--push-auth-service-account, --service-account). The token is checked
// before the body is read, so a caller without one costs no more than its
// headers.
//
// Set InsecureNoAuthentication instead only where the platform already
// authenticates every caller, as Cloud Run does for a service deployed
// with --no-allow-unauthenticated (its IAM invoker check runs before the
// request reaches the Handler), or for local development. Checking the
// token as well costs little and keeps the service safe if it is ever
// redeployed with --allow-unauthenticated.
//
// # Deploying on Cloud Run with an Eventarc trigger for Cloud Storage
//
// A service that resizes images when they are uploaded to a bucket:
//
//	func main() {
//		ctx := context.Background()
//		bus, _ := crossbus.Open(ctx, "gcppubsub://projects/my-project") // for the dead-letter topic
//		ep, _ := bus.NewEndpoint("uploads", "resizer", crossbus.Typed(resize),
//			crossbus.WithDeadLetterTopic("uploads-dead-letters"))
//		h, _ := push.NewHandler(ep, push.Options{Verifier: push.NewGoogleOIDC(
//			"https://resizer-abc123-uc.a.run.app/events/uploads", // the audience of the trigger's tokens
//			"resizer-trigger@my-project.iam.gserviceaccount.com", // the trigger's service account
//		)})
//		http.Handle("POST /events/uploads", h)
//		log.Fatal(http.ListenAndServe(":"+os.Getenv("PORT"), nil))
//	}
//
//	type object struct { // google.events.cloud.storage.v1.StorageObjectData
//		Bucket      string `json:"bucket"`
//		Name        string `json:"name"`
//		ContentType string `json:"contentType"`
//		Size        string `json:"size"`
//	}
//
//	func resize(ctx context.Context, e *crossbus.Event, o object) error { ... }
//
// Deploy it and create the trigger (Eventarc delivers
// google.cloud.storage.object.v1.finalized events, source
// //storage.googleapis.com/projects/_/buckets/BUCKET, subject
// objects/NAME, in binary mode):
//
//	gcloud run deploy resizer --source . --region us-central1 --no-allow-unauthenticated
//	gcloud projects add-iam-policy-binding my-project \
//	    --member serviceAccount:service-PROJECT_NUMBER@gs-project-accounts.iam.gserviceaccount.com \
//	    --role roles/pubsub.publisher
//	gcloud iam service-accounts create resizer-trigger
//	gcloud projects add-iam-policy-binding my-project \
//	    --member serviceAccount:resizer-trigger@my-project.iam.gserviceaccount.com --role roles/eventarc.eventReceiver
//	gcloud run services add-iam-policy-binding resizer --region us-central1 \
//	    --member serviceAccount:resizer-trigger@my-project.iam.gserviceaccount.com --role roles/run.invoker
//	gcloud eventarc triggers create resizer-uploads --location us-central1 \
//	    --destination-run-service resizer --destination-run-region us-central1 \
//	    --destination-run-path /events/uploads \
//	    --event-filters type=google.cloud.storage.object.v1.finalized \
//	    --event-filters bucket=my-uploads \
//	    --service-account resizer-trigger@my-project.iam.gserviceaccount.com
//
// The trigger's bucket must be in the trigger's location (or a
// multi-region containing it). Eventarc carries the events over a Pub/Sub
// push subscription it manages; to bound retries of a failing event, give
// that subscription (named in the trigger's transport) a dead-letter
// policy.
package push
