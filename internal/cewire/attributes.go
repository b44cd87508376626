package cewire

import (
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// CheckRequired reports a missing id, source or type, naming the header
// (prefix + attribute) it should have come in; what names the binding.
func CheckRequired(ctx *event.EventContextV1, what, prefix string) error {
	switch {
	case ctx.ID == "":
		return fmt.Errorf("%s: header %sid missing or empty", what, prefix)
	case ctx.Source.String() == "":
		return fmt.Errorf("%s: header %ssource missing or empty", what, prefix)
	case ctx.Type == "":
		return fmt.Errorf("%s: header %stype missing or empty", what, prefix)
	}
	return nil
}

// SetAttribute sets one attribute read from the wire (name without its
// prefix, lower case).
func SetAttribute(ctx *event.EventContextV1, name, v string, sources *SourceCache) error {
	switch name {
	case "specversion":
		if v != event.CloudEventsVersionV1 {
			return fmt.Errorf("specversion %q is not supported (want %q)", v, event.CloudEventsVersionV1)
		}
	case "id":
		ctx.ID = v
	case "source":
		u, ok := sources.Parse(v)
		if !ok {
			return fmt.Errorf("source %q is not a URI reference", v)
		}
		ctx.Source = u
	case "type":
		ctx.Type = v
	case "subject":
		s := v
		ctx.Subject = &s
	case "time":
		t, err := types.ParseTimestamp(v)
		if err != nil {
			return fmt.Errorf("time %q is not RFC 3339", v)
		}
		ctx.Time = t
	case "dataschema":
		u := types.ParseURI(v)
		if u == nil {
			return fmt.Errorf("dataschema %q is not a URI", v)
		}
		ctx.DataSchema = u
	case "datacontenttype":
		s := v
		ctx.DataContentType = &s
	default:
		if !ValidExtensionName(name) {
			return fmt.Errorf("extension name %q is not lower-case a-z and 0-9", name)
		}
		if ctx.Extensions == nil {
			ctx.Extensions = make(map[string]any, 4)
		}
		ctx.Extensions[name] = v
	}
	return nil
}

// IsContextAttribute reports whether name is one of the CloudEvents 1.0
// context attributes, which an extension may not be named after.
func IsContextAttribute(name string) bool {
	switch name {
	case "id", "source", "type", "specversion", "subject", "time", "datacontenttype", "dataschema":
		return true
	}
	return false
}
