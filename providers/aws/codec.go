package aws

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// Message attribute names of the SQS and SNS mapping. SQS allows 10 message
// attributes named with letters, digits, '_', '-' and '.', so the names follow
// the CloudEvents HTTP binding's "ce-" headers, which fit those rules.
const (
	// AttrContentType carries datacontenttype in binary mode and
	// "application/cloudevents+json; charset=UTF-8" in structured mode.
	AttrContentType = "content-type"
	// AttrPrefix prefixes every other context attribute and extension in
	// binary mode ("ce-id", "ce-source", "ce-partitionkey", ...).
	AttrPrefix = "ce-"
	// StructuredContentType marks a body that is a whole CloudEvent in JSON.
	StructuredContentType = "application/cloudevents+json; charset=UTF-8"

	maxAttributes = 10
)

// Mode is how events are put in SQS messages and SNS notifications.
type Mode int

const (
	// Structured (the default) sends the whole event as a JSON object in
	// the body, plus a content-type attribute: every attribute and
	// extension keeps its JSON type, and the body reads the same after
	// SNS non-raw delivery, Lambda or any other consumer.
	Structured Mode = iota
	// Binary sends the data as the body and the context attributes and
	// extensions as "ce-" message attributes when that fits SQS's rules
	// (at most 10 attributes, non-empty values, and data that is text SQS
	// accepts); other events are sent structured. SNS subscription filter
	// policies can then match on attributes such as ce-type.
	Binary
)

// wireMessage is an event encoded for SQS or SNS.
type wireMessage struct {
	body  string
	attrs map[string]string // all of DataType "String"
}

// size is the message size as SQS and SNS count it: the body plus each
// attribute's name, data type and value.
func (m *wireMessage) size() int {
	n := len(m.body)
	for k, v := range m.attrs {
		n += len(k) + len("String") + len(v)
	}
	return n
}

// encodeMessage maps an event onto an SQS message or SNS notification.
func encodeMessage(e *driver.Event, mode Mode) (wireMessage, error) {
	if mode == Binary {
		if m, ok := encodeBinary(e); ok {
			return m, nil
		}
	}
	b, err := marshalEvent(e)
	if err != nil {
		return wireMessage{}, err
	}
	return wireMessage{body: string(b), attrs: structuredAttrs}, nil
}

// structuredAttrs are the attributes of every structured message (shared,
// never modified).
var structuredAttrs = map[string]string{AttrContentType: StructuredContentType}

// marshalEvent is the event's structured JSON form. A JSON media type
// spelled with capitals is written in lower case (media types ignore case),
// because the CloudEvents SDK reads JSON data back only under a lower-case
// JSON media type.
func marshalEvent(e *driver.Event) ([]byte, error) {
	if ct := e.DataContentType(); jsonType(ct) {
		mt, rest, _ := strings.Cut(ct, ";")
		if low := strings.ToLower(mt); low != mt {
			c := e.Clone()
			if rest != "" {
				low += ";" + rest
			}
			c.SetDataContentType(low)
			e = &c
		}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %q as JSON: %w", e.ID(), err)
	}
	return b, nil
}

// encodeBinary returns the binary-mode message, or false when the event does
// not fit SQS's attribute and body rules.
func encodeBinary(e *driver.Event) (wireMessage, bool) {
	data := e.Data()
	if len(data) == 0 || !validSQSText(string(data)) {
		return wireMessage{}, false
	}
	ctx := e.Context.AsV1()
	n := 4 + len(ctx.Extensions)
	if ctx.Time != nil {
		n++
	}
	if ctx.Subject != nil {
		n++
	}
	if ctx.DataSchema != nil {
		n++
	}
	if ctx.DataContentType != nil {
		n++
	}
	if n > maxAttributes {
		return wireMessage{}, false
	}
	attrs := make(map[string]string, n)
	attrs[AttrPrefix+"specversion"] = event.CloudEventsVersionV1
	attrs[AttrPrefix+"id"] = ctx.ID
	attrs[AttrPrefix+"source"] = ctx.Source.String()
	attrs[AttrPrefix+"type"] = ctx.Type
	if ctx.Time != nil {
		attrs[AttrPrefix+"time"] = ctx.Time.Time.UTC().Format(time.RFC3339Nano)
	}
	if ctx.Subject != nil {
		attrs[AttrPrefix+"subject"] = *ctx.Subject
	}
	if ctx.DataSchema != nil {
		attrs[AttrPrefix+"dataschema"] = ctx.DataSchema.String()
	}
	if ctx.DataContentType != nil {
		attrs[AttrContentType] = *ctx.DataContentType
	}
	for k, v := range ctx.Extensions {
		s, err := types.Format(v)
		if err != nil {
			return wireMessage{}, false
		}
		attrs[AttrPrefix+k] = s
	}
	for _, v := range attrs {
		if v == "" || !validSQSText(v) {
			return wireMessage{}, false
		}
	}
	return wireMessage{body: string(data), attrs: attrs}, true
}

// validSQSText reports whether s holds only characters SQS accepts in a
// body or attribute value: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
// #x10000-#x10FFFF, in valid UTF-8.
func validSQSText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 {
			continue
		}
		return false
	}
	return true
}

// dedupID is the MessageDeduplicationId of an event on FIFO queues and
// topics: the hex SHA-256 of source and id, the CloudEvents uniqueness key
// (ids alone are unique only per source, and may hold characters or lengths
// SQS refuses). An event re-published on purpose by an operations tool
// (carrying the redriven or replayed extension of package ops) adds those
// values, so a redrive or replay inside the de-duplication interval is not
// dropped as a duplicate.
func dedupID(e *driver.Event) string {
	h := sha256.New()
	h.Write([]byte(e.Source()))
	h.Write([]byte{0})
	h.Write([]byte(e.ID()))
	for _, name := range [...]string{"redriven", "replayed"} {
		if v := crossbus.ExtensionString(e, name); v != "" {
			h.Write([]byte("\x00" + name + "=" + v))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// groupID is the MessageGroupId of an event on FIFO queues and topics: its
// partition key, so events of one key keep their order; an event without a
// key gets a group of its own (its dedupID), since it has no order to keep.
// Keys longer than 128 characters or with characters SQS refuses are
// hashed.
func groupID(e *driver.Event) string {
	k := crossbus.PartitionKey(e)
	if k == "" {
		return dedupID(e)
	}
	if len(k) <= 128 && fifoTokenOK(k) {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "sha256-" + hex.EncodeToString(sum[:])
}

func fifoTokenOK(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func isFIFO(nameOrURL string) bool { return strings.HasSuffix(nameOrURL, ".fifo") }
