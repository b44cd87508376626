package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"gocloud.dev/blob"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/claimcheck"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/patterns/bridge"
)

type order struct {
	ID       string  `json:"id"`
	Customer string  `json:"customer"`
	Items    int     `json:"items"`
	Total    float64 `json:"total"`
	Currency string  `json:"currency"`
}

// story prints what happens, one line each, safe for concurrent use.
type story struct {
	mu  sync.Mutex
	out io.Writer
}

func (s *story) say(cloud, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.out, "  %-7s %s\n", cloud, fmt.Sprintf(format, args...))
}

func (s *story) title(t string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.out, "\n== %s\n", t)
}

// run plays the scenario and prints it, then the trace.
func run(ctx context.Context, out io.Writer, cfg config) error {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	c, err := openClouds(ctx, cfg, tp)
	if err != nil {
		return err
	}
	defer c.close()
	st := &story{out: out}
	where := "embedded test servers (AWS test server, Service Bus test broker, pstest, gofakes3)"
	if !cfg.embedded() {
		where = "real accounts"
	}
	st.title("multicloud: AWS -> Azure + Google, on " + where)

	// AWS: two bridges, each a route on the AWS queues.
	toAzure, err := bridge.New(bridge.Config{Name: "aws-azure", Target: c.azure, TargetTopic: "orders"})
	if err != nil {
		return err
	}
	toGoogle, err := bridge.New(bridge.Config{Name: "aws-gcp", Target: c.gcp, TargetTopic: "orders"})
	if err != nil {
		return err
	}
	retry := crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 5, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2})
	awsRouter, err := crossbus.NewRouter(c.aws, retry)
	if err != nil {
		return err
	}
	if err := toAzure.Route(awsRouter, "orders", "to-azure", retry); err != nil {
		return err
	}
	if err := toGoogle.Route(awsRouter, "orders", "to-gcp", retry); err != nil {
		return err
	}

	// Azure: fulfilment, idempotent by source + id.
	var mu sync.Mutex
	ran := map[trace.SpanID]bool{} // consumer spans in which a handler ran
	fulfilled := make(chan string, 10)
	azureRouter, err := crossbus.NewRouter(c.azure, retry)
	if err != nil {
		return err
	}
	err = azureRouter.Handle("orders", "fulfilment", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		ran[trace.SpanFromContext(ctx).SpanContext().SpanID()] = true
		mu.Unlock()
		switch e.Type() {
		case "com.example.order.placed":
			o, err := crossbus.DataAs[order](e)
			if err != nil {
				return err
			}
			st.say("azure", "fulfilment: packing order %s (%d item%s for %s)", o.ID, o.Items, plural(o.Items), o.Customer)
		case "com.example.invoice.attached":
			sum := sha256.Sum256(e.Data())
			st.say("azure", "fulfilment: invoice %s attached, %.1f MB %s, sha256 %x…, fetched from %s", e.Subject(),
				float64(len(e.Data()))/(1<<20), e.DataContentType(), sum[:4], shortRef(claimcheck.Ref(e)))
		}
		fulfilled <- e.ID()
		return nil
	}), crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}))
	if err != nil {
		return err
	}

	// Google: analytics, which cannot price one currency.
	counted := make(chan string, 10)
	gcpRouter, err := crossbus.NewRouter(c.gcp, retry)
	if err != nil {
		return err
	}
	err = gcpRouter.Handle("orders", "analytics", crossbus.Typed(func(ctx context.Context, e *crossbus.Event, o order) error {
		mu.Lock()
		ran[trace.SpanFromContext(ctx).SpanContext().SpanID()] = true
		mu.Unlock()
		if o.Currency != "EUR" && o.Currency != "USD" {
			st.say("google", "analytics: order %s in %q: no exchange rate; giving up on it", o.ID, o.Currency)
			return crossbus.Permanent(fmt.Errorf("no exchange rate for currency %q", o.Currency))
		}
		st.say("google", "analytics: counted order %s, %.2f %s", o.ID, o.Total, o.Currency)
		counted <- e.ID()
		return nil
	}), crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}))
	if err != nil {
		return err
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, r := range []*crossbus.Router{awsRouter, azureRouter, gcpRouter} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
			}
		}()
		select {
		case <-r.Ready():
			if err := r.Err(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer wg.Wait()
	defer stop()

	// The shop, on AWS: one checkout, one trace.
	shopCtx, checkout := tp.Tracer("shop").Start(ctx, "checkout o-1001")
	placed := crossbus.NewEvent("com.example.order.placed", "https://shop.example.com")
	placed.SetID("o-1001")
	_ = crossbus.SetData(&placed, order{ID: "o-1001", Customer: "ada", Items: 3, Total: 129.90, Currency: "EUR"})
	crossbus.SetPartitionKey(&placed, "ada")
	if err := c.aws.Publish(shopCtx, "orders", &placed); err != nil {
		return err
	}
	st.say("aws", "shop: published order o-1001 on EventBridge (trace %s)", checkout.SpanContext().TraceID())

	invoice := crossbus.NewEvent("com.example.invoice.attached", "https://shop.example.com")
	invoice.SetID("inv-1001")
	invoice.SetSubject("o-1001/invoice.pdf")
	invoice.SetDataContentType("application/pdf")
	pdf := invoicePDF(3 << 20)
	_ = crossbus.SetData(&invoice, pdf)
	crossbus.SetPartitionKey(&invoice, "ada")
	if err := c.aws.Publish(shopCtx, "orders", &invoice); err != nil {
		return err
	}
	st.say("aws", "shop: published invoice inv-1001 (%.1f MB PDF; EventBridge takes 256 KB: the data went to the bucket)", float64(len(pdf))/(1<<20))

	// The shop's HTTP client timed out and it publishes the order again.
	again := placed.Clone()
	if err := c.aws.Publish(shopCtx, "orders", &again); err != nil {
		return err
	}
	st.say("aws", "shop: published order o-1001 again (a retry after a timeout: same id)")

	poison := crossbus.NewEvent("com.example.order.placed", "https://shop.example.com")
	poison.SetID("o-1002")
	_ = crossbus.SetData(&poison, order{ID: "o-1002", Customer: "grace", Items: 1, Total: 5, Currency: "XTS"})
	if err := c.aws.Publish(shopCtx, "orders", &poison); err != nil {
		return err
	}
	st.say("aws", "shop: published order o-1002 (in a currency analytics cannot price)")

	// Wait: fulfilment handles o-1001, inv-1001, o-1002; analytics o-1001;
	// o-1002 reaches Pub/Sub's dead-letter topic.
	want := map[string]int{"o-1001": 1, "inv-1001": 1, "o-1002": 1}
	if err := await(ctx, fulfilled, want); err != nil {
		return fmt.Errorf("fulfilment: %w", err)
	}
	if err := await(ctx, counted, map[string]int{"o-1001": 1}); err != nil {
		return fmt.Errorf("analytics: %w", err)
	}
	dl, err := readDeadLetter(ctx, c.gcp, "orders", "analytics")
	if err != nil {
		return err
	}
	info, _ := crossbus.DeadLetterInfoOf(dl)
	st.say("google", "dead letter on Pub/Sub (subscription analytics): %s after %d attempt(s): %s", dl.ID(), info.Attempts, info.Reason)
	// Both copies of o-1001 crossed both bridges: wait for the duplicate's
	// delivery on Azure, which idempotency skips.
	if err := waitFor(ctx, func() bool { return toAzure.Stats().Forwarded == 4 && toGoogle.Stats().Forwarded == 3 }); err != nil {
		return fmt.Errorf("bridges: %w", err)
	}
	if err := waitFor(ctx, func() bool {
		return countSpans(rec, "process fulfilment", "o-1001") == 2 && countSpans(rec, "process analytics", "o-1001") == 2
	}); err != nil {
		return fmt.Errorf("duplicate: %w", err)
	}
	time.Sleep(100 * time.Millisecond) // let the last spans end
	checkout.End()
	stop()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}

	st.title("outcome")
	objs, _ := listObjects(ctx, c.store)
	a, g := toAzure.Stats(), toGoogle.Stats()
	st.say("aws", "bridge aws-azure forwarded %d events, aws-gcp %d (the order twice: a bridge keeps ids, it does not deduplicate)", a.Forwarded, g.Forwarded)
	st.say("azure", "fulfilment handled o-1001 once; its second delivery was a duplicate, skipped by idempotency")
	st.say("google", "analytics counted o-1001 once, the same way")
	st.say("google", "analytics dead-lettered o-1002 on Google; Azure fulfilled the same order")
	st.say("s3", "claim check: %s (written once, read by the bridge and by fulfilment)", objs)

	st.title("one trace across AWS, Azure and Google")
	mu.Lock()
	defer mu.Unlock()
	printTree(out, rec.Ended(), checkout.SpanContext().TraceID(), ran)
	return nil
}

