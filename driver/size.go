package driver

import (
	"net/url"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// EncodedSize is the size of an event as binary-mode protocol bindings count
// it (HTTP headers, Pub/Sub and AMQP properties): the data's bytes plus each
// attribute's name and value as text. Providers compare it with their limit
// (Capabilities.MaxEventBytes) before anything is sent.
func EncodedSize(e *Event) int {
	n := len(e.DataEncoded)
	ctx, ok := e.Context.(*event.EventContextV1)
	if !ok || ctx == nil {
		return n
	}
	n += len("id") + len(ctx.ID) + len("source") + uriRefLen(ctx.Source) + len("type") + len(ctx.Type) + len("specversion") + 3
	if ctx.Subject != nil {
		n += len("subject") + len(*ctx.Subject)
	}
	if ctx.DataContentType != nil {
		n += len("datacontenttype") + len(*ctx.DataContentType)
	}
	if ctx.DataSchema != nil {
		n += len("dataschema") + len(ctx.DataSchema.String())
	}
	if ctx.Time != nil {
		n += len("time") + len(time.RFC3339Nano)
	}
	for k, v := range ctx.Extensions {
		n += len(k) + attrValueLen(v)
	}
	return n
}

// uriRefLen is the length of a URI reference's text form, computed without
// building the string (this runs for every published event).
func uriRefLen(u types.URIRef) int {
	n := len(u.Opaque) + len(u.Host) + len(u.Path) + len(u.RawQuery) + len(u.Fragment)
	if u.Scheme != "" {
		n += len(u.Scheme) + 1
		if u.Host != "" {
			n += 2
		}
	}
	if u.RawQuery != "" {
		n++
	}
	if u.Fragment != "" {
		n++
	}
	if u.User != nil {
		n += len(u.User.String()) + 1
	}
	return n
}

func attrValueLen(v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case []byte:
		return (len(x) + 2) / 3 * 4
	case int32:
		return len(strconv.FormatInt(int64(x), 10))
	case bool:
		return 5
	case types.URI:
		return len(x.String())
	case types.URIRef:
		return len(x.String())
	case *url.URL:
		return len(x.String())
	case types.Timestamp, time.Time:
		return len(time.RFC3339Nano)
	default:
		s, err := types.Format(v)
		if err != nil {
			return 0
		}
		return len(s)
	}
}
