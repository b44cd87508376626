package kafka

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/cewire"
)

// Header names of the CloudEvents Kafka protocol binding (binary content
// mode): every context attribute and extension is a "ce_" header whose value
// is the attribute's string form in UTF-8, except datacontenttype, which is
// the "content-type" header; the data is the record value and the
// partitionkey extension is also the record key.
const (
	headerPrefix      = "ce_"
	headerSpecVersion = "ce_specversion"
	headerContentType = "content-type"

	// mediaTypeStructured marks a structured-mode record (the JSON event
	// format as value).
	mediaTypeStructured = "application/cloudevents"
)

// errNotCloudEvent is wrapped by decode errors for records that carry no
// CloudEvent at all.
var errNotCloudEvent = errors.New("not a CloudEvent")

// recordBlock is what EncodeRecord allocates for one record.
type recordBlock struct {
	rec     kgo.Record
	headers [inlineHeaders]kgo.RecordHeader
	values  [256]byte
}

const inlineHeaders = 12

// EncodeRecord maps an event onto a Kafka record for topic in binary content
// mode.
func EncodeRecord(topic string, e *driver.Event) (*kgo.Record, error) {
	ctx, ok := e.Context.(*event.EventContextV1) // AsV1 would copy it
	if !ok || ctx == nil {
		return nil, fmt.Errorf("kafka: event has no CloudEvents 1.0 context")
	}
	// The record, its headers and their values come in one allocation for
	// events with up to inlineHeaders headers and short attribute values (a
	// grown slice leaves the earlier ones valid).
	blk := new(recordBlock)
	hs := blk.headers[:0]
	buf := blk.values[:0]
	add := func(k string, v string) {
		start := len(buf)
		buf = append(buf, v...)
		hs = append(hs, kgo.RecordHeader{Key: k, Value: buf[start:len(buf):len(buf)]})
	}
	add(headerSpecVersion, event.CloudEventsVersionV1)
	add("ce_id", ctx.ID)
	add("ce_source", ctx.Source.String())
	add("ce_type", ctx.Type)
	if ctx.Subject != nil {
		add("ce_subject", *ctx.Subject)
	}
	if ctx.Time != nil {
		start := len(buf)
		buf = ctx.Time.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
		hs = append(hs, kgo.RecordHeader{Key: "ce_time", Value: buf[start:len(buf):len(buf)]})
	}
	if ctx.DataSchema != nil {
		add("ce_dataschema", ctx.DataSchema.String())
	}
	if ctx.DataContentType != nil {
		add(headerContentType, *ctx.DataContentType)
	}
	var key []byte
	for name, v := range ctx.Extensions {
		s, ok := v.(string)
		if !ok {
			var err error
			if s, err = types.Format(v); err != nil {
				return nil, fmt.Errorf("kafka: event %q: extension %q: %w", ctx.ID, name, err)
			}
		}
		add(headerPrefix+name, s)
		if name == crossbus.ExtPartitionKey && s != "" {
			key = hs[len(hs)-1].Value
		}
	}
	blk.rec = kgo.Record{Topic: topic, Key: key, Value: e.DataEncoded, Headers: hs}
	return &blk.rec, nil
}

