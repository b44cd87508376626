package crossbus

import (
	"context"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/crossbus/crossbus/driver"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// instrumentationName names crossbus's tracer and meter.
const instrumentationName = "github.com/crossbus/crossbus"

// WithTracerProvider sets the OpenTelemetry tracer provider. The default is
// the global one (otel.GetTracerProvider), a no-op until the application
// installs an SDK.
func WithTracerProvider(tp trace.TracerProvider) BusOption {
	return func(b *Bus) error {
		if tp == nil {
			return errNilOption("WithTracerProvider")
		}
		b.tel.tp = tp
		return nil
	}
}

// WithMeterProvider sets the OpenTelemetry meter provider. The default is the
// global one (otel.GetMeterProvider), a no-op until the application installs
// an SDK.
func WithMeterProvider(mp metric.MeterProvider) BusOption {
	return func(b *Bus) error {
		if mp == nil {
			return errNilOption("WithMeterProvider")
		}
		b.tel.mp = mp
		return nil
	}
}

// unsetTracerProvider is the type of OpenTelemetry's global tracer provider
// before the application installs one: spans from it record nothing.
var unsetTracerProvider = reflect.TypeOf(otel.GetTracerProvider())

// unsetMeterProvider is the type of OpenTelemetry's global meter provider
// before the application installs one: nothing it counts is kept.
var unsetMeterProvider = reflect.TypeOf(otel.GetMeterProvider())

// telemetry holds the bus's tracer and instruments.
type telemetry struct {
	tp     trace.TracerProvider
	mp     metric.MeterProvider
	tracer trace.Tracer
	// global: tp is the global provider, looked up again while it is
	// unset, so one installed after the bus opened is still used.
	global bool
	// globalMP: mp is the global meter provider; while it is unset the
	// per-event measurements (and the clock reads they need) are skipped.
	globalMP bool
	globalTP atomic.Pointer[tracerHolder]
	system   attribute.KeyValue
	prop     propagation.TraceContext

	published, publishFailures metric.Int64Counter
	delivered, handled         metric.Int64Counter
	retried, deadLettered      metric.Int64Counter
	receiveFailures            metric.Int64Counter
	inFlight                   metric.Int64UpDownCounter
	duration, latency          metric.Float64Histogram
}

type tracerHolder struct {
	tp     trace.TracerProvider
	tracer trace.Tracer
}

// tracerOn returns the tracer to use, or false when no tracer provider is
// installed: then no span is started and tracing costs nothing.
func (t *telemetry) tracerOn() (trace.Tracer, bool) {
	if !t.global {
		return t.tracer, true
	}
	tp := otel.GetTracerProvider()
	if reflect.TypeOf(tp) == unsetTracerProvider {
		return nil, false
	}
	if h := t.globalTP.Load(); h != nil && h.tp == tp {
		return h.tracer, true
	}
	h := &tracerHolder{tp: tp, tracer: tp.Tracer(instrumentationName)}
	t.globalTP.Store(h)
	return h.tracer, true
}

// metricsOn reports whether measurements are kept: false while the global
// meter provider is the unset default, so counting an event costs nothing
// (no clock reads either) until the application installs an SDK.
func (t *telemetry) metricsOn() bool {
	return !t.globalMP || reflect.TypeOf(otel.GetMeterProvider()) != unsetMeterProvider
}

func (t *telemetry) init(p driver.Provider) {
	if t.tp == nil {
		t.tp = otel.GetTracerProvider()
		t.global = true
	}
	if t.mp == nil {
		t.mp = otel.GetMeterProvider()
		t.globalMP = true
	}
	t.tracer = t.tp.Tracer(instrumentationName)
	sys := "crossbus"
	if ms, ok := p.(driver.MessagingSystem); ok {
		sys = ms.MessagingSystem()
	}
	t.system = attribute.String("messaging.system", sys)
	m := t.mp.Meter(instrumentationName)
	// Instrument creation fails only for invalid names; ours are constant
	// and valid, and the API returns no-op instruments on error anyway.
	t.published, _ = m.Int64Counter("crossbus.events.published", metric.WithDescription("Events accepted by the provider."), metric.WithUnit("{event}"))
	t.publishFailures, _ = m.Int64Counter("crossbus.events.publish_failures", metric.WithDescription("Events refused at publish."), metric.WithUnit("{event}"))
	t.delivered, _ = m.Int64Counter("crossbus.events.delivered", metric.WithDescription("Deliveries received from the provider."), metric.WithUnit("{event}"))
	t.handled, _ = m.Int64Counter("crossbus.events.handled", metric.WithDescription("Handler runs, by outcome."), metric.WithUnit("{event}"))
	t.retried, _ = m.Int64Counter("crossbus.events.retried", metric.WithDescription("Failed handlings that will be retried."), metric.WithUnit("{event}"))
	t.deadLettered, _ = m.Int64Counter("crossbus.events.dead_lettered", metric.WithDescription("Events given up on."), metric.WithUnit("{event}"))
	t.receiveFailures, _ = m.Int64Counter("crossbus.receive.failures", metric.WithDescription("Failed Receive calls of the provider, by whether they stopped the subscription."), metric.WithUnit("{failure}"))
	t.inFlight, _ = m.Int64UpDownCounter("crossbus.events.in_flight", metric.WithDescription("Handlers running."), metric.WithUnit("{event}"))
	t.duration, _ = m.Float64Histogram("crossbus.handler.duration", metric.WithDescription("Handler run time."), metric.WithUnit("s"))
	t.latency, _ = m.Float64Histogram("crossbus.events.latency", metric.WithDescription("End-to-end latency: handling start minus the event's time."), metric.WithUnit("s"))
}

// publishSpan starts the producer span of one Publish call and stamps its
// context on the events (the CloudEvents distributed-tracing extension).
func (t *telemetry) publishSpan(ctx context.Context, topic string, events []*Event) trace.Span {
	tracer, on := t.tracerOn()
	if !on {
		// Keep a caller's trace context flowing even when we do not record.
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			inject(sc, events)
		}
		return noopSpan
	}
	_, span := tracer.Start(ctx, "send "+topic, trace.WithSpanKind(trace.SpanKindProducer))
	if !span.IsRecording() {
		// Keep a caller's trace context flowing even when we do not record.
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			inject(sc, events)
		}
		return span
	}
	span.SetAttributes(t.system,
		attribute.String("messaging.destination.name", topic),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.operation.name", "publish"),
		attribute.Int("messaging.batch.message_count", len(events)))
	if len(events) == 1 && events[0] != nil && events[0].Context != nil {
		e := events[0]
		span.SetAttributes(attribute.String("messaging.message.id", e.ID()),
			attribute.String("cloudevents.event_id", e.ID()),
			attribute.String("cloudevents.event_type", e.Type()),
			attribute.String("cloudevents.event_source", sourceOf(e)))
	}
	inject(span.SpanContext(), events)
	return span
}

