package cewire

import "strings"

// The AMQP binding's application-property prefixes: "cloudEvents_" (what
// Service Bus and Azure Functions write) and "cloudEvents:" (what the
// CloudEvents Go SDK writes).
const (
	AMQPPrefix      = "cloudEvents_"
	AMQPPrefixColon = "cloudEvents:"
)

// AMQPAttributeName returns the attribute an application property carries
// in binary mode: its name without either prefix (matched ignoring case),
// in lower case. ok is false for any other property.
func AMQPAttributeName(property string) (name string, ok bool) {
	const stem = len("cloudEvents")
	if len(property) <= len(AMQPPrefix) || !strings.EqualFold(property[:stem], "cloudEvents") {
		return "", false
	}
	if sep := property[stem]; sep != '_' && sep != ':' {
		return "", false
	}
	return strings.ToLower(property[len(AMQPPrefix):]), true
}