// DecodeRecord reads the CloudEvent carried by a Kafka record's headers,
// key and value into e. Binary content mode (a ce_specversion header) and
// structured content mode (content-type application/cloudevents+json, the
// event as JSON value) are both read; header names are matched without
// regard to case, and the first of repeated headers wins. A record key with
// no ce_partitionkey header becomes the partitionkey extension, so records
// keyed by other producers keep their per-key order. The error names the
// header that is wrong. When e already holds a *EventContextV1 it is reused
// (decoding then allocates less); after an error e is undefined.
func DecodeRecord(key, value []byte, headers []kgo.RecordHeader, e *driver.Event) error {
	ctx, _ := e.Context.(*event.EventContextV1)
	if ctx == nil {
		ctx = new(event.EventContextV1)
	} else {
		*ctx = event.EventContextV1{}
	}
	var hasVersion, structured, hasKey bool
	var contentType string
	seen := 0 // bit set of the context attributes already read
	for _, h := range headers {
		k := h.Key
		if len(k) > len(headerPrefix) && strings.EqualFold(k[:len(headerPrefix)], headerPrefix) {
			if !utf8.Valid(h.Value) {
				return fmt.Errorf("kafka: header %q: value is not UTF-8", k)
			}
			name := strings.ToLower(k[len(headerPrefix):])
			if bit := attrBit(name); bit != 0 {
				if seen&bit != 0 {
					continue
				}
				seen |= bit
			} else if _, dup := ctx.Extensions[name]; dup {
				continue
			}
			var err error
			switch name {
			case "specversion":
				hasVersion = true
				if string(h.Value) != event.CloudEventsVersionV1 { // compared without a copy
					err = fmt.Errorf("specversion %q is not supported (want %q)", h.Value, event.CloudEventsVersionV1)
				}
			case "source":
				u, ok := sources.ParseBytes(h.Value)
				if !ok {
					err = fmt.Errorf("source %q is not a URI reference", h.Value)
				}
				ctx.Source = u
			case crossbus.ExtPartitionKey:
				hasKey = true
				err = setAttribute(ctx, name, string(h.Value))
			default:
				err = setAttribute(ctx, name, string(h.Value))
			}
			if err != nil {
				return fmt.Errorf("kafka: header %q: %w", k, err)
			}
			continue
		}
		if contentType == "" && strings.EqualFold(k, headerContentType) {
			if !utf8.Valid(h.Value) {
				return fmt.Errorf("kafka: header %q: value is not UTF-8", k)
			}
			contentType = string(h.Value)
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), mediaTypeStructured) {
				structured = true
			}
		}
	}
	if !hasVersion {
		if !structured {
			return fmt.Errorf("kafka: %w: no %s header and content-type %q is not %s+json", errNotCloudEvent, headerSpecVersion, contentType, mediaTypeStructured)
		}
		return decodeStructured(value, key, e)
	}
	if contentType != "" {
		ct := contentType
		ctx.DataContentType = &ct
	}
	if !hasKey && len(key) > 0 && utf8.Valid(key) {
		if ctx.Extensions == nil {
			ctx.Extensions = make(map[string]any, 1)
		}
		ctx.Extensions[crossbus.ExtPartitionKey] = string(key)
	}
	if err := checkRequired(ctx); err != nil {
		return err
	}
	e.Context = ctx
	e.DataEncoded = nil
	if len(value) > 0 {
		e.DataEncoded = value
	}
	e.DataBase64 = false
	e.FieldErrors = nil
	return nil
}

func attrBit(name string) int {
	switch name {
	case "specversion":
		return 1
	case "id":
		return 2
	case "source":
		return 4
	case "type":
		return 8
	case "subject":
		return 16
	case "time":
		return 32
	case "dataschema":
		return 64
	case "datacontenttype":
		return 128
	}
	return 0
}

func decodeStructured(value, key []byte, e *driver.Event) error {
	var ev event.Event
	if err := json.Unmarshal(value, &ev); err != nil {
		return fmt.Errorf("kafka: structured-mode value: %w", err)
	}
	if ev.SpecVersion() != event.CloudEventsVersionV1 {
		return fmt.Errorf("kafka: structured-mode value: specversion %q is not %q", ev.SpecVersion(), event.CloudEventsVersionV1)
	}
	ctx := ev.Context.AsV1()
	if err := checkRequired(ctx); err != nil {
		return err
	}
	if _, ok := ctx.Extensions[crossbus.ExtPartitionKey]; !ok && len(key) > 0 && utf8.Valid(key) {
		ev.SetExtension(crossbus.ExtPartitionKey, string(key))
	}
	*e = ev
	return nil
}

func checkRequired(ctx *event.EventContextV1) error {
	return cewire.CheckRequired(ctx, "kafka", "ce_")
}

// setAttribute sets one attribute read from the wire (name without prefix,
// lower case).
func setAttribute(ctx *event.EventContextV1, name, v string) error {
	return cewire.SetAttribute(ctx, name, v, sources)
}