func inject(sc trace.SpanContext, events []*Event) {
	if !sc.IsValid() {
		return
	}
	tp := traceparent(sc)
	ts := sc.TraceState().String()
	for _, e := range events {
		if e == nil || e.Context == nil {
			continue
		}
		e.SetExtension(ExtTraceParent, tp)
		if ts != "" {
			e.SetExtension(ExtTraceState, ts)
		} else {
			e.SetExtension(ExtTraceState, nil)
		}
	}
}

// traceparent formats a W3C traceparent header value.
func traceparent(sc trace.SpanContext) string {
	const hex = "0123456789abcdef"
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	for i, v := range tid {
		b[3+2*i], b[4+2*i] = hex[v>>4], hex[v&15]
	}
	b[35] = '-'
	for i, v := range sid {
		b[36+2*i], b[37+2*i] = hex[v>>4], hex[v&15]
	}
	b[52] = '-'
	f := sc.TraceFlags()
	b[53], b[54] = hex[f>>4], hex[f&15]
	return string(b[:])
}

// eventCarrier reads trace context from an event's extensions.
type eventCarrier struct{ e *Event }

func (c eventCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return ExtensionString(c.e, ExtTraceParent)
	case "tracestate":
		return ExtensionString(c.e, ExtTraceState)
	}
	return ""
}
func (c eventCarrier) Set(string, string) {}
func (c eventCarrier) Keys() []string     { return []string{"traceparent", "tracestate"} }

// noopSpan stands in when tracing is off.
var noopSpan trace.Span = noop.Span{}

