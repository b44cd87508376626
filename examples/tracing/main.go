// Command tracing shows one event's trace across a fan-out: a producer span
// for the publish and a consumer span for each of three subscribers (one of
// them retried), all in one trace, printed by OpenTelemetry's stdout exporter.
//
//	go run ./examples/tracing
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/crossbus/crossbus"
	_ "github.com/crossbus/crossbus/providers/memory"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spans, err := run(ctx, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracing:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "%d spans exported\n", spans)
}

// run publishes one user-signed-up event to three subscribers and returns
// how many spans were exported. The spans go to spansOut as JSON; the story
// goes to out.
func run(ctx context.Context, spansOut, out io.Writer) (int, error) {
	out = &lockedWriter{w: out} // handlers of the three routes print concurrently
	exp, err := stdouttrace.New(stdouttrace.WithWriter(spansOut), stdouttrace.WithPrettyPrint())
	if err != nil {
		return 0, err
	}
	counter := &countingExporter{SpanExporter: exp}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(counter))
	defer tp.Shutdown(context.Background())

	bus, err := crossbus.Open(ctx, "mem://", crossbus.WithTracerProvider(tp))
	if err != nil {
		return 0, err
	}
	defer bus.Close(context.Background())

	var wg sync.WaitGroup
	wg.Add(3)
	var smsTries atomic.Int32
	r, err := crossbus.NewRouter(bus)
	if err != nil {
		return 0, err
	}
	subscriber := func(name string, fail func() error) crossbus.Handler {
		return crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
			if fail != nil {
				if err := fail(); err != nil {
					fmt.Fprintf(out, "%s: %v, will retry\n", name, err)
					return err
				}
			}
			fmt.Fprintf(out, "%s: handled %s\n", name, e.ID())
			wg.Done()
			return nil
		})
	}
	retry := crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: 20 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2})
	for _, route := range []struct {
		name string
		fail func() error
	}{
		{"email", nil},
		{"sms", func() error {
			if smsTries.Add(1) == 1 {
				return errors.New("sms gateway timeout")
			}
			return nil
		}},
		{"analytics", nil},
	} {
		if err := r.Handle("user-signedup", route.name, subscriber(route.name, route.fail), retry); err != nil {
			return 0, err
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	running := make(chan error, 1)
	go func() { running <- r.Run(runCtx) }()
	select {
	case <-r.Ready():
	case err := <-running:
		return 0, err
	}

	ctx, span := tp.Tracer("signup-service").Start(ctx, "POST /signup")
	e := crossbus.NewEvent("com.example.user.signedup", "/signup")
	if err := crossbus.SetData(&e, map[string]string{"user": "ada"}); err != nil {
		return 0, err
	}
	if err := bus.Publish(ctx, "user-signedup", &e); err != nil {
		return 0, err
	}
	span.End()
	fmt.Fprintf(out, "published %s in trace %s\n", e.ID(), span.SpanContext().TraceID())
	wg.Wait()
	stop()
	if err := <-running; err != nil {
		return 0, err
	}
	return int(counter.n.Load()), nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type countingExporter struct {
	sdktrace.SpanExporter
	n atomic.Int64
}

func (c *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	c.n.Add(int64(len(spans)))
	return c.SpanExporter.ExportSpans(ctx, spans)
}
