package cewire

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
)

// MarshalStructured renders e in the JSON event format (structured content
// mode). Data that is neither valid JSON (for a JSON content type or none)
// nor UTF-8 text (for any other) is written as data_base64, so that no byte
// of it is lost; e is not modified.
func MarshalStructured(e *event.Event) ([]byte, error) {
	c := *e
	if len(c.DataEncoded) > 0 && !c.DataBase64 {
		ct := c.DataContentType()
		if IsJSONMediaType(ct) || ct == "" {
			c.DataBase64 = !json.Valid(c.DataEncoded)
		} else {
			c.DataBase64 = !utf8.Valid(c.DataEncoded)
		}
	}
	return json.Marshal(&c)
}

// MediaType returns the lower-case media type of a content type, without
// parameters.
func MediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// IsJSONMediaType reports whether ct is a JSON media type
// (application/json, text/json or a +json suffix).
func IsJSONMediaType(ct string) bool {
	mt := MediaType(ct)
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}
