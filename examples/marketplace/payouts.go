package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// Scenario 4, event sourcing: each seller's payouts are an append-only
// ledger stream in the sqlite event store. Balances are folded from the
// events (replay), loaded from snapshots plus later events, projected into a
// read table by a catch-up subscription, and relayed to the bus through the
// transactional outbox — and all of it agrees after a simulated crash.

const (
	payoutTopic  = "payouts"
	creditedType = "com.example.marketplace.payout.credited"
	feeType      = "com.example.marketplace.payout.fee"
	paidOutType  = "com.example.marketplace.payout.paidout"
)

// payoutRoute sends every ledger event to the payouts topic via the outbox.
func payoutRoute(stream string, e *crossbus.Event) string {
	if strings.HasPrefix(stream, "seller-") {
		return payoutTopic
	}
	return ""
}

// Entry is the data of every ledger event.
type Entry struct {
	Cents int    `json:"cents"`
	Order string `json:"order,omitempty"`
}

// Ledger is a seller's state, folded from the stream.
type Ledger struct {
	Balance  int `json:"balance"`
	Credited int `json:"credited"`
	Fees     int `json:"fees"`
	PaidOut  int `json:"paidOut"`
	Entries  int `json:"entries"`
}

func applyEntry(l Ledger, r sourcing.Record) (Ledger, error) {
	d, err := crossbus.DataAs[Entry](r.Event)
	if err != nil {
		return l, err
	}
	switch r.Event.Type() {
	case creditedType:
		l.Balance += d.Cents
		l.Credited += d.Cents
	case feeType:
		l.Balance -= d.Cents
		l.Fees += d.Cents
	case paidOutType:
		l.Balance -= d.Cents
		l.PaidOut += d.Cents
	default:
		return l, fmt.Errorf("unknown ledger event type %q", r.Event.Type())
	}
	l.Entries++
	return l, nil
}

// PayoutResult is what scenario 4 ended with. Balances are in cents, by
// seller.
type PayoutResult struct {
	Appended   int // ledger events recorded
	Duplicates int // appends skipped because the event id was recorded
	// Expected is what the demo itself added up while appending.
	Expected map[string]int
	// BeforeCrash and the others were read from the store: by full replay,
	// from the snapshot plus later events, and from the projected table.
	BeforeCrash    map[string]int
	Replayed       map[string]int
	FromSnapshot   map[string]int
	Projected      map[string]int
	SnapshotAt     map[string]uint64
	Relayed        int // outbox messages published to the bus
	AccountingSeen int // distinct events the accounting consumer handled
}

var sellers = []string{"anna", "bo", "chen"}

func newLedgerAggregate(db store) *sourcing.Aggregate[Ledger] {
	return &sourcing.Aggregate[Ledger]{Store: db.Events(), Apply: applyEntry, Snapshots: db.Events(), SnapshotEvery: 50, Schema: "ledger-v1"}
}

func ledgerEvent(typ, seller string, e Entry) *crossbus.Event {
	ev := crossbus.NewEvent(typ, "/marketplace/payouts")
	ev.SetSubject("seller-" + seller)
	_ = crossbus.SetData(&ev, e)
	return &ev
}

// reserveCents stays on a seller's balance when it is paid out.
const reserveCents = 5000

// appendEntries appends n ledger entries round-robin over the sellers: sales
// credited, their 10% fee, and every tenth entry a payout of the balance
// above the reserve.
func (a *app) appendEntries(ctx context.Context, agg *sourcing.Aggregate[Ledger], from, n int, expected map[string]int) (int, error) {
	appended := 0
	for i := from; i < from+n; i++ {
		seller := sellers[i%len(sellers)]
		_, res, err := agg.Execute(ctx, "seller-"+seller, func(l Ledger) ([]*crossbus.Event, error) {
			if i%10 == 9 {
				if l.Balance <= reserveCents {
					return nil, nil
				}
				return []*crossbus.Event{ledgerEvent(paidOutType, seller, Entry{Cents: l.Balance - reserveCents})}, nil
			}
			sale := 1000 + (i*37)%9000
			order := fmt.Sprintf("o-%d", 5000+i)
			return []*crossbus.Event{ledgerEvent(creditedType, seller, Entry{Cents: sale, Order: order}),
				ledgerEvent(feeType, seller, Entry{Cents: sale / 10, Order: order})}, nil
		})
		if err != nil {
			return appended, err
		}
		appended += res.Appended
	}
	// The demo's own bookkeeping, from what the store holds now.
	for _, s := range sellers {
		l, err := agg.Replay(ctx, "seller-"+s)
		if err != nil {
			return appended, err
		}
		expected[s] = l.Value.Balance
	}
	return appended, nil
}

