package crossbus

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/crossbus/crossbus/internal/cewire"
)

// Event is a CloudEvent: the CloudEvents SDK's event type, so events built with
// the SDK and its protocol bindings are crossbus events and the reverse.
type Event = event.Event

// Extension attribute names owned by crossbus. CloudEvents extension names are
// lower-case letters and digits only, so every name here is valid on every wire.
const (
	// ExtPartitionKey is the ordering key (CloudEvents "partitioning" extension).
	ExtPartitionKey = "partitionkey"
	// ExtSequence is a per-key sequence number, a zero-padded string so that
	// lexical order is numeric order (CloudEvents "sequence" extension).
	ExtSequence = "sequence"
	// ExtTraceParent and ExtTraceState carry W3C trace context
	// (CloudEvents "distributed tracing" extension).
	ExtTraceParent = "traceparent"
	ExtTraceState  = "tracestate"

	// ExtDeadLetterReason says why an event was dead-lettered.
	ExtDeadLetterReason = "deadletterreason"
	// ExtDeadLetterAttempts is how many handling attempts were made.
	ExtDeadLetterAttempts = "deadletterattempts"
	// ExtDeadLetterTopic is the topic the event was originally published to.
	ExtDeadLetterTopic = "deadlettertopic"
	// ExtDeadLetterSubscription is the subscription that gave up on the event.
	ExtDeadLetterSubscription = "deadlettersubscription"
	// ExtDeadLetterTime is when the event was dead-lettered (RFC 3339).
	ExtDeadLetterTime = "deadlettertime"
)

// NewEvent returns a CloudEvents 1.0 event with a fresh, time-sortable id
// (UUIDv7), the current time, and the given type and source.
func NewEvent(eventType, source string) Event {
	now := time.Now()
	b := &newContext{ts: types.Timestamp{Time: now.UTC()}}
	b.ctx = event.EventContextV1{ID: b.newID(now), Type: eventType, Time: &b.ts}
	if !setPathSource(&b.ctx.Source, source) {
		b.ctx.SetSource(source) // parses it; a bad one is reported by Validate
	}
	return Event{Context: &b.ctx}
}

// newContext is a new event's context, timestamp and id text, allocated
// together.
type newContext struct {
	ctx event.EventContextV1
	ts  types.Timestamp
	id  [36]byte
}

// newID writes a UUIDv7 for t into b.id and returns it as a string that
// shares b.id's memory: b.id is never written again, so the string stays
// immutable, and it keeps b alive like any pointer into it.
func (b *newContext) newID(t time.Time) string {
	putV7(&b.id, t)
	return unsafe.String(&b.id[0], len(b.id))
}

// setPathSource sets a source that is a plain path ("/shop/orders") without
// parsing it, and reports whether it was one (see plainPath: a path that
// prints as it is, so Source returns it unchanged).
func setPathSource(u *types.URIRef, s string) bool {
	if !plainPath(s) {
		return false
	}
	u.Path = s
	return true
}

// putV7 writes the text of a UUIDv7 (RFC 9562) for t into b: 48 bits of
// Unix milliseconds, 12 bits of the sub-millisecond fraction (so ids of one
// process sort by time), and 62 random bits.
func putV7(b *[36]byte, t time.Time) {
	// The random bits come from the runtime's ChaCha8 generator, seeded
	// from the operating system's entropy for each thread: ids must be
	// unique and unpredictable enough not to collide, not secret, and
	// reading crypto/rand for each event costs more than the rest of
	// NewEvent together.
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], mrand.Uint64())
	binary.LittleEndian.PutUint64(u[8:], mrand.Uint64())
	ms := uint64(t.UnixMilli())
	frac := uint64(t.Nanosecond()%1_000_000) * 4096 / 1_000_000
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(frac>>8)
	u[7] = byte(frac)
	u[8] = u[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	j := 0
	for i, v := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[v>>4], hex[v&15]
		j += 2
	}
}

// SetData encodes v as the event's data. A []byte is stored as is with
// content type application/octet-stream unless the event already has a content
// type; a string is stored as text/plain in the same way; anything else is
// encoded as JSON with content type application/json.
func SetData[T any](e *Event, v T) error {
	switch d := any(v).(type) {
	case []byte:
		ct := e.DataContentType()
		if ct == "" {
			ct = "application/octet-stream"
		}
		e.SetDataContentType(ct)
		e.DataEncoded = d
		e.DataBase64 = !isTextual(ct)
		return nil
	case string:
		ct := e.DataContentType()
		if ct == "" {
			ct = "text/plain"
		}
		e.SetDataContentType(ct)
		e.DataEncoded = []byte(d)
		e.DataBase64 = false
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return errorf("encode data of event %q as JSON: %w", e.ID(), err)
	}
	e.SetDataContentType(event.ApplicationJSON)
	e.DataEncoded = b
	e.DataBase64 = false
	return nil
}

