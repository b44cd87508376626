package aws_test

import (
	"context"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/aws/awstest"
	"github.com/crossbus/crossbus/providers/providertest"
)

// A message that claims to be a CloudEvent and is not one reaches no
// handler: the receiver hands it over as undecodable and the portable layer
// moves it to the queue's dead-letter queue with the decode error as the
// reason, keeping the body as the placeholder's data. It runs through the
// conformance harness's PublishRaw (SQS fan-out and SNS, raw and enveloped
// delivery), with a payload SQS can carry.
func TestMalformedCloudEventIsDeadLetteredByTheCore(t *testing.T) {
	for _, svc := range []aws.Service{aws.SQS, aws.SNS} {
		t.Run(string(svc), func(t *testing.T) {
			ctx := context.Background()
			srv := awstest.NewServer(awstest.Options{})
			t.Cleanup(srv.Close)
			h := newHarness(t, srv, svc, false, aws.Structured)
			require.NoError(t, h.CreateTopic(ctx, "orders"))
			subs := []string{"billing", "shipping"} // the second gets SNS's enveloped delivery
			for _, s := range subs {
				require.NoError(t, h.CreateSubscription(ctx, "orders", s, providertest.SubscriptionOptions{MaxAttempts: 3}))
			}
			p, err := h.NewProvider(ctx)
			require.NoError(t, err)
			bus, err := crossbus.New(p)
			require.NoError(t, err)
			t.Cleanup(func() { _ = bus.Close(context.Background()) })

			var mu sync.Mutex
			handled := map[string][]string{}
			for _, s := range subs {
				_, err := bus.Subscribe(ctx, "orders", s, crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
					mu.Lock()
					handled[s] = append(handled[s], e.ID())
					mu.Unlock()
					return nil
				}), crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3}))
				require.NoError(t, err)
			}
			payload := []byte(`{"specversion":"1.0","id":"half an event`)
			require.NoError(t, h.PublishRaw(ctx, "orders", payload))
			marker := crossbus.NewEvent("com.example.marker", "/test")
			require.NoError(t, bus.Publish(ctx, "orders", &marker))

			for _, s := range subs {
				dl := readDeadLetters(t, p, "orders", s, 1)
				assert.Equal(t, driver.TypeUndecodable, dl[0].Type(), s)
				assert.Equal(t, payload, dl[0].Data(), "%s: the body is kept", s)
				info, ok := crossbus.DeadLetterInfoOf(&dl[0])
				require.True(t, ok, s)
				assert.Contains(t, info.Reason, "undecodable message", s)
				assert.Contains(t, info.Reason, aws.ErrMalformedCloudEvent.Error(), s)
				assert.Equal(t, "orders", info.Topic, s)
				assert.Equal(t, s, info.Subscription)
			}
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(handled["billing"]) == 1 && len(handled["shipping"]) == 1
			}, 10*time.Second, 10*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			for _, s := range subs {
				assert.Equal(t, []string{marker.ID()}, handled[s], "%s: only the marker reached the handler", s)
			}
		})
	}
}

func readDeadLetters(t *testing.T, p driver.Provider, topic, sub string, n int) []crossbus.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := p.(driver.DeadLetterReader).SubscribeDeadLetters(ctx, topic, sub)
	require.NoError(t, err)
	defer r.Close(context.Background())
	var out []crossbus.Event
	buf := make([]driver.Delivery, 10)
	for len(out) < n {
		k, err := r.Receive(ctx, buf)
		require.NoError(t, err, "dead letters of %s: have %d of %d", sub, len(out), n)
		for _, d := range buf[:k] {
			out = append(out, d.Event().Clone())
			require.NoError(t, d.Ack(ctx))
		}
	}
	return out
}

