//go:build unix

package postgres_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/postgres"
)

const (
	relaySchemaEnv = "CROSSBUS_PG_RELAY_SCHEMA" // the schema the replica relays
	relayNameEnv   = "CROSSBUS_PG_RELAY_NAME"   // the replica's holder name
	relayKillTTL   = time.Second
	relayKillBatch = 20
)

// tableBus is a publisher that records each published event in a table,
// so a parent process sees what its children published, and when.
type tableBus struct {
	db   *postgres.DB
	name string
}

func (b *tableBus) Publish(ctx context.Context, topic string, events ...*crossbus.Event) error {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID()
	}
	_, err := b.db.Pool().Exec(ctx, `INSERT INTO `+table(b.db, "published")+` (event_id, relay) SELECT unnest($1::text[]), $2`, ids, b.name)
	return err
}

// TestRelayReplicaHelper is not a test on its own: TestRelayLeaderKilledBySIGKILL
// runs the test binary again with relaySchemaEnv set, and this function
// then relays the schema's outbox as one replica until it is killed.
func TestRelayReplicaHelper(t *testing.T) {
	schema := os.Getenv(relaySchemaEnv)
	if schema == "" {
		t.Skip("replica process of TestRelayLeaderKilledBySIGKILL; runs only when " + relaySchemaEnv + " is set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema, MaxConns: 4})
	require.NoError(t, err)
	defer db.Close()
	name := os.Getenv(relayNameEnv)
	relay := &sourcing.Relay{Outbox: db.Events(), Bus: &tableBus{db: db, name: name}, BatchSize: relayKillBatch,
		PollInterval: 50 * time.Millisecond, Leader: db.Leases(),
		LeaderOptions: leader.Options{Holder: name, TTL: relayKillTTL}}
	require.NoError(t, relay.Run(ctx))
}

// TestRelayLeaderKilledBySIGKILL runs two relay replicas as processes on
// one outbox while events are appended, and kills the leader with SIGKILL.
// The other replica takes over within the lease's TTL plus its retry
// interval; every event is published; the only events published by both
// are those of the batch the killed leader had published and not yet
// marked sent (at most one batch), the at-least-once duplicates that
// consumers skip by event id.
func TestRelayLeaderKilledBySIGKILL(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	db, err := postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema, Outbox: sourcing.ToTopic("payouts")})
	require.NoError(t, err)
	defer db.Close()
	published := table(db, "published")
	_, err = db.Pool().Exec(ctx, `CREATE TABLE `+published+` (event_id text NOT NULL, relay text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`)
	require.NoError(t, err)

	start := func(name string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRelayReplicaHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), relaySchemaEnv+"="+schema, relayNameEnv+"="+name)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("replica %s output:\n%s", name, out.String())
			}
		})
		return cmd
	}
	holder := func() string {
		var h string
		_ = db.Pool().QueryRow(ctx, `SELECT holder FROM `+table(db, "leases")+` WHERE name = 'crossbus-outbox-relay' AND expires > now()`).Scan(&h)
		return h
	}
	waitFor := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		require.Eventually(t, cond, within, 20*time.Millisecond, "timed out waiting for %s", what)
	}
	count := func(q string, args ...any) int {
		var n int
		require.NoError(t, db.Pool().QueryRow(ctx, q, args...).Scan(&n))
		return n
	}

	a := start("a")
	waitFor("replica a to lead", 30*time.Second, func() bool { return holder() == "a" })
	start("b")

	const total = 600
	appended := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			e := crossbus.NewEvent("payout.credited", "/kill-test")
			e.SetID(fmt.Sprintf("ev-%04d", i))
			if _, err := db.Events().Append(ctx, fmt.Sprintf("seller-%d", i%4), sourcing.Any, &e); err != nil {
				appended <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		appended <- nil
	}()
	waitFor("a to publish 150 events", 30*time.Second, func() bool {
		return count(`SELECT COUNT(*) FROM `+published+` WHERE relay = 'a'`) >= 150
	})
	require.NoError(t, a.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	_ = a.Wait()

	waitFor("b to take over", 10*time.Second, func() bool {
		return count(`SELECT COUNT(*) FROM `+published+` WHERE relay = 'b'`) > 0
	})
	handOver := time.Since(killed)
	require.NoError(t, <-appended)
	waitFor("every event to be published", 30*time.Second, func() bool {
		return count(`SELECT COUNT(DISTINCT event_id) FROM `+published) == total
	})
	waitFor("every message to be marked sent", 10*time.Second, func() bool {
		pending, err := db.Events().PendingOutbox(ctx, 10)
		return err == nil && len(pending) == 0
	})

	assert.Less(t, handOver, relayKillTTL+relayKillTTL/3+time.Second, "hand-over within ttl + retry interval (+ scheduling slack)")
	dups := count(`SELECT COUNT(*) FROM (SELECT event_id FROM ` + published + ` GROUP BY event_id HAVING COUNT(*) > 1) d`)
	twice := count(`SELECT COUNT(*) FROM (SELECT event_id FROM ` + published + ` GROUP BY event_id HAVING COUNT(DISTINCT relay) = 2) d`)
	more := count(`SELECT COUNT(*) FROM (SELECT event_id FROM ` + published + ` GROUP BY event_id HAVING COUNT(*) > 2) d`)
	assert.Zero(t, more, "no event published more than twice")
	assert.Equal(t, dups, twice, "every duplicate is one publish by a and one by b")
	assert.LessOrEqual(t, dups, relayKillBatch, "only the batch a published and had not marked went out twice")
	// A statement the replica sent just before it died can still commit on
	// the server a moment later (the server finishes it alone), so what
	// counts is that nothing of a's lands once that could have drained.
	aAfter := count(`SELECT COUNT(*) FROM `+published+` WHERE relay = 'a' AND at > $1`, killed.Add(time.Second))
	assert.Zero(t, aAfter, "the killed replica published nothing after its death")
	t.Logf("%d events; hand-over %v after SIGKILL; %d published twice (a's batch in flight, published but not marked sent, when it died)",
		total, handOver.Round(time.Millisecond), dups)
}