// DataAs decodes the event's data into a T. JSON content types (and events with
// no content type) are decoded with encoding/json; T of []byte or string
// receives the raw data. A failure is a *DataError, which handlers treat as
// permanent: the same bytes will not decode on a retry.
func DataAs[T any](e *Event) (T, error) {
	var v T
	switch p := any(&v).(type) {
	case *[]byte:
		*p = e.Data()
		return v, nil
	case *string:
		*p = string(e.Data())
		return v, nil
	}
	ct := e.DataContentType()
	if ct != "" && !isJSON(ct) {
		return v, &DataError{EventID: e.ID(), ContentType: ct, Err: fmt.Errorf("cannot decode %s into %T", ct, v)}
	}
	if len(e.Data()) == 0 {
		return v, &DataError{EventID: e.ID(), ContentType: ct, Err: errors.New("event has no data")}
	}
	if err := json.Unmarshal(e.Data(), &v); err != nil {
		return v, &DataError{EventID: e.ID(), ContentType: ct, Err: err}
	}
	return v, nil
}

// DataError reports data that does not decode into the type a handler asked
// for. It matches ErrInvalidData with errors.Is.
type DataError struct {
	EventID     string
	ContentType string
	Err         error
}

func (e *DataError) Error() string {
	ct := e.ContentType
	if ct == "" {
		ct = "no content type"
	}
	return fmt.Sprintf("crossbus: data of event %q (%s) is invalid: %v", e.EventID, ct, e.Err)
}

// Unwrap returns the decoding error.
func (e *DataError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalidData.
func (e *DataError) Is(target error) bool { return target == ErrInvalidData }

func isJSON(ct string) bool {
	mt := ct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

func isTextual(ct string) bool {
	return isJSON(ct) || strings.HasPrefix(strings.ToLower(ct), "text/") || strings.Contains(strings.ToLower(ct), "xml")
}

// FieldError names one invalid attribute of an event.
type FieldError struct {
	Field   string // attribute name, e.g. "source" or "extension partitionkey"
	Problem string
}

// ValidationError lists every problem found in one event. It matches
// ErrInvalidEvent with errors.Is.
type ValidationError struct {
	EventID string
	Fields  []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("crossbus: invalid event")
	if e.EventID != "" {
		b.WriteString(" ")
		b.WriteString(strconv.Quote(e.EventID))
	}
	b.WriteString(": ")
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(": ")
		b.WriteString(f.Problem)
	}
	return b.String()
}

// Is reports whether target is ErrInvalidEvent.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidEvent }

// Validate checks an event against CloudEvents 1.0: id, source, type and
// specversion present; optional attributes well formed; extension names of
// lower-case letters and digits and not longer than 20 characters is only a
// recommendation, so length is not enforced. It returns a *ValidationError that
// names every problem, or nil. It does not allocate for a valid event.
func Validate(e *Event) error {
	var fields []FieldError
	add := func(field, problem string) { fields = append(fields, FieldError{Field: field, Problem: problem}) }
	ctx, ok := e.Context.(*event.EventContextV1)
	if !ok || ctx == nil {
		if e.Context == nil {
			add("specversion", "missing (event has no context)")
			return &ValidationError{Fields: fields}
		}
		add("specversion", fmt.Sprintf("must be %q, got %q", event.CloudEventsVersionV1, e.SpecVersion()))
		return &ValidationError{EventID: e.ID(), Fields: fields}
	}
	if strings.TrimSpace(ctx.ID) == "" {
		add("id", "missing")
	}
	if ctx.Source.URL == (url.URL{}) {
		add("source", "missing")
	}
	if strings.TrimSpace(ctx.Type) == "" {
		add("type", "missing")
	}
	if ctx.DataContentType != nil {
		if !isMediaType(*ctx.DataContentType) {
			add("datacontenttype", fmt.Sprintf("%q is not a media type (RFC 2046)", *ctx.DataContentType))
		}
	}
	if ctx.DataSchema != nil && !ctx.DataSchema.Validate() {
		add("dataschema", fmt.Sprintf("%q is not an absolute URI", ctx.DataSchema.String()))
	}
	if ctx.Subject != nil && strings.TrimSpace(*ctx.Subject) == "" {
		add("subject", "present but empty")
	}
	for name, v := range ctx.Extensions {
		if p := extensionNameProblem(name); p != "" {
			add("extension "+strconv.Quote(name), p)
		}
		if p := extensionValueProblem(v); p != "" {
			add("extension "+strconv.Quote(name), p)
		}
	}
	for name := range e.FieldErrors {
		add(name, e.FieldErrors[name].Error())
	}
	if fields == nil {
		return nil
	}
	return &ValidationError{EventID: ctx.ID, Fields: fields}
}

// isMediaType checks the RFC 2045/2046 shape "type/subtype" with optional
// parameters, without allocating (it runs for every published event).
func isMediaType(v string) bool {
	switch v { // the usual ones, without parsing
	case "application/json", "application/octet-stream", "text/plain", "application/cloudevents+json", "application/xml", "text/xml":
		return true
	}
	mt, params, _ := strings.Cut(v, ";")
	typ, sub, ok := strings.Cut(strings.TrimSpace(mt), "/")
	if !ok || !isToken(typ) || !isToken(sub) {
		return false
	}
	if params == "" {
		return true
	}
	// Parameters are checked by the standard parser (rare on the hot path).
	_, _, err := mime.ParseMediaType(v)
	return err == nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c >= 0x7f:
			return false
		case c == '(' || c == ')' || c == '<' || c == '>' || c == '@' || c == ',' || c == ';' || c == ':' ||
			c == '\\' || c == '"' || c == '/' || c == '[' || c == ']' || c == '?' || c == '=':
			return false
		}
	}
	return true
}

