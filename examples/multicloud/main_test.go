package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMulticloud(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, config{}), out.String())
	s := out.String()
	t.Log("\n" + s)
	for _, want := range []string{
		"fulfilment: packing order o-1001 (3 items for ada)",
		"fulfilment: packing order o-1002 (1 item for grace)",
		"fulfilment: invoice o-1001/invoice.pdf attached, 3.0 MB application/pdf",
		"fetched from s3://invoices/claimcheck/sha256/",
		"analytics: counted order o-1001, 129.90 EUR",
		`dead letter on Pub/Sub (subscription analytics): o-1002 after 1 attempt(s): permanent: no exchange rate for currency "XTS"`,
		"bridge aws-azure forwarded 4 events, aws-gcp 3",
		"claim check: 1 object: s3://invoices/claimcheck/sha256/",
	} {
		assert.Contains(t, s, want)
	}
	assert.Equal(t, 1, strings.Count(s, "analytics: counted order o-1001"), "the duplicate is counted once")
	assert.Equal(t, 1, strings.Count(s, "fulfilment: packing order o-1001"), "and fulfilled once")

	// The trace: one tree, rooted at the checkout, through all three clouds.
	_, tree, ok := strings.Cut(s, "== one trace across AWS, Azure and Google\n")
	require.True(t, ok)
	require.Regexp(t, regexp.MustCompile(`^trace [0-9a-f]{32}, \d+ spans\ncheckout o-1001 `), tree)
	lines := strings.Split(strings.TrimSpace(tree), "\n")[1:]
	roots := 0
	for _, l := range lines {
		if !strings.HasPrefix(l, "├") && !strings.HasPrefix(l, "└") && !strings.HasPrefix(l, "│") && !strings.HasPrefix(l, " ") {
			roots++
		}
	}
	assert.Equal(t, 1, roots, "one root")
	count := func(re string) int { return len(regexp.MustCompile(re).FindAllString(tree, -1)) }
	assert.Equal(t, 4, count(`send orders \[aws_eventbridge\]`))
	assert.Equal(t, 4, count(`send orders \[servicebus\]`))
	assert.Equal(t, 3, count(`send orders \[gcp_pubsub\]`))
	assert.Equal(t, 1, count(`claimcheck put s3://invoices/`))
	assert.Equal(t, 2, count(`claimcheck get s3://invoices/`), "the bridge and fulfilment read it")
	assert.Equal(t, 2, count(`o-1001: duplicate, skipped by idempotency`), "on Azure and on Google")
	assert.Equal(t, 1, count(`process analytics \[gcp_pubsub\] o-1002: DEAD-LETTERED here`))
	assert.Equal(t, 1, count(`process fulfilment \[servicebus\] o-1002: handled`))
	// Nesting: Azure's consumer is under the bridge's send, under the AWS consumer.
	assert.Regexp(t, `process to-azure \[aws_eventbridge\] inv-1001: forwarded by the bridge.*\n.*claimcheck get.*\n.*send orders \[servicebus\] inv-1001.*\n.*process fulfilment \[servicebus\] inv-1001: handled`, tree)
}
