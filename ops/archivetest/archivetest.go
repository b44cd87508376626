// Package archivetest checks an ops.ArchiveStore: Run proves, against a new
// empty store for each check, what package ops relies on.
package archivetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
)

// Run runs every check; mk returns a new, empty store.
func Run(t *testing.T, mk func(t *testing.T) ops.ArchiveStore) {
	t.Run("AppendScanCountInOrder", func(t *testing.T) { testAppendScan(t, mk(t)) })
	t.Run("TrimByAgeAndSize", func(t *testing.T) { testTrim(t, mk(t)) })
	t.Run("ReplayStateRoundTrip", func(t *testing.T) { testReplays(t, mk(t)) })
}

func event(i int) crossbus.Event {
	e := crossbus.NewEvent("com.example.archived", "/archivetest")
	e.SetExtension("n", int32(i))
	_ = crossbus.SetData(&e, map[string]int{"n": i})
	return e
}

func appendN(t *testing.T, s ops.ArchiveStore, topic string, start time.Time, n int) {
	t.Helper()
	recs := make([]ops.ArchivedEvent, n)
	for i := range recs {
		recs[i] = ops.ArchivedEvent{Topic: topic, Time: start.Add(time.Duration(i) * time.Second), Event: event(i)}
	}
	if err := s.Append(context.Background(), recs); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func testAppendScan(t *testing.T, s ops.ArchiveStore) {
	ctx := context.Background()
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	appendN(t, s, "orders", base, 10)
	appendN(t, s, "other", base, 3)
	all, err := s.Scan(ctx, ops.ArchiveQuery{Topic: "orders"})
	if err != nil || len(all) != 10 {
		t.Fatalf("Scan all: %d events, %v", len(all), err)
	}
	for i, a := range all {
		if i > 0 && a.Seq <= all[i-1].Seq {
			t.Fatalf("Seq not increasing at %d", i)
		}
		if got := crossbus.ExtensionString(&a.Event, "n"); got != fmt.Sprint(i) {
			t.Fatalf("event %d: n = %q", i, got)
		}
		if !a.Time.Equal(base.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("event %d: time %v", i, a.Time)
		}
		if a.Topic != "orders" || a.Event.ID() == "" || len(a.Event.Data()) == 0 {
			t.Fatalf("event %d lost its topic, id or data: %+v", i, a)
		}
	}
	q := ops.ArchiveQuery{Topic: "orders", From: base.Add(2 * time.Second), To: base.Add(7 * time.Second)}
	n, err := s.Count(ctx, q)
	if err != nil || n != 5 {
		t.Fatalf("Count [2s,7s): %d, %v", n, err)
	}
	q.AfterSeq, q.Limit = all[3].Seq, 2
	page, err := s.Scan(ctx, q)
	if err != nil || len(page) != 2 || page[0].Seq != all[4].Seq || page[1].Seq != all[5].Seq {
		t.Fatalf("Scan after seq with limit: %+v, %v", page, err)
	}
	stats, err := s.Stats(ctx)
	if err != nil || len(stats) != 2 || stats[0].Topic != "orders" || stats[0].Events != 10 || stats[0].Bytes <= 0 {
		t.Fatalf("Stats: %+v, %v", stats, err)
	}
}

func testTrim(t *testing.T, s ops.ArchiveStore) {
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).UTC()
	appendN(t, s, "orders", base, 10)
	n, err := s.Trim(ctx, base.Add(4*time.Second), 0)
	if err != nil || n != 4 {
		t.Fatalf("Trim by age: deleted %d, %v", n, err)
	}
	stats, _ := s.Stats(ctx)
	per := stats[0].Bytes / stats[0].Events
	n, err = s.Trim(ctx, time.Time{}, per*3+per/2)
	if err != nil || n != 3 {
		t.Fatalf("Trim by size: deleted %d, %v", n, err)
	}
	left, _ := s.Scan(ctx, ops.ArchiveQuery{Topic: "orders"})
	if len(left) != 3 || crossbus.ExtensionString(&left[0].Event, "n") != "7" {
		t.Fatalf("the newest three stay: %d left", len(left))
	}
	appendN(t, s, "orders", base, 1)
	after, _ := s.Scan(ctx, ops.ArchiveQuery{Topic: "orders"})
	if after[len(after)-1].Seq <= left[len(left)-1].Seq {
		t.Fatal("Seq went back after a trim")
	}
}

func testReplays(t *testing.T, s ops.ArchiveStore) {
	ctx := context.Background()
	if _, err := s.LoadReplay(ctx, "replay-none"); !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("LoadReplay of an unknown replay: %v, want ErrNotFound", err)
	}
	st := ops.ReplayState{ReplayRequest: ops.ReplayRequest{ID: "replay-a", Topic: "orders", Rate: 5,
		From: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)},
		Status: ops.ReplayRunning, AfterSeq: 7, Published: 3, Started: time.Now().UTC()}
	if err := s.SaveReplay(ctx, st); err != nil {
		t.Fatal(err)
	}
	st.AfterSeq, st.Status = 9, ops.ReplayDone
	if err := s.SaveReplay(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadReplay(ctx, "replay-a")
	if err != nil || got.AfterSeq != 9 || got.Status != ops.ReplayDone || got.Topic != "orders" || !got.From.Equal(st.From) {
		t.Fatalf("LoadReplay: %+v, %v", got, err)
	}
	list, err := s.Replays(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("Replays: %+v, %v", list, err)
	}
}