func extensionNameProblem(name string) string {
	if name == "" {
		return "empty extension name"
	}
	if i := cewire.InvalidExtensionChar(name); i >= 0 {
		return fmt.Sprintf("extension names are lower-case a-z and 0-9 only; %q at position %d is not", name[i], i)
	}
	if cewire.IsContextAttribute(name) || !cewire.ValidExtensionName(name) { // data (data_base64 has a '_')
		return "is a context attribute, not an extension"
	}
	return ""
}

// extensionValueProblem reports an extension value outside the CloudEvents
// type system (Boolean, Integer, String, Binary, URI, URI-reference,
// Timestamp). Values the CloudEvents SDK converts (other integer types within
// the Integer range, time.Time, *url.URL) are accepted.
func extensionValueProblem(v any) string {
	switch v.(type) {
	case string, int32, bool, []byte, types.URI, types.URIRef, types.Timestamp:
		return ""
	}
	if _, err := types.Validate(v); err != nil {
		return fmt.Sprintf("value of type %T is not a CloudEvents type (Boolean, Integer within 32 bits, String, Binary, URI, URI-reference, Timestamp)", v)
	}
	return ""
}

// PartitionKey returns the event's ordering key (the partitionkey extension),
// or "" when it has none.
func PartitionKey(e *Event) string {
	ctx, ok := e.Context.(*event.EventContextV1)
	if !ok || ctx == nil || ctx.Extensions == nil {
		return ""
	}
	s, _ := ctx.Extensions[ExtPartitionKey].(string)
	return s
}

// SetPartitionKey sets the event's ordering key.
func SetPartitionKey(e *Event, key string) {
	e.SetExtension(ExtPartitionKey, key)
}

// extension returns an extension's value without copying the extension map
// (Event.Extensions returns a copy).
func extension(e *Event, name string) (any, bool) {
	ctx, ok := e.Context.(*event.EventContextV1)
	if !ok || ctx == nil {
		if e.Context == nil {
			return nil, false
		}
		v, ok := e.Extensions()[name]
		return v, ok
	}
	v, ok := ctx.Extensions[name]
	return v, ok
}

// ExtensionString returns an extension's value as a string ("" when absent).
func ExtensionString(e *Event, name string) string {
	v, ok := extension(e, name)
	if !ok {
		return ""
	}
	s, err := types.ToString(v)
	if err != nil {
		f, _ := types.Format(v)
		return f
	}
	return s
}

// sourceOf returns e.Source() without building the string when the source
// is a plain path (as most are), which the SDK's URIRef.String allocates
// for each call.
func sourceOf(e *Event) string {
	if v1, ok := e.Context.(*event.EventContextV1); ok && v1 != nil {
		u := &v1.Source.URL
		if u.Scheme == "" && u.Opaque == "" && u.User == nil && u.Host == "" && u.RawPath == "" &&
			!u.ForceQuery && u.RawQuery == "" && u.Fragment == "" && u.RawFragment == "" && !u.OmitHost &&
			plainPath(u.Path) {
			return u.Path
		}
	}
	return e.Source()
}

// plainPath reports whether p is an absolute path that a URL prints as it
// is: no "//" start and only characters that need no escaping in a path.
func plainPath(p string) bool {
	if p == "" || p[0] != '/' || len(p) > 1 && p[1] == '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '/', c == '-', c == '.', c == '_', c == '~', c == '$', c == '&', c == '+', c == ',', c == ';', c == '=', c == '@':
		default:
			return false
		}
	}
	return true
}
