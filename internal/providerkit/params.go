package providerkit

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/crossbus/crossbus/driver"
)

// Param is one URL query parameter of a provider: its name, what its value
// is (Doc, for documentation and tests), and how it sets the provider's
// options.
type Param struct {
	Name string
	Doc  string
	// Parse sets the option from the parameter's value: the last value the
	// URL gives, or each value in turn when Each is set.
	Parse func(v string) error
	Each  bool
}

// Params is a provider's table of URL query parameters, declared once: it
// parses a query and lists the known names when a parameter is unknown.
type Params []Param

// Parse applies the query q. A parameter not in the table, or a value its
// Parse refuses, fails with driver.ErrInvalidURL; what names the URL in the
// error ("nats URL"), which gives the parameter and its value, or the known
// parameters. Parameters are applied in table order.
func (ps Params) Parse(what string, q url.Values) error {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if ps.find(k) < 0 {
			return fmt.Errorf("%w: unknown %s parameter %q (known: %s)", driver.ErrInvalidURL, what, k, ps.Names())
		}
	}
	for _, p := range ps {
		vs, ok := q[p.Name]
		if !ok || len(vs) == 0 {
			continue
		}
		if !p.Each {
			vs = vs[len(vs)-1:]
		}
		for _, v := range vs {
			if err := p.Parse(v); err != nil {
				return fmt.Errorf("%w: %s parameter %s=%q: %v", driver.ErrInvalidURL, what, p.Name, v, err)
			}
		}
	}
	return nil
}

func (ps Params) find(name string) int {
	return slices.IndexFunc(ps, func(p Param) bool { return p.Name == name })
}

// Names lists the parameters' names in table order, comma-separated.
func (ps Params) Names() string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// String is a parameter whose value is taken as it is.
func String(name string, p *string, doc string) Param {
	return Param{Name: name, Doc: doc, Parse: func(v string) error { *p = v; return nil }}
}

// Bool is a parameter parsed by strconv.ParseBool.
func Bool(name string, p *bool, doc string) Param {
	return Param{Name: name, Doc: doc, Parse: func(v string) (err error) {
		*p, err = strconv.ParseBool(v)
		return err
	}}
}

// Int is a decimal integer parameter within the range of its type.
func Int[T ~int | ~int16 | ~int32 | ~int64](name string, p *T, doc string) Param {
	return Param{Name: name, Doc: doc, Parse: func(v string) error {
		n, err := strconv.ParseInt(v, 10, int(unsafe.Sizeof(*p))*8)
		if err != nil {
			return err
		}
		*p = T(n)
		return nil
	}}
}

// Duration is a parameter parsed by time.ParseDuration.
func Duration(name string, p *time.Duration, doc string) Param {
	return Param{Name: name, Doc: doc, Parse: func(v string) (err error) {
		*p, err = time.ParseDuration(v)
		return err
	}}
}

// Choice is one value a OneOf parameter accepts.
type Choice[T any] struct {
	Text  string
	Value T
}

// OneOf is a parameter that takes one of the choices' texts and sets the
// choice's value; any other text is refused with the list ("want a or b").
func OneOf[T any](name string, p *T, doc string, choices ...Choice[T]) Param {
	return Param{Name: name, Doc: doc, Parse: func(v string) error {
		for _, c := range choices {
			if c.Text == v {
				*p = c.Value
				return nil
			}
		}
		texts := make([]string, len(choices))
		for i, c := range choices {
			texts[i] = c.Text
		}
		if len(texts) == 1 {
			return fmt.Errorf("want %s", texts[0])
		}
		return fmt.Errorf("want %s or %s", strings.Join(texts[:len(texts)-1], ", "), texts[len(texts)-1])
	}}
}

// Func is a parameter with a parser of its own.
func Func(name, doc string, parse func(v string) error) Param {
	return Param{Name: name, Doc: doc, Parse: parse}
}
