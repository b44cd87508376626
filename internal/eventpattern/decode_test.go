package eventpattern

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// toAny converts the subtree at i to the value encoding/json decodes into any.
func (t *tape) toAny(i int32) any {
	n := &t.nodes[i]
	switch n.kind {
	case kNull:
		return nil
	case kTrue:
		return true
	case kFalse:
		return false
	case kNumber:
		return n.num
	case kString:
		return strings.Clone(n.s)
	case kArray:
		out := []any{}
		for j := i + 1; j < n.end; j = t.nodes[j].end {
			out = append(out, t.toAny(j))
		}
		return out
	case kObject:
		out := map[string]any{}
		for j := i + 1; j < n.end; j = t.nodes[j+1].end {
			out[t.nodes[j].s] = t.toAny(j + 1)
		}
		return out
	}
	panic("bad node")
}

// checkDecodeAgrees decodes src with the tape decoder and encoding/json and
// fails if they disagree on validity or (for valid UTF-8) on the value.
func checkDecodeAgrees(t *testing.T, src []byte) {
	t.Helper()
	var tp tape
	root, err := tp.decode(src)
	if !json.Valid(src) {
		require.Error(t, err, "accepted invalid JSON %q", src)
		require.True(t, errors.Is(err, errSyntax))
		return
	}
	require.NoError(t, err, "rejected valid JSON %q", src)
	var want any
	if json.Unmarshal(src, &want) != nil || !utf8.Valid(src) {
		return // number overflow, or invalid UTF-8 that encoding/json replaces
	}
	require.Equal(t, want, tp.toAny(root), "decoding %q", src)
}

func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	docs := []string{
		`null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `12345678901234567890`, `1.5`, `-1.5e10`, `1E+2`, `1e-2`,
		`0.1`, `123456789012345`, `1234567890123456`, `""`, `"a"`, `"\u00e9\n\t\"\\\/\b\f\r"`, `"\ud83d\ude00"`,
		`"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`, `[]`, `[1,[2,[3]]]`, `{}`, `{"a":{"b":[true,null]}}`,
		` { "a" : 1 , "b" : [ ] } `, `{"a":1,"a":2}`, `"é✓"`, `{"":""}`,
		// invalid
		``, ` `, `{`, `}`, `[`, `[1,]`, `[,1]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{a:1}`, `'a'`, `01`, `-`, `1.`, `.5`,
		`1e`, `1e+`, `+1`, `NaN`, `Infinity`, `tru`, `nulll`, `"a`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\x01\"", `[1 2]`,
		`{"a":1 "b":2}`, `1 2`, `[]]`, `"\`, "\"\t\"",
	}
	for _, doc := range docs {
		checkDecodeAgrees(t, []byte(doc))
	}
}

func TestDecodeDepthLimit(t *testing.T) {
	deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	var tp tape
	_, err := tp.decode([]byte(deep))
	require.NoError(t, err)
	tooDeep := "[" + deep + "]"
	_, err = tp.decode([]byte(tooDeep))
	require.Error(t, err)
	assert.False(t, json.Valid([]byte(tooDeep)), "encoding/json has the same limit")
}

func TestDecodeNumbers(t *testing.T) {
	for src, want := range map[string]float64{
		`123456789012345`: 123456789012345, `-42`: -42, `0.5`: 0.5, `1e2`: 100, `-0.0`: 0, `3.018e2`: 301.8,
	} {
		var tp tape
		root, err := tp.decode([]byte(src))
		require.NoError(t, err)
		assert.Equal(t, want, tp.nodes[root].num, src)
		assert.Equal(t, src, tp.nodes[root].s, "numbers keep their text")
	}
}

func TestTapeMemberKeepsLast(t *testing.T) {
	var tp tape
	root, err := tp.decode([]byte(`{"a":1,"b":{"c":2},"a":3}`))
	require.NoError(t, err)
	assert.Equal(t, 3.0, tp.nodes[tp.member(root, "a")].num)
	assert.Equal(t, int32(-1), tp.member(root, "z"))
	b := tp.member(root, "b")
	assert.Equal(t, 2.0, tp.nodes[tp.member(b, "c")].num)
}
