package functions

import (
	"testing"

	"github.com/crossbus/crossbus"
)

// FuzzDecode feeds invocation bodies to both trigger kinds and both
// cardinalities. Whatever decodes must be valid CloudEvents with a positive
// attempt.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{"Data":{"m":"\"{\\\"a\\\":1}\""},"Metadata":{"DeliveryCount":"2","ApplicationProperties":{"cloudEvents_specversion":"1.0","cloudEvents_id":"a","cloudEvents_source":"/s","cloudEvents_type":"t","cloudEvents_n":7}}}`,
		`{"Data":{"m":"hello"},"Metadata":{"MessageId":"\"m-1\"","ContentType":"text/plain","Subject":"s"}}`,
		`{"Data":{"m":{"specversion":"1.0","id":"a","source":"/s","type":"t"}},"Metadata":{"ContentType":"application/cloudevents+json"}}`,
		`{"Data":{"m":["x","y"]},"Metadata":{"MessageIdArray":["1","2"],"DeliveryCountArray":[1,2],"UserPropertiesArray":[{},{"cloudEvents:id":"z"}]}}`,
		`{"Data":{"m":{"id":"e","topic":"/t","eventType":"x","eventTime":"2026-11-29T10:00:00Z","data":{}}},"Metadata":{"RetryContext":{"RetryCount":1}}}`,
		`{"Data":{"m":"AAEC"},"Metadata":{"MessageId":"b"}}`,
		`{"Data":{},"Metadata":null}`, `null`, `[]`,
	}
	for _, s := range seeds {
		for mode := range 4 {
			f.Add(uint8(mode), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, mode uint8, body []byte) {
		fn := &Function{Name: "F", Binding: "m", Trigger: ServiceBus, Entity: "orders"}
		switch mode % 4 {
		case 1:
			fn.Many = true
		case 2:
			fn.Trigger = EventGrid
		case 3:
			fn.DataType = "binary"
		}
		ins, err := Decode(fn, body)
		if err != nil {
			return
		}
		for _, in := range ins {
			if in.Attempt < 1 {
				t.Fatalf("attempt %d", in.Attempt)
			}
			if err := crossbus.Validate(in.Event); err != nil {
				t.Fatalf("decoded an invalid event: %v", err)
			}
		}
	})
}