// accounting consumes the relayed ledger events, once per event id.
type accounting struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (a *app) payouts(ctx context.Context) (PayoutResult, error) {
	tr := a.trace
	tr.title("4. Event sourcing: seller payouts as an append-only ledger (%d entries)", a.cfg.Events)
	res := PayoutResult{Expected: map[string]int{}, BeforeCrash: map[string]int{}, Replayed: map[string]int{},
		FromSnapshot: map[string]int{}, Projected: map[string]int{}, SnapshotAt: map[string]uint64{}}

	acct := &accounting{seen: map[string]bool{}}
	sub, err := a.bus.Subscribe(ctx, payoutTopic, "accounting", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		acct.mu.Lock()
		acct.seen[e.ID()] = true
		acct.mu.Unlock()
		return nil
	}), crossbus.WithIdempotency(a.db.Idempotency(), crossbus.IdempotencyOptions{}), crossbus.WithConcurrency(4))
	if err != nil {
		return res, err
	}
	defer sub.Close(context.Background())

	// Before the crash: most of the entries, relayed and projected.
	before := a.cfg.Events * 9 / 10
	agg := newLedgerAggregate(a.db)
	n, err := a.appendEntries(ctx, agg, 0, before, res.Expected)
	if err != nil {
		return res, err
	}
	res.Appended += n
	head, _ := a.db.Events().Head(ctx)
	tr.log("ledger", "appended %d events to %d seller streams (global head %d), snapshot every 50 events", n, len(sellers), head)
	relayed, err := (&sourcing.Relay{Outbox: a.db.Events(), Bus: a.bus}).Flush(ctx)
	if err != nil {
		return res, err
	}
	res.Relayed += relayed
	tr.log("outbox", "relayed %d appended events to topic %s (written in the append's transaction)", relayed, payoutTopic)
	projected, err := a.project(ctx, a.db)
	if err != nil {
		return res, err
	}
	tr.log("projection", "seller_balances caught up: %d events from checkpoint", projected)
	for _, s := range sellers {
		res.BeforeCrash[s] = res.Expected[s]
	}

	// A duplicate append: the same event (same id) again is not recorded.
	recs, err := sourcing.Collect(a.db.Events().ReadStream(ctx, "seller-anna", 1))
	if err != nil || len(recs) == 0 {
		return res, fmt.Errorf("read seller-anna: %v", err)
	}
	dup, err := a.db.Events().Append(ctx, "seller-anna", sourcing.Any, recs[0].Event)
	if err != nil {
		return res, err
	}
	res.Duplicates += dup.Duplicates
	tr.log("ledger", "re-appended event %s (a retried write): %d duplicate, %d appended", recs[0].Event.ID(), dup.Duplicates, dup.Appended)

	// More entries, then the crash: no relay, no projection, no Close.
	n, err = a.appendEntries(ctx, agg, before, a.cfg.Events-before, res.Expected)
	if err != nil {
		return res, err
	}
	res.Appended += n
	pending, _ := a.db.Events().PendingOutbox(ctx, 0)
	tr.log("crash", "appended %d more events, then the process dies: %d outbox messages unpublished, projection behind", n, len(pending))
	crashed := a.db
	a.db, err = openStore(ctx, a.cfg)
	if err != nil {
		return res, err
	}
	defer crashed.Close() // the abandoned handle, released at the very end
	tr.log("restart", "reopened %s", a.db.where())

	// After the restart: relay what the crash left, catch the projection up,
	// and rebuild every balance two ways.
	relayed, err = (&sourcing.Relay{Outbox: a.db.Events(), Bus: a.bus}).Flush(ctx)
	if err != nil {
		return res, err
	}
	res.Relayed += relayed
	tr.log("outbox", "relayed %d messages left unpublished by the crash", relayed)
	projected, err = a.project(ctx, a.db)
	if err != nil {
		return res, err
	}
	tr.log("projection", "resumed from its checkpoint: %d events", projected)
	agg = newLedgerAggregate(a.db)
	rows := [][2]string{}
	for _, s := range sellers {
		full, err := agg.Replay(ctx, "seller-"+s)
		if err != nil {
			return res, err
		}
		snap, err := agg.Load(ctx, "seller-"+s)
		if err != nil {
			return res, err
		}
		res.Replayed[s], res.FromSnapshot[s], res.SnapshotAt[s] = full.Value.Balance, snap.Value.Balance, snap.SnapshotVersion
		rows = append(rows, [2]string{"seller-" + s, fmt.Sprintf("replay %s (%d events) | snapshot v%d + %d events %s | projected %s | expected %s",
			euros(full.Value.Balance), full.Replayed, snap.SnapshotVersion, snap.Replayed, euros(snap.Value.Balance),
			euros(0), euros(res.Expected[s]))})
	}
	if err := a.readProjection(ctx, res.Projected); err != nil {
		return res, err
	}
	for i, s := range sellers {
		rows[i][1] = strings.Replace(rows[i][1], "projected "+euros(0), "projected "+euros(res.Projected[s]), 1)
	}
	// Wait for the relayed events to reach accounting, then drain.
	for {
		acct.mu.Lock()
		res.AccountingSeen = len(acct.seen)
		acct.mu.Unlock()
		if res.AccountingSeen >= res.Appended {
			break
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("accounting saw %d of %d events: %w", res.AccountingSeen, res.Appended, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := sub.Close(ctx); err != nil {
		return res, err
	}
	rows = append(rows, [2]string{"outbox", fmt.Sprintf("%d relayed, %d distinct events reached accounting", res.Relayed, res.AccountingSeen)})
	tr.table(rows)
	return res, nil
}

// project catches the seller_balances table up with the ledger. Each event
// updates the row only if the row has not seen its position yet, so an event
// handled again after a crash (between the update and the checkpoint) is not
// counted twice.
func (a *app) project(ctx context.Context, db store) (int, error) {
	p := &sourcing.Projector{Name: "seller-balances", Store: db.Events(), Checkpoints: db.Events(), CheckpointEvery: 100,
		Handle: func(ctx context.Context, r sourcing.Record) error {
			d, err := crossbus.DataAs[Entry](r.Event)
			if err != nil {
				return err
			}
			delta := d.Cents
			if r.Event.Type() != creditedType {
				delta = -delta
			}
			return db.addBalance(ctx, strings.TrimPrefix(r.Stream, "seller-"), delta, r.Position)
		}}
	return p.CatchUp(ctx)
}

func (a *app) readProjection(ctx context.Context, into map[string]int) error {
	b, err := a.db.balances(ctx)
	for seller, cents := range b {
		into[seller] = cents
	}
	return err
}