func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// subTelemetry is one subscription's precomputed attribute sets, so counting
// an event does not allocate.
type subTelemetry struct {
	t *telemetry
	// option lists passed as "opts..." so that no call allocates a slice
	addBase, addOK, addFailed, addRetried, addDead []metric.AddOption
	addTransient, addFatal                         []metric.AddOption
	recBase, recOK, recFailed                      []metric.RecordOption
	spanName                                       string
	spanOpts                                       []trace.SpanStartOption
	destination                                    []attribute.KeyValue
}

func (t *telemetry) forSubscription(topic, subscription string) *subTelemetry {
	attrs := []attribute.KeyValue{t.system, attribute.String("messaging.destination.name", topic),
		attribute.String("messaging.consumer.group.name", subscription)}
	with := func(kv ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(append(append([]attribute.KeyValue(nil), attrs...), kv...)...))
	}
	base, ok, failed := with(), with(attribute.String("outcome", "ok")), with(attribute.String("outcome", "error"))
	return &subTelemetry{t: t,
		addBase:      []metric.AddOption{base},
		addOK:        []metric.AddOption{ok},
		addFailed:    []metric.AddOption{failed},
		addRetried:   []metric.AddOption{with(attribute.String("outcome", "retry"))},
		addDead:      []metric.AddOption{with(attribute.String("outcome", "dead_letter"))},
		addTransient: []metric.AddOption{with(attribute.Bool("fatal", false))},
		addFatal:     []metric.AddOption{with(attribute.Bool("fatal", true))},
		recBase:      []metric.RecordOption{base},
		recOK:        []metric.RecordOption{ok},
		recFailed:    []metric.RecordOption{failed},
		spanName:     "process " + subscription,
		spanOpts:     []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)},
		destination: append(attrs, attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.subscription.name", subscription)),
	}
}

// start begins the consumer span of one delivery, parented to the producer's
// span carried by the event, and counts the delivery.
func (st *subTelemetry) start(ctx context.Context, e *Event, attempt int, metrics bool) (context.Context, trace.Span) {
	t := st.t
	if metrics {
		t.delivered.Add(ctx, 1, st.addBase...)
		if tm := e.Time(); !tm.IsZero() {
			t.latency.Record(ctx, time.Since(tm).Seconds(), st.recBase...)
		}
	}
	if _, ok := extension(e, ExtTraceParent); ok {
		ctx = t.prop.Extract(ctx, eventCarrier{e})
	}
	tracer, on := t.tracerOn()
	if !on {
		return ctx, noopSpan
	}
	ctx, span := tracer.Start(ctx, st.spanName, st.spanOpts...)
	if span.IsRecording() {
		span.SetAttributes(st.destination...)
		span.SetAttributes(attribute.String("messaging.message.id", e.ID()),
			attribute.String("cloudevents.event_id", e.ID()),
			attribute.String("cloudevents.event_type", e.Type()),
			attribute.String("cloudevents.event_source", sourceOf(e)),
			attribute.Int("messaging.message.delivery_attempt", attempt))
	}
	return ctx, span
}

func (st *subTelemetry) handledOK(ctx context.Context, d time.Duration) {
	st.t.handled.Add(ctx, 1, st.addOK...)
	st.t.duration.Record(ctx, d.Seconds(), st.recOK...)
}

func (st *subTelemetry) handledErr(ctx context.Context, d time.Duration) {
	st.t.handled.Add(ctx, 1, st.addFailed...)
	st.t.duration.Record(ctx, d.Seconds(), st.recFailed...)
}

func (st *subTelemetry) retry(ctx context.Context, span trace.Span, attempt int, delay time.Duration, err error) {
	st.t.retried.Add(ctx, 1, st.addRetried...)
	if span.IsRecording() {
		span.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", attempt),
			attribute.String("delay", delay.String()), attribute.String("error", err.Error())))
	}
}

func (st *subTelemetry) deadLetter(ctx context.Context, span trace.Span, info driver.DeadLetterInfo) {
	st.t.deadLettered.Add(ctx, 1, st.addDead...)
	if span.IsRecording() {
		span.AddEvent("dead_letter", trace.WithAttributes(attribute.Int("attempts", info.Attempts),
			attribute.String("reason", driver.TruncateUTF8(info.Reason, 1024))))
	}
}

// receiveFailed counts a failed Receive call.
func (st *subTelemetry) receiveFailed(ctx context.Context, fatal bool) {
	if fatal {
		st.t.receiveFailures.Add(ctx, 1, st.addFatal...)
		return
	}
	st.t.receiveFailures.Add(ctx, 1, st.addTransient...)
}
