//go:build unix

package postgres_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/stores/postgres"
)

const (
	inboxSchemaEnv = "CROSSBUS_PG_INBOX_SCHEMA" // the schema the child works in
	inboxPlanEnv   = "CROSSBUS_PG_INBOX_PLAN"   // "in-handler" or "after-commit"
	inboxLease     = 500 * time.Millisecond
)

// TestInboxCrashHelper is not a test on its own: TestInboxCrashWithSIGKILL
// runs the test binary again with inboxSchemaEnv set, and this function
// then claims the key "ev-1", writes its effect through the inbox
// transaction and kills its own process with SIGKILL where the plan says.
func TestInboxCrashHelper(t *testing.T) {
	schema := os.Getenv(inboxSchemaEnv)
	if schema == "" {
		t.Skip("child process of TestInboxCrashWithSIGKILL; runs only when " + inboxSchemaEnv + " is set")
	}
	ctx := context.Background()
	db, err := postgres.Open(ctx, serverURL(t), postgres.Options{Schema: schema})
	require.NoError(t, err)
	in := db.Idempotency()
	c, err := in.Begin(ctx, "ev-1", inboxLease)
	require.NoError(t, err)
	require.Equal(t, crossbus.ClaimNew, c.Status)
	plan := os.Getenv(inboxPlanEnv)
	err = in.CompleteInTx(ctx, "ev-1", c.Token, time.Hour, func(ctx context.Context) error {
		tx, _ := postgres.TxFrom(ctx)
		if _, err := tx.Exec(ctx, `INSERT INTO `+table(db, "effects")+` (key) VALUES ('ev-1')`); err != nil {
			return err
		}
		if plan == "in-handler" {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL) // written, not committed
			time.Sleep(time.Hour)
		}
		return nil
	})
	require.NoError(t, err)
	// Committed; the broker never hears the acknowledgement.
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	time.Sleep(time.Hour)
}

// TestInboxCrashWithSIGKILL kills a process inside a transactional
// handler, after its write and before the commit, and another right after
// the commit: the first leaves no effect and a claim that runs out after
// its lease, so the redelivery applies the event once; the second leaves
// the effect and the key completed, so the redelivery is acknowledged
// without running the handler.
func TestInboxCrashWithSIGKILL(t *testing.T) {
	for _, plan := range []string{"in-handler", "after-commit"} {
		t.Run(plan, func(t *testing.T) {
			ctx := context.Background()
			db := openDB(t, postgres.Options{})
			_, err := db.Pool().Exec(ctx, `CREATE TABLE `+table(db, "effects")+` (key text NOT NULL)`)
			require.NoError(t, err)
			cmd := exec.Command(os.Args[0], "-test.run=^TestInboxCrashHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), inboxSchemaEnv+"="+db.Schema(), inboxPlanEnv+"="+plan)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "the child should die by SIGKILL: %v\n%s", err, out)
			ws, _ := ee.Sys().(syscall.WaitStatus)
			require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the child should die by SIGKILL: %v\n%s", err, out)

			effects := func() int {
				var n int
				require.NoError(t, db.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM `+table(db, "effects")).Scan(&n))
				return n
			}
			in := db.Idempotency()
			redeliver := func() crossbus.ClaimStatus {
				c, err := in.Begin(ctx, "ev-1", time.Minute)
				require.NoError(t, err)
				if c.Status == crossbus.ClaimNew {
					require.NoError(t, in.CompleteInTx(ctx, "ev-1", c.Token, time.Hour, func(ctx context.Context) error {
						tx, _ := postgres.TxFrom(ctx)
						_, err := tx.Exec(ctx, `INSERT INTO `+table(db, "effects")+` (key) VALUES ('ev-1')`)
						return err
					}))
				}
				return c.Status
			}
			switch plan {
			case "in-handler":
				assert.Equal(t, 0, effects(), "the handler's write rolled back with the connection")
				assert.Equal(t, crossbus.ClaimInProgress, redeliver(), "the dead consumer's claim holds until its lease ends")
				time.Sleep(inboxLease + 100*time.Millisecond)
				assert.Equal(t, crossbus.ClaimNew, redeliver(), "then the redelivery runs the handler")
			case "after-commit":
				assert.Equal(t, 1, effects(), "the committed effect survived")
				assert.Equal(t, crossbus.ClaimCompleted, redeliver(), "the redelivery finds the event handled")
			}
			assert.Equal(t, 1, effects(), "applied exactly once")
		})
	}
}
