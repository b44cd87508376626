package eventpattern

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestToSNSFilterPolicy(t *testing.T) {
	for _, tc := range []struct {
		pattern, want string
	}{
		{`{"type":["order.placed"]}`, `{"type":["order.placed"]}`},
		{`{"source":[{"prefix":"/shop/"}],"type":["a","b"]}`, `{"type":["a","b"],"source":[{"prefix":"/shop/"}]}`},
		{`{"subject":[{"anything-but":["x","y"]}],"id":[{"exists":true}]}`, `{"subject":[{"anything-but":["x","y"]}],"id":[{"exists":true}]}`},
		{`{"subject":[{"anything-but":{"prefix":"tmp/"}}]}`, `{"subject":[{"anything-but":{"prefix":"tmp/"}}]}`},
		// Left out: data, extensions, $or, suffixes, numbers, exists:false.
		{`{"type":["a"],"data":{"n":[1]},"tenant":["acme"],"$or":[{"subject":["x"]},{"subject":["y"]}]}`, `{"type":["a"]}`},
		{`{"type":["a",{"suffix":"b"}],"source":["s"]}`, `{"source":["s"]}`},
		{`{"type":["a"],"subject":[{"exists":false}]}`, `{"type":["a"]}`},
	} {
		p, err := Compile([]byte(tc.pattern))
		require.NoError(t, err, tc.pattern)
		got, exact, err := ToSNSFilterPolicy(p)
		require.NoError(t, err, tc.pattern)
		assert.JSONEq(t, tc.want, string(got), tc.pattern)
		assert.False(t, exact, "SNS policies are supersets")
	}
	for _, src := range []string{`{"data":{"n":[1]}}`, `{"tenant":["a"]}`, `{"type":[{"wildcard":"a*"}]}`} {
		p, err := Compile([]byte(src))
		require.NoError(t, err)
		_, _, err = ToSNSFilterPolicy(p)
		assert.True(t, errors.Is(err, ErrNotTranslatable), src)
	}
}

func TestToSNSFilterPolicyKeepsWithinLimits(t *testing.T) {
	p, err := Compile([]byte(`{"type":["a","b","c","d","e","f","g","h","i","j"],"source":["a","b","c","d","e","f","g","h","i","j"],
		"subject":["a","b"],"id":["x"],"dataschema":["s"],"datacontenttype":["application/json"]}`))
	require.NoError(t, err)
	got, _, err := ToSNSFilterPolicy(p)
	require.NoError(t, err)
	// 10 x 10 = 100 combinations; subject (x2) would make 200.
	assert.JSONEq(t, `{"type":["a","b","c","d","e","f","g","h","i","j"],"source":["a","b","c","d","e","f","g","h","i","j"],
		"id":["x"],"dataschema":["s"],"datacontenttype":["application/json"]}`, string(got))
}
