package aws

import "github.com/crossbus/crossbus"

// EncodeMessageForTest exposes the SQS/SNS encoding to the external tests.
func EncodeMessageForTest(e *crossbus.Event, mode Mode) (string, map[string]Attribute, error) {
	m, err := encodeMessage(e, mode)
	if err != nil {
		return "", nil, err
	}
	attrs := map[string]Attribute{}
	for k, v := range m.attrs {
		attrs[k] = Attribute{DataType: "String", StringValue: v}
	}
	return m.body, attrs, nil
}
