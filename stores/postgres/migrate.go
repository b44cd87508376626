package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. Files are
// named NNNN_name.sql.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations are not numbered 1..n: found %d at index %d", m.version, i)
		}
	}
	return out, nil
}

// SchemaVersion is the schema version this package writes.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// tables are the store's tables, checked at Open.
var tables = []string{"schema_migrations", "idempotency", "streams", "head", "events", "snapshots",
	"checkpoints", "outbox", "chain_instances", "chain_steps", "leases", "sequences"}

// migrate brings the schema up to date in one transaction, under a
// transaction-scoped advisory lock keyed by the schema name: replicas that
// start together queue on the lock, and each after the first finds the
// migrations applied. PostgreSQL's DDL is transactional, so a migration
// that fails leaves nothing behind.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if db.opts.NoMigrate {
		return db.checkSchema(ctx, len(ms))
	}
	err = db.writeTx(ctx, "migrate", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('crossbus.migrate.' || $1, 0))`, db.opts.Schema); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+db.schema); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		if _, err := tx.Exec(ctx, db.q(`CREATE TABLE IF NOT EXISTS §schema_migrations (
			version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())`)); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var have int
		if err := tx.QueryRow(ctx, db.q(`SELECT COALESCE(MAX(version), 0) FROM §schema_migrations`)).Scan(&have); err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if have > len(ms) {
			return fmt.Errorf("the database schema is at version %d, newer than this package's %d; upgrade the program", have, len(ms))
		}
		for _, m := range ms[have:] {
			if _, err := tx.Exec(ctx, db.q(m.sql)); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, db.q(`INSERT INTO §schema_migrations (version, name) VALUES ($1, $2)`), m.version, m.name); err != nil {
				return fmt.Errorf("record migration %d: %w", m.version, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.checkTables(ctx)
}

// checkSchema refuses a schema that is not at version want.
func (db *DB) checkSchema(ctx context.Context, want int) error {
	var have int
	err := db.pool.QueryRow(ctx, db.q(`SELECT COALESCE(MAX(version), 0) FROM §schema_migrations`)).Scan(&have)
	if isUndefinedTable(err) {
		return fmt.Errorf("no crossbus tables (schema_migrations is missing); open once without NoMigrate, with a role that may create them")
	}
	if err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	switch {
	case have > want:
		return fmt.Errorf("the database schema is at version %d, newer than this package's %d; upgrade the program", have, want)
	case have < want:
		return fmt.Errorf("the database schema is at version %d, older than this package's %d, and NoMigrate is set", have, want)
	}
	return db.checkTables(ctx)
}

// checkTables refuses a schema that misses one of the store's tables
// (dropped by hand, or a half-restored backup).
func (db *DB) checkTables(ctx context.Context) error {
	var missing []string
	for _, t := range tables {
		var ok bool
		if err := db.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, db.schema+"."+t).Scan(&ok); err != nil {
			return fmt.Errorf("check table %s: %w", t, err)
		}
		if !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: table(s) %s missing although the schema records its migrations; the schema was changed outside crossbus",
			errSchemaDamaged, strings.Join(missing, ", "))
	}
	return nil
}

var errSchemaDamaged = errors.New("schema damaged")

func isUndefinedTable(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "42P01"
}
