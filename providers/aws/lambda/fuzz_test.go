package lambda_test

import (
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/crossbus/crossbus"
	cblambda "github.com/crossbus/crossbus/providers/aws/lambda"
)

func checkEvent(t *testing.T, e *crossbus.Event, payload []byte) {
	t.Helper()
	if err := crossbus.Validate(e); err != nil {
		t.Fatalf("invalid event (%v) from payload %q", err, payload)
	}
	if _, err := json.Marshal(e); err != nil {
		t.Fatalf("event does not encode (%v) from payload %q", err, payload)
	}
}

// FuzzSQSEventPayload decodes whole Lambda SQS payloads: every record of any
// payload Lambda could hand over becomes a valid event (a valid placeholder
// for records that claim to be CloudEvents and are not).
func FuzzSQSEventPayload(f *testing.F) {
	f.Add([]byte(`{"Records":[{"messageId":"1","receiptHandle":"h","body":"{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"/s\",\"type\":\"t\"}",
		"attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1764417600000"},"messageAttributes":{"content-type":{"stringValue":"application/cloudevents+json","dataType":"String"}},
		"eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:1:q","awsRegion":"us-east-1"}]}`))
	f.Add([]byte(`{"Records":[{"messageId":"","body":"x","messageAttributes":{"ce-specversion":{"stringValue":"1.0","dataType":"String"},"ce-id":{"stringValue":"","dataType":"String"}}}]}`))
	f.Add([]byte(`{"Records":[{"messageId":"2","body":"{\"Type\":\"Notification\",\"TopicArn\":\"t\",\"Message\":\"m\"}"}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var ev events.SQSEvent
		if json.Unmarshal(payload, &ev) != nil {
			return
		}
		for _, r := range ev.Records {
			e, _ := cblambda.DecodeSQSRecord(r) // a placeholder when it fails
			checkEvent(t, e, payload)
		}
	})
}

// FuzzSNSEventPayload decodes whole Lambda SNS payloads.
func FuzzSNSEventPayload(f *testing.F) {
	f.Add([]byte(`{"Records":[{"EventSource":"aws:sns","Sns":{"MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"hi",
		"Timestamp":"2026-11-29T12:00:00.000Z","MessageAttributes":{"ce-specversion":{"Type":"String","Value":"1.0"},"b":{"Type":"Binary","Value":"AAE="}}}}]}`))
	f.Add([]byte(`{"Records":[{"Sns":{"Message":"{\"specversion\":\"1.0\"}","MessageAttributes":{"x":5}}}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var ev events.SNSEvent
		if json.Unmarshal(payload, &ev) != nil {
			return
		}
		for _, r := range ev.Records {
			e, _ := cblambda.DecodeSNSRecord(r) // a placeholder when it fails
			checkEvent(t, e, payload)
		}
	})
}
