package eventpattern

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name    string
		pattern string
		path    string
		rule    string // substring of the rule
	}{
		{"not JSON", `{"a":`, "", "invalid JSON"},
		{"trailing garbage", `{"a":["x"]} x`, "", "invalid JSON"},
		{"array pattern", `["a"]`, "", "pattern must be a JSON object"},
		{"string pattern", `"a"`, "", "pattern must be a JSON object"},
		{"empty pattern", `{}`, "", "empty objects are not allowed"},
		{"empty nested object", `{"data":{}}`, "data", "empty objects are not allowed"},
		{"leaf not an array", `{"type":"x"}`, "type", "value must be an object or an array"},
		{"leaf number", `{"data":{"amount":5}}`, "data.amount", "value must be an object or an array"},
		{"empty value list", `{"type":[]}`, "type", "empty arrays are not allowed"},
		{"nested array value", `{"type":[["x"]]}`, "type", "values must be strings"},
		{"unknown operator", `{"type":[{"regex":"x"}]}`, "type", `unknown operator "regex"`},
		{"operator with two keys", `{"type":[{"prefix":"x","suffix":"y"}]}`, "type", "exactly one key"},
		{"empty operator", `{"type":[{}]}`, "type", "exactly one key"},
		{"prefix number", `{"a":[{"prefix":1}]}`, "a", "prefix expects a string"},
		{"prefix bad object", `{"a":[{"prefix":{"x":"y"}}]}`, "a", "prefix expects a string"},
		{"suffix null", `{"a":[{"suffix":null}]}`, "a", "suffix expects a string"},
		{"equals-ignore-case number", `{"a":[{"equals-ignore-case":1}]}`, "a", "equals-ignore-case expects a string"},
		{"numeric not array", `{"data":{"amount":[{"numeric":5}]}}`, "data.amount", "numeric expects operator/value pairs"},
		{"numeric odd length", `{"data":{"amount":[{"numeric":[">",1,"<"]}]}}`, "data.amount", "numeric expects operator/value pairs"},
		{"numeric string value", `{"data":{"amount":[{"numeric":[">","1"]}]}}`, "data.amount", "numeric expects operator/value pairs"},
		{"numeric empty", `{"a":[{"numeric":[]}]}`, "a", "numeric expects operator/value pairs"},
		{"numeric bad operator", `{"a":[{"numeric":["!=",1]}]}`, "a", `numeric operator "!="`},
		{"numeric range reversed", `{"a":[{"numeric":["<",5,">",1]}]}`, "a", "lower bound"},
		{"numeric two lower bounds", `{"a":[{"numeric":[">",1,">=",5]}]}`, "a", "lower bound"},
		{"numeric equals in range", `{"a":[{"numeric":["=",1,"<",5]}]}`, "a", `"=" takes exactly one value`},
		{"numeric empty range", `{"a":[{"numeric":[">",5,"<",5]}]}`, "a", "range is empty"},
		{"numeric out of range", `{"a":[{"numeric":[">",5e10]}]}`, "a", "outside -5e9..5e9"},
		{"exists string", `{"a":[{"exists":"true"}]}`, "a", "exists expects true or false"},
		{"cidr number", `{"a":[{"cidr":10}]}`, "a", "cidr expects a string"},
		{"bad cidr", `{"a":[{"cidr":"10.0.0.0"}]}`, "a", `invalid CIDR "10.0.0.0"`},
		{"bad cidr mask", `{"a":[{"cidr":"10.0.0.0/33"}]}`, "a", "invalid CIDR"},
		{"bad cidr address", `{"a":[{"cidr":"10.0.0.256/8"}]}`, "a", "invalid CIDR"},
		{"host-sized cidr", `{"a":[{"cidr":"10.0.0.1/32"}]}`, "a", "mask must be shorter"},
		{"host-sized ipv6 cidr", `{"a":[{"cidr":"::1/128"}]}`, "a", "mask must be shorter"},
		{"wildcard double star", `{"a":[{"wildcard":"a**b"}]}`, "a", "consecutive '*'"},
		{"wildcard bad escape", `{"a":[{"wildcard":"a\\b"}]}`, "a", `escapes must be`},
		{"wildcard trailing backslash", `{"a":[{"wildcard":"a\\"}]}`, "a", `must not end`},
		{"wildcard number", `{"a":[{"wildcard":1}]}`, "a", "wildcard expects a string"},
		{"anything-but bool", `{"a":[{"anything-but":true}]}`, "a", "anything-but expects"},
		{"anything-but null", `{"a":[{"anything-but":null}]}`, "a", "anything-but expects"},
		{"anything-but mixed list", `{"a":[{"anything-but":["x",1]}]}`, "a", "only strings or only numbers"},
		{"anything-but list with null", `{"a":[{"anything-but":["x",null]}]}`, "a", "only strings or only numbers"},
		{"anything-but empty list", `{"a":[{"anything-but":[]}]}`, "a", "must not be empty"},
		{"anything-but prefix empty list", `{"a":[{"anything-but":{"prefix":[]}}]}`, "a", "non-empty list"},
		{"anything-but suffix with an empty string", `{"a":[{"anything-but":{"suffix":["x",""]}}]}`, "a", "non-empty string"},
		{"anything-but empty prefix", `{"a":[{"anything-but":{"prefix":""}}]}`, "a", "non-empty string"},
		{"anything-but unknown", `{"a":[{"anything-but":{"numeric":[">",1]}}]}`, "a", "anything-but expects"},
		{"anything-but number out of range", `{"a":[{"anything-but":6e9}]}`, "a", "within -5e9..5e9"},
		{"anything-but bad wildcard", `{"a":[{"anything-but":{"wildcard":"**"}}]}`, "a", "consecutive"},
		{"anything-but fold number", `{"a":[{"anything-but":{"equals-ignore-case":1}}]}`, "a", "equals-ignore-case expects"},
		{"infinite number", `{"a":[1e400]}`, "a", "out of range"},
		{"$or not array", `{"$or":{"a":["x"]}}`, "$or", "at least two objects"},
		{"$or empty", `{"$or":[]}`, "$or", "at least two objects"},
		{"$or single", `{"$or":[{"a":["x"]}]}`, "$or", "at least two objects"},
		{"$or non-object", `{"$or":[{"a":["x"]},"b"]}`, "$or[1]", "must be objects"},
		{"$or empty alternative", `{"$or":[{"a":["x"]},{}]}`, "$or[1]", "empty objects"},
		{"$or reserved name", `{"$or":[{"prefix":["x"]},{"a":["y"]}]}`, "$or[0].prefix", "operator name"},
		{"$or nested error path", `{"data":{"$or":[{"a":["x"]},{"b":{"c":"d"}}]}}`, "data.$or[1].b.c", "object or an array"},
		{"nested or error path", `{"$or":[{"a":["x"]},{"$or":[{"b":[1]},{"c":[]}]}]}`, "$or[1].$or[1].c", "empty arrays"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile([]byte(tc.pattern))
			require.Error(t, err)
			assert.Nil(t, p)
			var ce *CompileError
			require.True(t, errors.As(err, &ce), "error %v is not a *CompileError", err)
			assert.Equal(t, tc.path, ce.Path)
			assert.Contains(t, ce.Rule, tc.rule)
			assert.ErrorIs(t, err, ErrInvalidPattern)
			if tc.path != "" {
				assert.Equal(t, tc.path+": "+ce.Rule, err.Error())
			}
		})
	}
}

