package providertest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/crossbus/crossbus"
)

// testTraceContext checks that one trace runs from the producer through the
// provider to every consumer span, across a retry and a dead-letter.
func testTraceContext(t *testing.T, e *env) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	p, err := e.h.NewProvider(e.ctx)
	require.NoError(t, err)
	b, err := crossbus.New(p, crossbus.WithTracerProvider(tp))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })

	topic := e.topic()
	flaky := e.subscription(topic, SubscriptionOptions{MaxAttempts: 3})
	doomed := e.subscription(topic, SubscriptionOptions{MaxAttempts: 2})
	var flakyRuns atomic.Int32
	okDone := make(chan struct{})
	subscribe(t, e, b, topic, flaky, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		if flakyRuns.Add(1) == 1 {
			return errors.New("first attempt fails")
		}
		close(okDone)
		return nil
	}), append(e.deadLetters(b, topic, flaky).opts, crossbus.WithRetry(fastRetry(3)))...)
	dl := e.deadLetters(b, topic, doomed)
	subscribe(t, e, b, topic, doomed, crossbus.HandlerFunc(func(ctx context.Context, ev *crossbus.Event) error {
		return errors.New("never works")
	}), append(dl.opts, crossbus.WithRetry(fastRetry(2)))...)

	tr := tp.Tracer("providertest")
	ctx, parent := tr.Start(e.ctx, "checkout")
	ev := newEvent(1)
	require.NoError(t, b.Publish(ctx, topic, ev))
	parent.End()
	traceID := parent.SpanContext().TraceID()

	select {
	case <-okDone:
	case <-time.After(e.f.Timeout):
		t.Fatal("the flaky subscriber never succeeded")
	}
	dl.read(b, 1)
	assert.Eventually(t, func() bool { // what is missing is told below
		var process, retries, deadLetters int
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindConsumer {
				process++
				for _, ev := range s.Events() {
					switch ev.Name {
					case "retry":
						retries++
					case "dead_letter":
						deadLetters++
					}
				}
			}
		}
		return process >= 3 && retries >= 1 && deadLetters >= 1
	}, e.f.Timeout, 20*time.Millisecond, "the spans of a publish, a retry and a dead-letter")
	spans := rec.Ended()
	var producer sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindProducer && s.Name() == "send "+topic {
			producer = s
		}
	}
	require.NotNil(t, producer, "a producer span for the publish")
	assert.Equal(t, traceID, producer.SpanContext().TraceID())
	var sawRetry, sawDeadLetter, sawError bool
	consumers := 0
	for _, s := range spans {
		if s.SpanKind() != trace.SpanKindConsumer {
			continue
		}
		consumers++
		assert.Equal(t, traceID, s.SpanContext().TraceID(), "consumer span %q joins the producer's trace", s.Name())
		for _, ev := range s.Events() {
			sawRetry = sawRetry || ev.Name == "retry"
			sawDeadLetter = sawDeadLetter || ev.Name == "dead_letter"
		}
		sawError = sawError || s.Status().Code == 1 // codes.Error
	}
	assert.GreaterOrEqual(t, consumers, 3)
	assert.True(t, sawRetry, "a retry is a span event")
	assert.True(t, sawDeadLetter, "a dead-letter is a span event")
	assert.True(t, sawError, "a failed handling sets the span status")
}
