package eventpattern

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBuildersMatchJSONForm(t *testing.T) {
	cases := []struct {
		name  string
		built *Pattern
		json  string
	}{
		{"TypeIs", TypeIs("a", "b"), `{"type":["a","b"]}`},
		{"TypePrefix", TypePrefix("com.example."), `{"type":[{"prefix":"com.example."}]}`},
		{"SourceIs", SourceIs("/s"), `{"source":["/s"]}`},
		{"SourcePrefix", SourcePrefix("/shop/"), `{"source":[{"prefix":"/shop/"}]}`},
		{"SubjectIs", SubjectIs("x"), `{"subject":["x"]}`},
		{"SubjectPrefix", SubjectPrefix("orders/"), `{"subject":[{"prefix":"orders/"}]}`},
		{"Equals mixed", Field("data", "v").Equals("s", 1, 2.5, true, nil, int64(7), uint8(3)), `{"data":{"v":["s",1,2.5,true,null,7,3]}}`},
		{"Suffix", Field("data", "file").Suffix(".png"), `{"data":{"file":[{"suffix":".png"}]}}`},
		{"EqualsIgnoreCase", Field("data", "name").EqualsIgnoreCase("alice"), `{"data":{"name":[{"equals-ignore-case":"alice"}]}}`},
		{"Wildcard", Field("data", "path").Wildcard("*/lib/*"), `{"data":{"path":[{"wildcard":"*/lib/*"}]}}`},
		{"AnythingBut one", Field("data", "state").AnythingBut("init"), `{"data":{"state":[{"anything-but":"init"}]}}`},
		{"AnythingBut list", Field("data", "n").AnythingBut(1, 2), `{"data":{"n":[{"anything-but":[1,2]}]}}`},
		{"Numeric", Field("data", "amount").Numeric(">", 100), `{"data":{"amount":[{"numeric":[">",100]}]}}`},
		{"Between", Field("data", "amount").Between(0, 5.5), `{"data":{"amount":[{"numeric":[">=",0,"<",5.5]}]}}`},
		{"Exists", Field("data", "x").Exists(false), `{"data":{"x":[{"exists":false}]}}`},
		{"CIDR", Field("data", "ip").CIDR("10.0.0.0/8"), `{"data":{"ip":[{"cidr":"10.0.0.0/8"}]}}`},
		{"And", And(TypeIs("a"), SourcePrefix("/s"), Field("data", "amount").Numeric(">", 1), Field("data", "c").Equals("EUR")),
			`{"type":["a"],"source":[{"prefix":"/s"}],"data":{"amount":[{"numeric":[">",1]}],"c":["EUR"]}}`},
		{"And of one", And(TypeIs("a")), `{"type":["a"]}`},
		{"Or", Or(TypeIs("a"), SourceIs("b")), `{"$or":[{"type":["a"]},{"source":["b"]}]}`},
		{"Or of one", Or(TypeIs("a")), `{"type":["a"]}`},
		{"And with Or", And(TypeIs("a"), Or(SourceIs("b"), SubjectIs("c"))), `{"type":["a"],"$or":[{"source":["b"]},{"subject":["c"]}]}`},
		{"And of two Ors distributes", And(Or(TypeIs("a"), TypeIs("b")), Or(SourceIs("c"), SourceIs("d"))),
			`{"$or":[{"type":["a"],"$or":[{"source":["c"]},{"source":["d"]}]},{"type":["b"],"$or":[{"source":["c"]},{"source":["d"]}]}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, MustCompile(tc.json).String(), tc.built.String())
		})
	}
}

func TestAndOfTwoOrsMatches(t *testing.T) {
	p := And(Or(TypeIs("a"), TypeIs("b")), Or(SourceIs("c"), SourceIs("d")))
	for doc, want := range map[string]bool{
		`{"type":"a","source":"c"}`: true,
		`{"type":"b","source":"d"}`: true,
		`{"type":"a","source":"x"}`: false,
		`{"type":"x","source":"c"}`: false,
	} {
		got, err := p.MatchJSON([]byte(doc))
		assert.NoError(t, err)
		assert.Equal(t, want, got, doc)
	}
}

func TestBuilderPanics(t *testing.T) {
	assert.PanicsWithValue(t, `pattern: And: field "type" is constrained by more than one pattern`, func() { And(TypeIs("a"), TypePrefix("b")) })
	assert.Panics(t, func() { TypeIs() }, "empty value list")
	assert.Panics(t, func() { Field() })
	assert.Panics(t, func() { And() })
	assert.Panics(t, func() { Or() })
	assert.Panics(t, func() { Field("a").Numeric(">", 1e10) })
	assert.Panics(t, func() { Field("a").Equals(struct{}{}) })
	assert.Panics(t, func() { Field("a").Wildcard("a**") })
}
