package sbtest

import (
	"testing"

	"github.com/Azure/go-amqp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSQLFilterSemantics(t *testing.T) {
	subject, ct := "orders/7", "application/json"
	m := &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: "m-1", Subject: &subject, ContentType: &ct},
		ApplicationProperties: map[string]any{
			"cloudEvents_type": "order.placed", "cloudEvents_source": "/shop/eu", "Tenant": "acme",
			"priority": int64(7), "ratio": 0.5, "vip": true, "pct": "50%", "empty": nil,
		},
	}
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{"1=1", true},
		{"1=0", false},
		{"cloudEvents_type = 'order.placed'", true},
		{"cloudEvents_type = 'Order.Placed'", false}, // ordinal
		{"CLOUDEVENTS_TYPE = 'order.placed'", true},  // names ignore case
		{"user.tenant = 'acme'", true},
		{"[cloudEvents_type] = 'order.placed'", true},
		{"\"cloudEvents_type\" = 'order.placed'", true},
		{"cloudEvents_type <> 'order.placed'", false},
		{"cloudEvents_type != 'x'", true},
		{"cloudEvents_type IN ('a', 'order.placed')", true},
		{"cloudEvents_type NOT IN ('a', 'order.placed')", false},
		{"cloudEvents_source LIKE '/shop/%'", true},
		{"cloudEvents_source LIKE '/shop/_u'", true},
		{"cloudEvents_source LIKE '/SHOP/%'", false},
		{"cloudEvents_source NOT LIKE '%/eu'", false},
		{"pct LIKE '50!%' ESCAPE '!'", true},
		{"pct LIKE '5!%' ESCAPE '!'", false},
		{"cloudEvents_type LIKE 'order!_placed' ESCAPE '!'", false},
		{"EXISTS(cloudEvents_type)", true},
		{"EXISTS(missing)", false},
		{"NOT EXISTS(missing)", true},
		{"EXISTS(empty)", true},
		{"empty IS NULL", true},
		{"missing IS NULL", true},
		{"tenant IS NOT NULL", true},
		{"priority > 5 AND priority <= 7", true},
		{"priority = 7.0", true},
		{"priority + 1 = 8", true},
		{"ratio * 2 = 1", true},
		{"-priority < 0", true},
		{"vip = TRUE", true},
		{"sys.Label = 'orders/7'", true},
		{"sys.label LIKE 'orders/%'", true},
		{"sys.MessageId = 'm-1'", true},
		{"sys.ContentType = 'application/json'", true},
		{"sys.To IS NULL", true},
		{"EXISTS(sys.To)", false},
		{"(cloudEvents_type = 'x' OR tenant = 'acme') AND NOT (priority < 3)", true},
		// A missing property is unknown: neither it nor its negation holds.
		{"missing = 'x'", false},
		{"NOT (missing = 'x')", false},
		{"missing <> 'x'", false},
		{"missing NOT IN ('x')", false},
		{"missing NOT LIKE 'x%'", false},
		// Unknown AND false is false; unknown OR true is true.
		{"NOT (missing = 'x' AND 1=0)", true},
		{"missing = 'x' OR 1=1", true},
		{"NOT (missing = 'x' OR 1=0)", false},
		// Unrelated types do not compare.
		{"priority = '7'", false},
		{"NOT (priority = '7')", false},
	} {
		f, err := CompileSQLFilter(tc.expr)
		require.NoError(t, err, tc.expr)
		assert.Equal(t, tc.want, f.Match(m), tc.expr)
	}
}

func TestSQLFilterRefusesWhatServiceBusRefuses(t *testing.T) {
	for _, expr := range []string{
		"", "cloudEvents_type", "cloudEvents_type = ", "a = 'unterminated", "a LIKE", "a IN ()", "a IN ('x'",
		"sys.NoSuchProperty = 'x'", "other.a = 1", "a = 1 AND", "(a = 1", "1", "'x'", "a = 1 b = 2", "NOT 1",
		"a = @p", "newid() = 'x'", "EXISTS('x')", "a # 1", "a = 1 AND 2",
	} {
		_, err := CompileSQLFilter(expr)
		assert.ErrorIs(t, err, ErrInvalidFilter, "%q", expr)
	}
}

func TestLikeMatch(t *testing.T) {
	for _, tc := range []struct {
		s, pat string
		want   bool
	}{
		{"", "", true}, {"", "%", true}, {"a", "", false}, {"abc", "a%c", true}, {"abc", "a%%c", true},
		{"abc", "%b%", true}, {"abc", "_b_", true}, {"abc", "__", false}, {"a%c", "a!%c", true}, {"abc", "a!%c", false},
		{"ab!", "ab!!", true}, {"ünï", "_n_", true},
	} {
		assert.Equal(t, tc.want, likeMatch([]rune(tc.s), []rune(tc.pat), '!'), "%q LIKE %q", tc.s, tc.pat)
	}
}
