package crossbus_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/memory"
)

func sumOf(t *testing.T, rm metricdata.ResourceMetrics, name, outcome string) int64 {
	t.Helper()
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, "%s is an int64 sum", name)
			for _, dp := range sum.DataPoints {
				if outcome != "" {
					v, _ := dp.Attributes.Value("outcome")
					if v.AsString() != outcome {
						continue
					}
				}
				total += dp.Value
			}
		}
	}
	return total
}

func TestMetricsCountEveryOutcome(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	p := memory.New(memory.Options{AutoCreate: true})
	b, err := crossbus.New(p, crossbus.WithMeterProvider(mp))
	require.NoError(t, err)
	defer b.Close(context.Background())
	r := newRouter(t, b)
	require.NoError(t, r.Handle("topic", "sub", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if e.Type() == "bad" {
			return errors.New("bad")
		}
		return nil
	}), quick(2)))
	runRouter(t, r)
	good, bad := crossbus.NewEvent("good", "/m"), crossbus.NewEvent("bad", "/m")
	noType := crossbus.NewEvent("", "/m")
	_ = b.Publish(context.Background(), "topic", &good, &bad, &noType)
	waitUntil(t, "dead letter", func() bool { d, _ := p.DeadLetters("topic", "sub"); return len(d) == 1 })
	var rm metricdata.ResourceMetrics
	waitUntil(t, "metrics", func() bool {
		require.NoError(t, reader.Collect(context.Background(), &rm))
		return sumOf(t, rm, "crossbus.events.dead_lettered", "") == 1
	})
	assert.Equal(t, int64(2), sumOf(t, rm, "crossbus.events.published", ""))
	assert.Equal(t, int64(1), sumOf(t, rm, "crossbus.events.publish_failures", ""))
	assert.Equal(t, int64(3), sumOf(t, rm, "crossbus.events.delivered", ""), "good once, bad twice")
	assert.Equal(t, int64(1), sumOf(t, rm, "crossbus.events.handled", "ok"))
	assert.Equal(t, int64(2), sumOf(t, rm, "crossbus.events.handled", "error"))
	assert.Equal(t, int64(1), sumOf(t, rm, "crossbus.events.retried", ""))
	assert.Equal(t, int64(0), sumOf(t, rm, "crossbus.events.in_flight", ""))
}

func TestPublishStampsTraceContextOnEvents(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	b, err := crossbus.New(memory.New(memory.Options{AutoCreate: true}), crossbus.WithTracerProvider(tp))
	require.NoError(t, err)
	e := crossbus.NewEvent("x", "/t")
	require.NoError(t, b.Publish(context.Background(), "topic", &e))
	spans := rec.Ended()
	require.Len(t, spans, 1)
	tp0 := crossbus.ExtensionString(&e, crossbus.ExtTraceParent)
	require.Len(t, tp0, 55)
	assert.Equal(t, "00-"+spans[0].SpanContext().TraceID().String()+"-"+spans[0].SpanContext().SpanID().String()+"-01", tp0)
	ctx := crossbus.ExtractTraceContext(context.Background(), &e)
	assert.NotNil(t, ctx)

	// Without a tracer provider, a caller's own trace context still flows.
	plain, _ := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	ctx2, span := tp.Tracer("t").Start(context.Background(), "caller")
	e2 := crossbus.NewEvent("x", "/t")
	require.NoError(t, plain.Publish(ctx2, "topic", &e2))
	span.End()
	assert.Contains(t, crossbus.ExtensionString(&e2, crossbus.ExtTraceParent), span.SpanContext().TraceID().String())
}

func TestLoggingNeverLogsData(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	logging, err := crossbus.Logging(l)
	require.NoError(t, err)
	h := crossbus.Chain(crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		return errors.New("downstream timeout")
	}), logging)
	e := crossbus.NewEvent("com.example.secret", "/vault")
	require.NoError(t, crossbus.SetData(&e, map[string]string{"password": "hunter2"}))
	ctx := crossbus.WithDeliveryInfo(context.Background(), crossbus.DeliveryInfo{Subscription: "s1", Attempt: 2})
	require.Error(t, h.Handle(ctx, &e))
	out := buf.String()
	assert.NotContains(t, out, "hunter2")
	for _, want := range []string{e.ID(), "com.example.secret", "/vault", `"subscription":"s1"`, `"attempt":2`, `"outcome":"error"`, "downstream timeout"} {
		assert.True(t, strings.Contains(out, want), "log has %s: %s", want, out)
	}
}
