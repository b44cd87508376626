package providerkit_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

type testOptions struct {
	Name    string
	On      bool
	Count   int
	Small   int16
	Wait    time.Duration
	Mode    int
	Queues  []string
	Checked string
}

func testParams(o *testOptions) providerkit.Params {
	return providerkit.Params{
		providerkit.String("name", &o.Name, "any text"),
		providerkit.Bool("on", &o.On, "bool"),
		providerkit.Int("count", &o.Count, "int"),
		providerkit.Int("small", &o.Small, "int16"),
		providerkit.Duration("wait", &o.Wait, "duration"),
		providerkit.OneOf("mode", &o.Mode, "a, b or c",
			providerkit.Choice[int]{Text: "a", Value: 1}, providerkit.Choice[int]{Text: "b", Value: 2}, providerkit.Choice[int]{Text: "c", Value: 3}),
		{Name: "queue", Doc: "repeatable", Each: true, Parse: func(v string) error { o.Queues = append(o.Queues, v); return nil }},
		providerkit.Func("checked", "not empty", func(v string) error {
			if v == "" {
				return errors.New("must not be empty")
			}
			o.Checked = v
			return nil
		}),
	}
}

func parse(t *testing.T, query string) (testOptions, error) {
	t.Helper()
	q, err := url.ParseQuery(query)
	require.NoError(t, err)
	var o testOptions
	return o, testParams(&o).Parse("test URL", q)
}

func TestParamsParse(t *testing.T) {
	o, err := parse(t, "name=x&on=true&count=7&small=-3&wait=2s&mode=b&queue=q1&queue=q2&checked=y&count=8")
	require.NoError(t, err)
	assert.Equal(t, testOptions{Name: "x", On: true, Count: 8, Small: -3, Wait: 2 * time.Second, Mode: 2,
		Queues: []string{"q1", "q2"}, Checked: "y"}, o, "the last value counts, every value of an Each parameter")
}

func TestParamsErrors(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{"bogus=1", `unknown test URL parameter "bogus" (known: name, on, count, small, wait, mode, queue, checked)`},
		{"on=maybe", `test URL parameter on="maybe": strconv.ParseBool`},
		{"small=70000", `test URL parameter small="70000": strconv.ParseInt: parsing "70000": value out of range`},
		{"wait=soon", `test URL parameter wait="soon": time: invalid duration`},
		{"mode=d", `test URL parameter mode="d": want a, b or c`},
		{"checked=", `test URL parameter checked="": must not be empty`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, err := parse(t, tc.query)
			require.ErrorIs(t, err, driver.ErrInvalidURL)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestParamsNamesComeFromTheTable(t *testing.T) {
	var o testOptions
	ps := testParams(&o)
	names := strings.Split(ps.Names(), ", ")
	require.Len(t, names, len(ps))
	for i, p := range ps {
		assert.Equal(t, p.Name, names[i])
		assert.NotEmpty(t, p.Doc, "every parameter is documented")
	}
}
