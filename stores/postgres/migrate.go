package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/crossbus/crossbus/internal/sqlmigrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations returns the embedded migrations in version order.
func migrations() ([]sqlmigrate.Migration, error) {
	ms, err := sqlmigrate.Load(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return ms, nil
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
		pending, err := sqlmigrate.Pending(ms, have)
		if err != nil {
			return err
		}
		for _, m := range pending {
			if _, err := tx.Exec(ctx, db.q(m.SQL)); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, db.q(`INSERT INTO §schema_migrations (version, name) VALUES ($1, $2)`), m.Version, m.Name); err != nil {
				return fmt.Errorf("record migration %d: %w", m.Version, err)
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