// Receive errors that retrying cannot fix stop the subscription with the
// sentinel that says why; throttling and outages are retried.
func TestReceiveErrorsStopOrRetryByTheirCause(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  awstest.Fault
		stops  error // nil: retried
		reason string
	}{
		{name: "access denied", fault: awstest.Fault{Service: "sqs", Operation: "ReceiveMessage", Code: "AccessDenied", Status: 403},
			stops: crossbus.ErrUnauthorized, reason: "AccessDenied"},
		{name: "KMS key refused", fault: awstest.Fault{Service: "sqs", Operation: "ReceiveMessage", Code: "KMS.AccessDeniedException"},
			stops: crossbus.ErrUnauthorized, reason: "KMS.AccessDeniedException"},
		{name: "queue gone", fault: awstest.Fault{Service: "sqs", Operation: "ReceiveMessage", Code: "AWS.SimpleQueueService.NonExistentQueue"},
			stops: crossbus.ErrSubscriptionNotFound, reason: "NonExistentQueue"},
		{name: "throttled", fault: awstest.Fault{Service: "sqs", Operation: "ReceiveMessage", Code: "RequestThrottled", Times: 3}},
		{name: "over the KMS quota", fault: awstest.Fault{Service: "sqs", Operation: "ReceiveMessage", Code: "KMS.ThrottlingException", Times: 3}},
		{name: "outage", fault: awstest.Fault{Service: "sqs", Operation: "ReceiveMessage", Code: "InternalError", Status: 500, Times: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, aws.Options{WaitTime: time.Second})
			_, err := e.p.Provision(ctx, aws.Route{Subscription: "jobs", MaxReceiveCount: 5})
			require.NoError(t, err)
			remove := e.srv.InjectFault(tc.fault)
			defer remove()
			handled := make(chan string, 10)
			s, err := e.bus.Subscribe(ctx, "jobs", "jobs", crossbus.HandlerFunc(func(_ context.Context, ev *crossbus.Event) error {
				handled <- ev.ID()
				return nil
			}))
			require.NoError(t, err)
			if tc.stops != nil {
				select {
				case <-s.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("the subscription kept retrying an error that retrying cannot fix")
				}
				require.ErrorIs(t, s.Err(), tc.stops)
				assert.ErrorContains(t, s.Err(), tc.reason)
				assert.ErrorContains(t, s.Err(), `"jobs"`)
				return
			}
			ev := crossbus.NewEvent("com.example.job", "/test")
			require.NoError(t, e.bus.Publish(ctx, "jobs", &ev))
			select {
			case id := <-handled:
				assert.Equal(t, ev.ID(), id, "received once the fault passed")
			case <-time.After(15 * time.Second):
				t.Fatal("the subscription did not recover from a transient error")
			}
			assert.NoError(t, s.Err())
		})
	}
}

// Credentials the service refuses fail Subscribe (and would stop a running
// subscription) with crossbus.ErrUnauthorized.
func TestRefusedCredentialsAreUnauthorized(t *testing.T) {
	ctx := context.Background()
	srv := awstest.NewServer(awstest.Options{})
	t.Cleanup(srv.Close)
	good := srv.Config()
	admin := sqs.NewFromConfig(good)
	q, err := admin.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: awssdk.String("jobs")})
	require.NoError(t, err)

	bad := srv.Config()
	bad.Credentials = awssdk.NewCredentialsCache(staticCreds{"AKIDAWSTEST", "not-the-secret"})
	p, err := aws.New(ctx, aws.Options{Config: &bad, Queues: map[string]string{"jobs": *q.QueueUrl}})
	require.NoError(t, err)
	_, err = p.Subscribe(ctx, driver.SubscriptionSpec{Topic: "jobs", Name: "jobs"})
	require.ErrorIs(t, err, crossbus.ErrUnauthorized)
	assert.ErrorContains(t, err, "SignatureDoesNotMatch")

	unknown := srv.Config()
	unknown.Credentials = awssdk.NewCredentialsCache(staticCreds{"AKIDSOMEONEELSE", "secret"})
	p, err = aws.New(ctx, aws.Options{Config: &unknown})
	require.NoError(t, err)
	ev := crossbus.NewEvent("t", "/t")
	err = p.Publish(ctx, "jobs", []*crossbus.Event{&ev})
	require.ErrorIs(t, err, crossbus.ErrUnauthorized, "publishing too")
	assert.NotErrorIs(t, err, crossbus.ErrTopicNotFound)

	_, err = admin.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{"All"}})
	require.NoError(t, err, "the server itself is fine")
}

type staticCreds struct{ id, secret string }

func (c staticCreds) Retrieve(context.Context) (awssdk.Credentials, error) {
	return awssdk.Credentials{AccessKeyID: c.id, SecretAccessKey: c.secret, Source: "test"}, nil
}