// invoicePDF is n bytes that look like a PDF.
func invoicePDF(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1001, 42))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, "%PDF-1.7\n% invoice o-1001\n")
	return b
}

func shortRef(ref string) string {
	if i := strings.LastIndex(ref, "/"); i >= 0 && len(ref)-i > 13 {
		return ref[:i+13] + "…"
	}
	return ref
}

// await takes ids from ch until each of want was seen its number of times.
func await(ctx context.Context, ch <-chan string, want map[string]int) error {
	for left := len(want); left > 0; {
		select {
		case id := <-ch:
			if want[id]--; want[id] == 0 {
				left--
			}
		case <-ctx.Done():
			return fmt.Errorf("still waiting for %v: %w", want, ctx.Err())
		}
	}
	return nil
}

func waitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// readDeadLetter takes one dead letter of a subscription (natively kept by
// its cloud) and removes it.
func readDeadLetter(ctx context.Context, b *crossbus.Bus, topic, sub string) (*crossbus.Event, error) {
	dlr, ok := b.Provider().(driver.DeadLetterReader)
	if !ok {
		return nil, fmt.Errorf("dead letters of %s: %w", sub, crossbus.ErrNotSupported)
	}
	r, err := dlr.SubscribeDeadLetters(ctx, topic, sub)
	if err != nil {
		return nil, err
	}
	defer r.Close(context.Background())
	buf := make([]driver.Delivery, 1)
	if _, err := r.Receive(ctx, buf); err != nil {
		return nil, fmt.Errorf("dead letters of %s: %w", sub, err)
	}
	e := buf[0].Event().Clone()
	return &e, buf[0].Ack(ctx)
}

func listObjects(ctx context.Context, s *claimcheck.Store) (string, error) {
	it := s.Bucket().List(&blob.ListOptions{Prefix: claimcheck.DefaultPrefix})
	var parts []string
	for {
		o, err := it.Next(ctx)
		if err != nil {
			break
		}
		parts = append(parts, fmt.Sprintf("%s/%s… %.1f MB", s.URI(), o.Key[:min(len(o.Key), 27)], float64(o.Size)/(1<<20)))
	}
	if len(parts) == 0 {
		return "no object", nil
	}
	return fmt.Sprintf("%d object: %s", len(parts), strings.Join(parts, ", ")), nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
