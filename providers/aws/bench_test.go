package aws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/benchcpu"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/aws/awstest"
)

// Both sub-benchmarks do the same work against the test server: publish
// b.N CloudEvents as structured JSON in batches of 10 from benchPublishers
// goroutines, receive them with benchConsumers long-polling consumers
// taking up to 10 messages at a time, decode each back into an event, and
// delete them in batches. "raw" is the hand-written SDK loop; "crossbus" is
// Bus.Publish and Bus.Subscribe over the provider.
const (
	benchPublishers = 4
	benchConsumers  = 8
	benchChunk      = 100
)

func benchEvents(n int) []*crossbus.Event {
	evs := make([]*crossbus.Event, n)
	for i := range evs {
		e := crossbus.NewEvent("com.example.order.placed", "/bench")
		_ = crossbus.SetData(&e, map[string]any{"order": i, "amount": 42.5, "currency": "EUR"})
		evs[i] = &e
	}
	return evs
}

// publishAll calls publish for chunks of events from benchPublishers
// goroutines.
func publishAll(b *testing.B, n int, publish func(from, to int) error) {
	var wg sync.WaitGroup
	for p := range benchPublishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p * benchChunk; i < n; i += benchPublishers * benchChunk {
				if err := publish(i, min(i+benchChunk, n)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkSQS(b *testing.B) {
	srv := awstest.NewServer(awstest.Options{})
	defer srv.Close()
	cfg := srv.Config()
	client := sqs.NewFromConfig(cfg)
	ctx := context.Background()
	run := 0
	newQueue := func(b *testing.B) string {
		run++
		out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: awssdk.String(fmt.Sprintf("bench-%d", run))})
		if err != nil {
			b.Fatal(err)
		}
		return *out.QueueUrl
	}

	b.Run("crossbus", func(b *testing.B) {
		url := newQueue(b)
		// Portable names for the queue, mapped onto its URL.
		name := fmt.Sprintf("bench-%d", run)
		p, err := aws.New(ctx, aws.Options{Config: &cfg, Queues: map[string]string{name: url},
			Topics: func(topic string) ([]string, bool) { return []string{url}, topic == name }})
		if err != nil {
			b.Fatal(err)
		}
		bus, err := crossbus.New(p)
		if err != nil {
			b.Fatal(err)
		}
		defer bus.Close(ctx)
		evs := benchEvents(b.N)
		var handled atomic.Int64
		done := make(chan struct{})
		b.ReportAllocs()
		b.ResetTimer()
		cpu := benchcpu.Start()
		calls0 := calls(srv)
		sub, err := bus.Subscribe(ctx, name, name, crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			if handled.Add(1) == int64(b.N) {
				close(done)
			}
			return nil
		}), crossbus.WithConcurrency(benchConsumers), crossbus.WithPrefetch(10), crossbus.WithDeadLetterTopic(name))
		if err != nil {
			b.Fatal(err)
		}
		publishAll(b, b.N, func(from, to int) error { return bus.Publish(ctx, name, evs[from:to]...) })
		<-done
		if err := sub.Close(ctx); err != nil { // waits for the queued deletes
			b.Fatal(err)
		}
		b.StopTimer()
		report(b, srv, cpu, calls0)
		assertEmpty(b, client, url)
	})

	b.Run("raw", func(b *testing.B) {
		url := newQueue(b)
		evs := benchEvents(b.N)
		ct := map[string]sqstypes.MessageAttributeValue{aws.AttrContentType: {DataType: awssdk.String("String"), StringValue: awssdk.String(aws.StructuredContentType)}}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := benchcpu.Start()
		calls0 := calls(srv)
		var handled atomic.Int64
		cctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for range benchConsumers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for cctx.Err() == nil {
					out, err := client.ReceiveMessage(cctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 20,
						VisibilityTimeout: 30, MessageAttributeNames: []string{"All"},
						MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{"ApproximateReceiveCount", "SentTimestamp"}})
					if err != nil {
						if cctx.Err() == nil {
							b.Error(err)
						}
						return
					}
					if len(out.Messages) == 0 {
						continue
					}
					entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(out.Messages))
					for i, m := range out.Messages {
						var e crossbus.Event
						if err := json.Unmarshal([]byte(*m.Body), &e); err != nil {
							b.Error(err)
						}
						entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: awssdk.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
					}
					if _, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
						b.Error(err)
					}
					if handled.Add(int64(len(out.Messages))) >= int64(b.N) {
						stop()
					}
				}
			}()
		}
		publishAll(b, b.N, func(from, to int) error {
			for i := from; i < to; i += 10 {
				entries := make([]sqstypes.SendMessageBatchRequestEntry, 0, 10)
				for j := i; j < min(i+10, to); j++ {
					body, err := json.Marshal(evs[j])
					if err != nil {
						return err
					}
					entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: awssdk.String(strconv.Itoa(j - i)),
						MessageBody: awssdk.String(string(body)), MessageAttributes: ct})
				}
				if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
					return err
				}
			}
			return nil
		})
		wg.Wait()
		stop()
		b.StopTimer()
		report(b, srv, cpu, calls0)
		assertEmpty(b, client, url)
	})
}

// report adds events/s (wall clock), calls/event (requests to the server)
// and cpu-us/event (the CPU time of the whole process, client and test
// server, per event: steadier than the wall clock when other work shares
// the machine).
func report(b *testing.B, srv *awstest.Server, cpu benchcpu.Clock, calls0 int) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(calls(srv)-calls0)/float64(b.N), "calls/event")
	cpu.Report(b, b.N)
}

// calls is how many requests the server handled so far.
func calls(srv *awstest.Server) int {
	n := 0
	for _, c := range srv.Requests() {
		n += c
	}
	return n
}

// assertEmpty checks that every message was deleted.
func assertEmpty(b *testing.B, c *sqs.Client, url string) {
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil {
		b.Fatal(err)
	}
	if out.Attributes["ApproximateNumberOfMessages"] != "0" || out.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		b.Fatalf("queue not empty after the run: %v", out.Attributes)
	}
}
