package attempts

import (
	"fmt"
	"testing"
)

func TestCounterCountsFailuresForgetsAndStaysBounded(t *testing.T) {
	c := New(3)
	for want := 1; want <= 3; want++ {
		if got := c.Attempt("a"); got != want {
			t.Fatalf("attempt %d of a: got %d", want, got)
		}
		c.Failed("a")
	}
	if c.Attempt("fresh") != 1 || c.Len() != 1 {
		t.Fatalf("a first delivery is attempt 1 and records nothing (len %d)", c.Len())
	}
	c.Forget("a")
	if got := c.Attempt("a"); got != 1 {
		t.Fatalf("after Forget a starts again at 1, got %d", got)
	}
	for _, k := range []string{"a", "b", "c", "d"} { // d is over the limit: a goes
		c.Failed(k)
	}
	if c.Len() != 3 {
		t.Fatalf("holds %d keys, want 3", c.Len())
	}
	if got := c.Attempt("a"); got != 1 {
		t.Fatalf("evicted key a restarts at 1, got %d", got)
	}
	if got := c.Attempt("d"); got != 2 {
		t.Fatalf("d is still counted: got %d", got)
	}
}

func TestForgottenKeysDoNotAccumulate(t *testing.T) {
	c := New(10)
	for i := 0; i < 10_000; i++ {
		k := fmt.Sprint(i)
		c.Failed(k)
		c.Forget(k)
	}
	c.mu.Lock()
	n := len(c.order)
	c.mu.Unlock()
	if n > 2*10+64 {
		t.Fatalf("order holds %d stale keys; Forget must compact it", n)
	}
	if c.Len() != 0 {
		t.Fatalf("counts %d keys, want 0", c.Len())
	}
}
