package eventpattern

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type translateCase struct {
	name    string
	pattern string
	want    string // "" with exact false means ErrNotTranslatable
	exact   bool
}

func runTranslateCases(t *testing.T, fn func(*Pattern) (string, bool, error), cases []translateCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, exact, err := fn(MustCompile(tc.pattern))
			if tc.want == "" {
				assert.ErrorIs(t, err, ErrNotTranslatable)
				assert.Empty(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.exact, exact, "exact")
		})
	}
}

func TestToEventBridge(t *testing.T) {
	cases := []struct {
		name, pattern, want string
	}{
		{"type, source and data", `{"type":["a"],"source":[{"prefix":"/s"}],"data":{"amount":[{"numeric":[">",100]}]}}`,
			`{"detail":{"data":{"amount":[{"numeric":[">",100]}]},"source":[{"prefix":"/s"}],"type":["a"]},"detail-type":["a"],"source":[{"prefix":"/s"}]}`},
		{"data only", `{"data":{"x":[1]}}`, `{"detail":{"data":{"x":[1]}}}`},
		{"type inside $or is not lifted", `{"$or":[{"type":["a"]},{"subject":["b"]}]}`, `{"detail":{"$or":[{"type":["a"]},{"subject":["b"]}]}}`},
		{"exists:false is not lifted", `{"type":[{"exists":false}]}`, `{"detail":{"type":[{"exists":false}]}}`},
		{"operators are kept", `{"type":[{"anything-but":{"wildcard":"*.test"}}],"source":["x",{"suffix":"y"}]}`,
			`{"detail":{"source":["x",{"suffix":"y"}],"type":[{"anything-but":{"wildcard":"*.test"}}]},"detail-type":[{"anything-but":{"wildcard":"*.test"}}],"source":["x",{"suffix":"y"}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, exact, err := ToEventBridge(MustCompile(tc.pattern))
			require.NoError(t, err)
			assert.True(t, exact)
			assert.Equal(t, tc.want, string(got))
			_, err = Compile(got)
			assert.NoError(t, err, "the rule is itself a valid pattern")
		})
	}
}

// TestToEventBridgeAgreesWithLocalMatching wraps events the way crossbus
// publishes them to EventBridge and checks that the rule pattern matches
// the envelope exactly when the original pattern matches the event.
func TestToEventBridgeAgreesWithLocalMatching(t *testing.T) {
	ev := newTestEvent(t)
	ce, err := json.Marshal(ev)
	require.NoError(t, err)
	envelope, err := json.Marshal(map[string]any{
		"version": "0", "id": "eb-id", "account": "123456789012", "region": "eu-west-1",
		"source": ev.Source(), "detail-type": ev.Type(), "time": "2025-03-04T04:06:07Z",
		"resources": []string{}, "detail": json.RawMessage(ce),
	})
	require.NoError(t, err)
	for _, pat := range []string{
		`{"type":["com.example.order.created"]}`,
		`{"type":["com.example.order.deleted"]}`,
		`{"source":[{"prefix":"/orders/"}],"data":{"amount":[{"numeric":[">",100]}]}}`,
		`{"source":[{"prefix":"/orders/"}],"data":{"amount":[{"numeric":["<",100]}]}}`,
		`{"$or":[{"type":["x"]},{"data":{"customer":{"tier":["gold"]}}}]}`,
		`{"subject":[{"exists":false}]}`,
		`{"partitionkey":[{"prefix":"customer-"}],"sequence":[42]}`,
		`{"type":[{"anything-but":{"prefix":"com.example."}}]}`,
	} {
		p := MustCompile(pat)
		rule, _, err := ToEventBridge(p)
		require.NoError(t, err)
		got, err := MustCompile(string(rule)).MatchJSON(envelope)
		require.NoError(t, err)
		assert.Equal(t, p.Match(ev), got, pat)
	}
}

func TestToPubSubFilter(t *testing.T) {
	runTranslateCases(t, ToPubSubFilter, []translateCase{
		{"type", `{"type":["a"]}`, `attributes.ce-type = "a"`, true},
		{"type list", `{"type":["a","b"]}`, `attributes.ce-type = "a" OR attributes.ce-type = "b"`, true},
		{"type and source prefix", `{"type":["a"],"source":[{"prefix":"/s/"}]}`, `attributes.ce-type = "a" AND hasPrefix(attributes.ce-source, "/s/")`, true},
		{"list inside AND is parenthesized", `{"source":[{"prefix":"/s/"}],"type":["a","b"]}`,
			`(attributes.ce-type = "a" OR attributes.ce-type = "b") AND hasPrefix(attributes.ce-source, "/s/")`, true},
		{"data is dropped", `{"type":["a"],"data":{"amount":[{"numeric":[">",1]}]}}`, `attributes.ce-type = "a"`, false},
		{"data only", `{"data":{"amount":[{"numeric":[">",1]}]}}`, "", false},
		{"exists", `{"subject":[{"exists":true}]}`, `attributes:ce-subject`, true},
		{"exists false", `{"subject":[{"exists":false}]}`, `NOT attributes:ce-subject`, true},
		{"anything-but list", `{"type":[{"anything-but":["a","b"]}]}`, `attributes:ce-type AND attributes.ce-type != "a" AND attributes.ce-type != "b"`, true},
		{"anything-but numbers on a string attribute", `{"type":[{"anything-but":[1,2]}]}`, `attributes:ce-type`, true},
		{"anything-but prefix", `{"source":[{"anything-but":{"prefix":"aws."}}]}`, `attributes:ce-source AND NOT hasPrefix(attributes.ce-source, "aws.")`, true},
		{"anything-but suffix is approximated", `{"source":[{"anything-but":{"suffix":".x"}}]}`, `attributes:ce-source`, false},
		{"anything-but in a list", `{"type":["a",{"anything-but":"b"}]}`, `attributes.ce-type = "a" OR (attributes:ce-type AND attributes.ce-type != "b")`, true},
		{"suffix is dropped", `{"type":["a"],"subject":[{"suffix":".png"}]}`, `attributes.ce-type = "a"`, false},
		{"suffix only", `{"subject":[{"suffix":".png"}]}`, "", false},
		{"suffix in a list drops the field", `{"type":["a",{"suffix":"b"}]}`, "", false},
		{"equals-ignore-case is dropped", `{"type":[{"equals-ignore-case":"a"}]}`, "", false},
		{"numeric on an attribute is dropped", `{"type":["a"],"sequence":[{"numeric":[">",1]}]}`, `attributes.ce-type = "a"`, false},
		{"trailing wildcard is a prefix", `{"type":[{"wildcard":"com.example.*"}]}`, `hasPrefix(attributes.ce-type, "com.example.")`, true},
		{"wildcard without star is equality", `{"type":[{"wildcard":"a\\*b"}]}`, `attributes.ce-type = "a*b"`, true},
		{"star wildcard is presence", `{"type":[{"wildcard":"*"}]}`, `attributes:ce-type`, true},
		{"inner wildcard approximated by its prefix", `{"type":[{"wildcard":"com.*.created"}]}`, `hasPrefix(attributes.ce-type, "com.")`, false},
		{"leading wildcard is presence", `{"type":[{"wildcard":"*.created"}]}`, `attributes:ce-type`, false},
		{"extension is not exact", `{"partitionkey":["k"]}`, `attributes.ce-partitionkey = "k"`, false},
		{"extension anything-but is presence", `{"partitionkey":[{"anything-but":"k"}]}`, `attributes:ce-partitionkey`, false},
		{"extension exists is exact", `{"partitionkey":[{"exists":true}]}`, `attributes:ce-partitionkey`, true},
		{"time is dropped", `{"type":["a"],"time":[{"prefix":"2025"}]}`, `attributes.ce-type = "a"`, false},
		{"time exists is kept", `{"time":[{"exists":true}]}`, `attributes:ce-time`, true},
		{"non-attribute name is dropped", `{"type":["a"],"Foo-Bar":["x"]}`, `attributes.ce-type = "a"`, false},
		{"nested object under attribute", `{"type":["a"],"source":{"x":["y"]}}`, `attributes.ce-type = "a"`, false},
		{"$or", `{"$or":[{"type":["a"]},{"source":["b"]}]}`, `attributes.ce-type = "a" OR attributes.ce-source = "b"`, true},
		{"$or with AND alternatives", `{"$or":[{"type":["a"],"subject":["s"]},{"source":["b"]}]}`,
			`(attributes.ce-type = "a" AND attributes.ce-subject = "s") OR attributes.ce-source = "b"`, true},
		{"AND with $or", `{"type":["a"],"$or":[{"subject":["s"]},{"source":["b"]}]}`,
			`attributes.ce-type = "a" AND (attributes.ce-subject = "s" OR attributes.ce-source = "b")`, true},
		{"$or with a data alternative becomes TRUE", `{"type":["a"],"$or":[{"subject":["s"]},{"data":{"x":[1]}}]}`, `attributes.ce-type = "a"`, false},
		{"quoting", `{"subject":["a\"b\\c\nd\u0001"]}`, `attributes.ce-subject = "a\"b\\c\nd\x01"`, true},
	})
}

func TestToPubSubFilterLength(t *testing.T) {
	long := strings.Repeat("x", 200)
	got, exact, err := ToPubSubFilter(MustCompile(`{"type":["` + long + `"],"source":["` + long + `"]}`))
	require.NoError(t, err)
	assert.False(t, exact, "truncated filters are supersets")
	assert.Equal(t, `attributes.ce-type = "`+long+`"`, got)
	assert.LessOrEqual(t, len(got), PubSubMaxFilterLen)

	_, _, err = ToPubSubFilter(MustCompile(`{"type":["` + long + `","` + long + `"]}`))
	assert.ErrorIs(t, err, ErrNotTranslatable, "a single OR that does not fit cannot be shortened")
}

func TestToServiceBusSQL(t *testing.T) {
	runTranslateCases(t, ToServiceBusSQL, []translateCase{
		{"type", `{"type":["a"]}`, `cloudEvents_type = 'a'`, true},
		{"type list is IN", `{"type":["a","b"]}`, `cloudEvents_type IN ('a', 'b')`, true},
		{"type and source prefix", `{"type":["a"],"source":[{"prefix":"/s/"}]}`, `cloudEvents_type = 'a' AND cloudEvents_source LIKE '/s/%'`, true},
		{"LIKE wildcards escaped", `{"source":[{"prefix":"/a_b%c!"}]}`, `cloudEvents_source LIKE '/a!_b!%c!!%' ESCAPE '!'`, true},
		{"suffix", `{"subject":[{"suffix":".png"}]}`, `cloudEvents_subject LIKE '%.png'`, true},
		{"wildcard", `{"subject":[{"wildcard":"img/*_*.png"}]}`, `cloudEvents_subject LIKE 'img/%!_%.png' ESCAPE '!'`, true},
		{"escaped star is literal", `{"subject":[{"wildcard":"a\\*b"}]}`, `cloudEvents_subject LIKE 'a*b'`, true},
		{"quote doubled", `{"subject":["O'Brien"]}`, `cloudEvents_subject = 'O''Brien'`, true},
		{"quote in LIKE", `{"subject":[{"prefix":"O'B"}]}`, `cloudEvents_subject LIKE 'O''B%'`, true},
		{"exists", `{"subject":[{"exists":true}]}`, `EXISTS(cloudEvents_subject)`, true},
		{"exists false", `{"subject":[{"exists":false}]}`, `NOT EXISTS(cloudEvents_subject)`, true},
		{"anything-but list", `{"type":[{"anything-but":["a","b"]}]}`, `cloudEvents_type NOT IN ('a', 'b')`, true},
		{"anything-but one", `{"type":[{"anything-but":"a"}]}`, `cloudEvents_type NOT IN ('a')`, true},
		{"anything-but numbers", `{"type":[{"anything-but":7}]}`, `EXISTS(cloudEvents_type)`, true},
		{"anything-but prefix", `{"source":[{"anything-but":{"prefix":"aws."}}]}`, `cloudEvents_source NOT LIKE 'aws.%'`, true},
		{"anything-but suffix", `{"source":[{"anything-but":{"suffix":"_x"}}]}`, `cloudEvents_source NOT LIKE '%!_x' ESCAPE '!'`, true},
		{"anything-but wildcards", `{"source":[{"anything-but":{"wildcard":["a*","*b"]}}]}`, `cloudEvents_source NOT LIKE 'a%' AND cloudEvents_source NOT LIKE '%b'`, true},
		{"anything-but ignore case is presence", `{"source":[{"anything-but":{"equals-ignore-case":"a"}}]}`, `EXISTS(cloudEvents_source)`, false},
		{"equals-ignore-case is dropped", `{"type":["a"],"subject":[{"equals-ignore-case":"x"}]}`, `cloudEvents_type = 'a'`, false},
		{"data is dropped", `{"type":["a"],"data":{"x":["y"]}}`, `cloudEvents_type = 'a'`, false},
		{"data only", `{"data":{"x":["y"]}}`, "", false},
		{"extension", `{"partitionkey":["k1","k2"]}`, `cloudEvents_partitionkey IN ('k1', 'k2')`, false},
		{"extension anything-but", `{"partitionkey":[{"anything-but":"k"}]}`, `EXISTS(cloudEvents_partitionkey)`, false},
		{"list with prefix", `{"type":["a","b",{"prefix":"c."}]}`, `cloudEvents_type IN ('a', 'b') OR cloudEvents_type LIKE 'c.%'`, true},
		{"AND with $or", `{"type":["a"],"$or":[{"source":["b"]},{"subject":["c"]}]}`,
			`cloudEvents_type = 'a' AND (cloudEvents_source = 'b' OR cloudEvents_subject = 'c')`, true},
		{"nested $or", `{"$or":[{"type":["a"]},{"source":["s"],"$or":[{"subject":["x"]},{"id":["i"]}]}]}`,
			`cloudEvents_type = 'a' OR (cloudEvents_source = 's' AND (cloudEvents_subject = 'x' OR cloudEvents_id = 'i'))`, true},
	})
}

func TestToServiceBusSQLLength(t *testing.T) {
	long := strings.Repeat("y", 600)
	got, exact, err := ToServiceBusSQL(MustCompile(`{"type":["` + long + `"],"source":["` + long + `"]}`))
	require.NoError(t, err)
	assert.False(t, exact)
	assert.Equal(t, `cloudEvents_type = '`+long+`'`, got)
}

func TestPubSubContentTypeAttribute(t *testing.T) {
	f, exact, err := ToPubSubFilter(MustCompile(`{"datacontenttype":["application/json"]}`))
	require.NoError(t, err)
	assert.True(t, exact)
	assert.Equal(t, `attributes.content-type = "application/json"`, f)
}