func TestCompileErrorMessage(t *testing.T) {
	_, err := Compile([]byte(`{"data":{"amount":[{"numeric":[">"]}]}}`))
	require.Error(t, err)
	assert.Equal(t, "data.amount: numeric expects operator/value pairs", err.Error())
}

func TestCanonicalForm(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{ "type" : [ "a" , "b" ] , "source":[{"prefix":"/x"}] }`, `{"source":[{"prefix":"/x"}],"type":["a","b"]}`},
		{`{"a":[1e2, -0.5, true, false, null, "s"]}`, `{"a":[100,-0.5,true,false,null,"s"]}`},
		{`{"a":[{"numeric":[">",0,"<=",5]}, {"numeric":["=",3.018e2]}]}`, `{"a":[{"numeric":[">",0,"<=",5]},{"numeric":["=",301.8]}]}`},
		{`{"a":[{"anything-but":"x"},{"anything-but":[1,2]},{"anything-but":{"prefix":"p"}}]}`, `{"a":[{"anything-but":"x"},{"anything-but":[1,2]},{"anything-but":{"prefix":"p"}}]}`},
		{`{"a":[{"anything-but":{"equals-ignore-case":["x","y"]}},{"anything-but":{"wildcard":"a*"}}]}`, `{"a":[{"anything-but":{"equals-ignore-case":["x","y"]}},{"anything-but":{"wildcard":"a*"}}]}`},
		{`{"a":[{"prefix":{"equals-ignore-case":"X"}},{"suffix":{"equals-ignore-case":"Y"}}]}`, `{"a":[{"prefix":{"equals-ignore-case":"X"}},{"suffix":{"equals-ignore-case":"Y"}}]}`},
		{`{"a":[{"wildcard":"a\\*b*"},{"cidr":"10.0.0.0/8"},{"exists":false},{"equals-ignore-case":"Q"}]}`, `{"a":[{"wildcard":"a\\*b*"},{"cidr":"10.0.0.0/8"},{"exists":false},{"equals-ignore-case":"Q"}]}`},
		{`{"z":["1"],"$or":[{"b":["2"]},{"a":{"c":["3"]}}]}`, `{"$or":[{"b":["2"]},{"a":{"c":["3"]}}],"z":["1"]}`},
		{`{"a":["x"],"a":["y"]}`, `{"a":["y"]}`},
		{`{"a":["tab\there \"q\" \\ \u0001"]}`, `{"a":["tab\there \"q\" \\ \u0001"]}`},
	}
	for _, tc := range cases {
		p, err := Compile([]byte(tc.in))
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, p.String())
		b, err := p.MarshalJSON()
		require.NoError(t, err)
		assert.Equal(t, tc.want, string(b))
	}
}

func TestMustCompilePanics(t *testing.T) {
	assert.PanicsWithValue(t, `pattern: MustCompile("{}"): empty objects are not allowed`, func() { MustCompile(`{}`) })
	assert.NotPanics(t, func() { MustCompile(`{"type":["x"]}`) })
}

func TestCompileClonesStrings(t *testing.T) {
	src := []byte(`{"type":["abc"],"data":{"k\u0065y":[{"prefix":"p\u0071"}]}}`)
	p, err := Compile(src)
	require.NoError(t, err)
	for i := range src {
		src[i] = 'x'
	}
	ok, err := p.MatchJSON([]byte(`{"type":"abc","data":{"key":"pqr"}}`))
	require.NoError(t, err)
	assert.True(t, ok, "compiled pattern must not alias its source")
	assert.Equal(t, `{"data":{"key":[{"prefix":"pq"}]},"type":["abc"]}`, p.String())
}
