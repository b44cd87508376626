package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/postgres"
	"github.com/crossbus/crossbus/stores/sqlite"
)

// events is what the demo needs of an event store.
type events interface {
	sourcing.Store
	sourcing.SnapshotStore
	sourcing.CheckpointStore
	sourcing.Outbox
}

// store is the demo's durable state: the sqlite file (the embedded
// default) or a PostgreSQL schema. Both keep every crossbus store; the
// projection's own table needs a line of SQL in each dialect.
type store interface {
	Idempotency() crossbus.IdempotencyStore
	Chains() chain.Store
	Events() events
	// Archive keeps the events published to archived topics (for replay).
	Archive() ops.ArchiveStore
	// addBalance applies a ledger entry to the seller_balances projection
	// unless the row has seen its position already.
	addBalance(ctx context.Context, seller string, delta int, position uint64) error
	balances(ctx context.Context) (map[string]int, error)
	Close() error
	// where says where the state is, for the trace.
	where() string
}

// openStore opens the state the config names, creating the projection's
// table.
func openStore(ctx context.Context, cfg Config) (store, error) {
	var s store
	if strings.HasPrefix(cfg.Store, "postgres://") || strings.HasPrefix(cfg.Store, "postgresql://") {
		db, err := postgres.Open(ctx, cfg.Store, postgres.Options{Schema: cfg.Schema, Outbox: payoutRoute})
		if err != nil {
			return nil, err
		}
		s = &pgStore{db: db}
		_, err = db.Pool().Exec(ctx, `CREATE TABLE IF NOT EXISTS `+pgx.Identifier{cfg.Schema, "seller_balances"}.Sanitize()+` (
			seller text PRIMARY KEY, cents bigint NOT NULL, position bigint NOT NULL)`)
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		return s, nil
	}
	if cfg.Store != "" {
		return nil, fmt.Errorf("-store %q: only postgres:// URLs are supported", cfg.Store)
	}
	db, err := sqlite.Open(ctx, cfg.DBPath, sqlite.Options{Outbox: payoutRoute})
	if err != nil {
		return nil, err
	}
	if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE IF NOT EXISTS seller_balances (
		seller TEXT PRIMARY KEY, cents INTEGER NOT NULL, position INTEGER NOT NULL)`); err != nil {
		_ = db.Close()
		return nil, err
	}
	return &sqliteStore{db: db}, nil
}

type sqliteStore struct{ db *sqlite.DB }

func (s *sqliteStore) Idempotency() crossbus.IdempotencyStore { return s.db.Idempotency() }
func (s *sqliteStore) Chains() chain.Store                    { return s.db.Chains() }
func (s *sqliteStore) Events() events                         { return s.db.Events() }
func (s *sqliteStore) Archive() ops.ArchiveStore              { return s.db.Archive() }
func (s *sqliteStore) Close() error                           { return s.db.Close() }
func (s *sqliteStore) where() string {
	return fmt.Sprintf("%s (sqlite schema v%d)", s.db.Path(), sqlite.SchemaVersion())
}

func (s *sqliteStore) addBalance(ctx context.Context, seller string, delta int, position uint64) error {
	return s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO seller_balances (seller, cents, position) VALUES (?, ?, ?)
			ON CONFLICT (seller) DO UPDATE SET cents = cents + excluded.cents, position = excluded.position
			WHERE seller_balances.position < excluded.position`, seller, delta, position)
		return err
	})
}

func (s *sqliteStore) balances(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT seller, cents FROM seller_balances`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var seller string
		var cents int
		if err := rows.Scan(&seller, &cents); err != nil {
			return nil, err
		}
		out[seller] = cents
	}
	return out, rows.Err()
}

type pgStore struct{ db *postgres.DB }

func (s *pgStore) Idempotency() crossbus.IdempotencyStore { return s.db.Idempotency() }
func (s *pgStore) Chains() chain.Store                    { return s.db.Chains() }
func (s *pgStore) Events() events                         { return s.db.Events() }
func (s *pgStore) Archive() ops.ArchiveStore              { return s.db.Archive() }
func (s *pgStore) Close() error                           { return s.db.Close() }
func (s *pgStore) where() string {
	return fmt.Sprintf("PostgreSQL schema %q (schema v%d)", s.db.Schema(), postgres.SchemaVersion())
}

func (s *pgStore) table() string { return pgx.Identifier{s.db.Schema(), "seller_balances"}.Sanitize() }

func (s *pgStore) addBalance(ctx context.Context, seller string, delta int, position uint64) error {
	_, err := s.db.Pool().Exec(ctx, `INSERT INTO `+s.table()+` AS b (seller, cents, position) VALUES ($1, $2, $3)
		ON CONFLICT (seller) DO UPDATE SET cents = b.cents + excluded.cents, position = excluded.position
		WHERE b.position < excluded.position`, seller, delta, int64(position))
	return err
}

func (s *pgStore) balances(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT seller, cents FROM `+s.table())
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	var seller string
	var cents int64
	_, err = pgx.ForEachRow(rows, []any{&seller, &cents}, func() error {
		out[seller] = int(cents)
		return nil
	})
	return out, err
}

// dropSchema removes a schema the demo created for its run.
func dropSchema(ctx context.Context, url, schema string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	return err
}
