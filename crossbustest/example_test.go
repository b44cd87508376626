package crossbustest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/crossbustest"
)

// welcome is a small service under test: on a sign-up it sends a welcome
// e-mail through its mailer and publishes welcome.sent. It builds its own
// router on whatever bus it is given.
type welcome struct {
	router *crossbus.Router
	bus    *crossbus.Bus
	mail   mailer
}

type mailer interface{ Send(to string) error }

type signup struct {
	User  string `json:"user"`
	Email string `json:"email"`
}

func newWelcome(bus *crossbus.Bus, m mailer) (*welcome, error) {
	r, err := crossbus.NewRouter(bus)
	if err != nil {
		return nil, err
	}
	w := &welcome{router: r, bus: bus, mail: m}
	err = r.Handle("signups", "welcome", crossbus.Typed(w.handle),
		crossbus.WithFilter(crossbus.TypeIs("com.example.user.signedup")),
		crossbus.WithRetry(crossbus.RetryPolicy{MaxAttempts: 5}), // 1s, 2s, 4s, 8s backoff
		crossbus.WithIdempotency(crossbus.NewMemoryIdempotencyStore(0), crossbus.IdempotencyOptions{}))
	return w, err
}

func (w *welcome) handle(ctx context.Context, e *crossbus.Event, s signup) error {
	if s.Email == "" {
		return crossbus.Permanent(errors.New("no e-mail address"))
	}
	if err := w.mail.Send(s.Email); err != nil {
		return err // retried with backoff
	}
	sent := crossbus.NewEvent("com.example.welcome.sent", "/welcome")
	sent.SetSubject(s.User)
	return w.bus.Publish(ctx, "welcome-sent", &sent)
}

// flakyMailer fails its first calls.
type flakyMailer struct {
	mu    sync.Mutex
	fails int
	sent  []string
}

func (m *flakyMailer) Send(to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fails > 0 {
		m.fails--
		return errors.New("smtp: 421 try again later")
	}
	m.sent = append(m.sent, to)
	return nil
}

func signedUp(user, email string) *crossbus.Event {
	e := crossbus.NewEvent("com.example.user.signedup", "/accounts")
	_ = crossbus.SetData(&e, signup{User: user, Email: email})
	return &e
}

// A service's retries run on the kit's fake clock: three failures with
// backoffs of 1s, 2s and 4s take no real time, and the kit's waits move the
// clock on while the service waits.
func Example() {
	ctx := context.Background()
	kit, err := crossbustest.Open()
	if err != nil {
		panic(err)
	}
	defer kit.Close(ctx)

	mail := &flakyMailer{fails: 3}
	svc, err := newWelcome(kit.Bus(), mail)
	if err != nil {
		panic(err)
	}
	go svc.router.Run(ctx)
	<-svc.router.Ready()

	start := kit.Clock().Now()
	if err := kit.Bus().Publish(ctx, "signups", signedUp("ada", "ada@example.com")); err != nil {
		panic(err)
	}
	sent, err := kit.AwaitPublished(ctx, "welcome-sent", crossbus.TypeIs("com.example.welcome.sent"))
	if err != nil {
		panic(err)
	}
	if err := kit.AwaitIdle(ctx); err != nil {
		panic(err)
	}
	fmt.Println("welcome sent to", sent.Event.Subject())
	for _, h := range kit.Handlings("welcome") {
		fmt.Printf("attempt %d: ok=%v\n", h.Attempt, h.OK())
	}
	// 1s + 2s + 4s of backoff, less the 20% jitter at most.
	fmt.Println("fake time passed, at least 5.6s:", sent.At.Sub(start) >= 5600*time.Millisecond)
	// Output:
	// welcome sent to ada
	// attempt 1: ok=false
	// attempt 2: ok=false
	// attempt 3: ok=false
	// attempt 4: ok=true
	// fake time passed, at least 5.6s: true
}

// A dead letter is found where the service gave up, with its reason.
func ExampleKit_DeadLetters() {
	ctx := context.Background()
	kit, err := crossbustest.Open()
	if err != nil {
		panic(err)
	}
	defer kit.Close(ctx)
	svc, err := newWelcome(kit.Bus(), &flakyMailer{})
	if err != nil {
		panic(err)
	}
	go svc.router.Run(ctx)
	<-svc.router.Ready()

	_ = kit.Bus().Publish(ctx, "signups", signedUp("bo", ""), signedUp("chen", "chen@example.com"))
	if err := kit.AwaitIdle(ctx); err != nil {
		panic(err)
	}
	for _, d := range kit.DeadLetters("welcome") {
		s, _ := crossbus.DataAs[signup](&d.Event)
		fmt.Printf("%s dead-lettered after %d attempt(s): %s\n", s.User, d.Info.Attempts, d.Info.Reason)
	}
	fmt.Println("welcome.sent events:", len(kit.Published("welcome-sent")))
	// Output:
	// bo dead-lettered after 1 attempt(s): permanent: no e-mail address
	// welcome.sent events: 1
}

// In a test, New binds the kit to t: it closes with the test, and the Wait
// and Assert methods fail the test with a report of what happened.
func TestWelcomeService(t *testing.T) {
	t.Parallel()
	kit := crossbustest.New(t)
	mail := &flakyMailer{fails: 1}
	svc, err := newWelcome(kit.Bus(), mail)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go svc.router.Run(ctx)
	<-svc.router.Ready()

	dup := signedUp("ada", "ada@example.com")
	if err := kit.Bus().Publish(ctx, "signups", dup, dup, signedUp("bo", "")); err != nil {
		t.Fatal(err)
	}
	kit.WaitHandled("welcome", crossbus.Field("data", "user").Equals("ada"))
	kit.WaitIdle()
	kit.AssertDeadLettered("welcome", crossbus.Field("data", "user").Equals("bo"), "no e-mail address")
	if got := len(kit.Published("welcome-sent")); got != 1 {
		t.Errorf("welcome.sent published %d times, want once (the duplicate sign-up is skipped)", got)
	}
	if len(mail.sent) != 1 {
		t.Errorf("mails sent: %v, want one", mail.sent)
	}
}
