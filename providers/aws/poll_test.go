package aws_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/aws/awstest"
)

// lateCancel is a transport whose requests go on at the server after the
// caller gave up on them, as a ReceiveMessage long poll does at SQS: a
// cancelled call may still take messages, and its answer is lost.
type lateCancel struct{ next http.RoundTripper }

func (l lateCancel) RoundTrip(req *http.Request) (*http.Response, error) {
	type answer struct {
		resp *http.Response
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		resp, err := l.next.RoundTrip(req.WithContext(context.WithoutCancel(req.Context())))
		ch <- answer{resp, err}
	}()
	select {
	case a := <-ch:
		return a.resp, a.err
	case <-req.Context().Done():
		go func() {
			if a := <-ch; a.resp != nil {
				_, _ = io.Copy(io.Discard, a.resp.Body)
				_ = a.resp.Body.Close()
			}
		}()
		return nil, req.Context().Err()
	}
}

// pollEnv is a queue "q" (visibility timeout 30s) and a provider whose
// ReceiveMessage calls, once cancelled, still run at the server.
func pollEnv(t *testing.T) (*awstest.Server, *aws.Provider, *sqs.Client, string) {
	t.Helper()
	srv := awstest.NewServer(awstest.Options{})
	t.Cleanup(srv.Close)
	cfg := srv.Config()
	client := sqs.NewFromConfig(cfg)
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: awssdk.String("q")})
	require.NoError(t, err)
	lc := cfg.Copy()
	lc.HTTPClient = &http.Client{Transport: lateCancel{next: http.DefaultTransport}}
	p, err := aws.New(context.Background(), aws.Options{Config: &lc, WaitTime: 3 * time.Second, Target: "arn:aws:sns:us-east-1:123456789012:any"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return srv, p, client, *out.QueueUrl
}

func send(t *testing.T, c *sqs.Client, url, body string) {
	t.Helper()
	_, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body})
	require.NoError(t, err)
}

// A message that arrives while a long poll runs whose Receive already
// returned (its context ended) goes to the next Receive: the poll was not
// cancelled, so SQS did not hide the message for a visibility timeout in
// an answer nobody read.
func TestAReceiveWhoseContextEndsLeavesItsPollToTheNext(t *testing.T) {
	_, p, client, url := pollEnv(t)
	r, err := p.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "t", Name: url})
	require.NoError(t, err)
	defer r.Close(context.Background())
	buf := make([]driver.Delivery, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = r.Receive(ctx, buf)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	send(t, client, url, "late")

	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := r.Receive(ctx, buf)
	require.NoError(t, err, "the message the running poll took")
	require.Equal(t, 1, n)
	assert.Equal(t, "late", string(buf[0].Event().Data()))
	require.NoError(t, buf[0].Ack(ctx))
}

// What a poll takes after its receiver closed goes back to the queue at
// once (visibility 0), for the next reader.
func TestAPollThatEndsAfterCloseReturnsWhatItTook(t *testing.T) {
	_, p, client, url := pollEnv(t)
	r, err := p.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "t", Name: url})
	require.NoError(t, err)
	buf := make([]driver.Delivery, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = r.Receive(ctx, buf)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, r.Close(context.Background()))
	send(t, client, url, "after close")

	next, err := p.Subscribe(context.Background(), driver.SubscriptionSpec{Topic: "t", Name: url})
	require.NoError(t, err)
	defer next.Close(context.Background())
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := next.Receive(ctx, buf)
	require.NoError(t, err, "the message is visible again long before its visibility timeout (30s)")
	require.Equal(t, 1, n)
	assert.Equal(t, "after close", string(buf[0].Event().Data()))
}
