package eventpattern

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzCompileMatch checks that arbitrary pattern and event bytes never
// panic, and that a pattern either fails to compile or matches
// deterministically: the same answer twice, from its canonical form, and
// from a Matcher holding it.
func FuzzCompileMatch(f *testing.F) {
	seeds := [][2]string{
		{`{"type":["a"]}`, `{"type":"a"}`},
		{`{"source":[{"prefix":"/s"}],"data":{"n":[{"numeric":[">",0,"<=",5]}]}}`, `{"source":"/s/1","data":{"n":3}}`},
		{`{"a":[{"anything-but":{"wildcard":"*x*"}}],"b":[{"exists":false}]}`, `{"a":["y","x"],"c":null}`},
		{`{"$or":[{"a":[{"cidr":"10.0.0.0/8"}]},{"b":{"c":[{"suffix":{"equals-ignore-case":"Z"}}]}}]}`, `{"a":"10.1.1.1","b":[{"c":"xz"}]}`},
		{`{"a":[{"wildcard":"a\\*b*"},{"equals-ignore-case":"Q"},1e2,null,true]}`, `{"a":[[100]]}`},
		{`{"a":{"$or":[{"x":[1]},{"y":[2]}],"z":[{"anything-but":[1,2]}]}}`, `{"a":[{"x":1,"z":3},{"y":2,"z":1}]}`},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, pattern, doc []byte) {
		p, err := Compile(pattern)
		if err != nil {
			require.Nil(t, p)
			var ce *CompileError
			require.ErrorAs(t, err, &ce)
			return
		}
		first, err1 := p.MatchJSON(doc)
		second, err2 := p.MatchJSON(doc)
		require.Equal(t, err1 == nil, err2 == nil)
		require.Equal(t, first, second, "not deterministic")

		canon, err := Compile([]byte(p.String()))
		require.NoError(t, err, "canonical form %s of %s does not compile", p, pattern)
		require.Equal(t, p.String(), canon.String(), "canonical form is not stable")
		again, _ := canon.MatchJSON(doc)
		require.Equal(t, first, again, "canonical form %s disagrees", p)

		var m Matcher[int]
		m.Add(1, p)
		m.Add(2, canon)
		ids, err := m.MatchJSON(doc, nil)
		require.Equal(t, err1 == nil, err == nil)
		if first {
			require.Equal(t, []int{1, 2}, ids, "matcher disagrees")
		} else {
			require.Empty(t, ids, "matcher disagrees")
		}

		// Translators never panic, and the EventBridge rule is a valid pattern.
		rule, _, err := ToEventBridge(p)
		require.NoError(t, err)
		_, err = Compile(rule)
		require.NoError(t, err, "EventBridge rule %s", rule)
		_, _, _ = ToPubSubFilter(p)
		_, _, _ = ToServiceBusSQL(p)
	})
}

// FuzzDecode checks the tape decoder against encoding/json.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"a":[1,"b",null,true,{"c":-1.5e3}]}`, `"\ud83d\ude00\n"`, `[`, `{"a":01}`, ` 0 `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		checkDecodeAgrees(t, src)
	})
}
