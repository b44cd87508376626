package eventgrid

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// UndecodableEvent is the placeholder (driver.NewUndecodableEvent) of an
// event that Event Grid delivered but that does not decode (see
// DecodeCloudEvent and DecodeEvent): its data is raw as it arrived, its id
// the raw event's "id" member (or a hash of raw when it has none), and its
// source the raw event's "source" (CloudEvents) or "topic" (Event Grid
// schema) member when that is a URI reference, else fallbackSource.
func UndecodableEvent(raw []byte, fallbackSource string) *driver.Event {
	var probe struct {
		ID     any `json:"id"`
		Source any `json:"source"`
		Topic  any `json:"topic"`
	}
	_ = json.Unmarshal(raw, &probe)
	id, _ := probe.ID.(string)
	if strings.TrimSpace(id) == "" {
		sum := sha256.Sum256(raw)
		id = "sha256-" + hex.EncodeToString(sum[:16])
	}
	source := fallbackSource
	for _, v := range []any{probe.Source, probe.Topic} {
		if s, ok := v.(string); ok && s != "" {
			if u, err := url.Parse(s); err == nil && u.String() != "" {
				source = s
				break
			}
		}
	}
	e := driver.NewUndecodableEvent(id, source, raw, nil)
	if crossbus.Validate(&e) != nil {
		e.SetSource(fallbackSource)
		e.FieldErrors = nil
	}
	return &e
}

// undecodable is a pushed delivery whose event did not decode
// (driver.Undecodable): the portable layer dead-letters it without
// running the handler.
type undecodable struct {
	*driver.PushDelivery
	err error
}

func (u undecodable) DecodeError() error { return u.err }

// PushDelivery returns the delivery to hand to an endpoint for a pushed
// event and, when decodeErr is not nil, marks it undecodable
// (driver.Undecodable) so that the portable layer dead-letters it; the
// *driver.PushDelivery reports the outcome either way.
func PushDelivery(e *driver.Event, attempt int, decodeErr error) (*driver.PushDelivery, driver.Delivery) {
	d := driver.NewPushDelivery(e, attempt)
	if decodeErr != nil {
		return d, undecodable{PushDelivery: d, err: decodeErr}
	}
	return d, d
}
