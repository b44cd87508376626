package dynamodb

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// EventStore is a sourcing.Store, SnapshotStore and CheckpointStore in one
// DynamoDB table with keys pk and sk. The package documentation describes
// its items and how an append is recorded and then published to the global
// order without transactions.
type EventStore struct {
	c       API
	table   string
	now     func() time.Time
	logTurn chan struct{} // the turn at the global log: see Append
}

var (
	_ sourcing.Store           = (*EventStore)(nil)
	_ sourcing.SnapshotStore   = (*EventStore)(nil)
	_ sourcing.CheckpointStore = (*EventStore)(nil)
)

// NewEventStore returns the event store in table, which must exist
// (CreateTables makes it).
func NewEventStore(ctx context.Context, client API, table string) (*EventStore, error) {
	if err := checkTable(ctx, client, "event", table, hashRange); err != nil {
		return nil, err
	}
	return &EventStore{c: client, table: table, now: time.Now, logTurn: make(chan struct{}, 1)}, nil
}

// Item keys and attributes of the event table.
const (
	logPK        = "log"      // the global log's partition
	snapshotSK   = "snapshot" // a stream's snapshot
	checkpointSK = "checkpoint"

	commitPrefix = "c:" // commit sort keys: c: + padded first version
	commitEnd    = "c;" // sorts after every commit key

	attrVersion  = "v"   // commit, log entry: first version
	attrCount    = "n"   // commit, log entry: number of events
	attrEvents   = "ev"  // commit: the events, a JSON array of CloudEvents
	attrRecorded = "at"  // commit: when it was written, Unix nanoseconds
	attrPos      = "pos" // commit: its claimed first position; checkpoint: the position
	attrOK       = "ok"  // commit: published (in the log, markers written)
	attrStream   = "s"   // log entry: the commit's partition key
)

// maxCommitBytes bounds an append's events (JSON) so the commit item stays
// under DynamoDB's 400 KB item limit with its other attributes.
const maxCommitBytes = 390 << 10

func streamKey(stream string) string { return keyName("s", stream, maxPartitionKey) }

func commitSK(version uint64) string { return commitPrefix + pad(version) }

// commit is one Append's item: events at versions version..version+n-1,
// at positions pos..pos+n-1 once published.
type commit struct {
	pk       string
	version  uint64
	n        uint64
	pos      uint64
	ok       bool
	recorded int64
	events   []byte   // JSON array; nil when not read
	ids      []string // the events' ids, for the dedupe markers
}

func (c *commit) end() uint64 { return c.version + c.n - 1 }

func (c *commit) key() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: attrS(c.pk), attrSK: attrS(commitSK(c.version))}
}

// parseCommit reads a commit item (events and ids only when present).
func parseCommit(item map[string]types.AttributeValue) (*commit, error) {
	pk, err := getS(item, attrPK)
	if err != nil {
		return nil, err
	}
	c := &commit{pk: pk, ok: getBool(item, attrOK)}
	if c.version, err = getN(item, attrVersion); err != nil {
		return nil, err
	}
	if c.n, err = getN(item, attrCount); err != nil {
		return nil, err
	}
	if c.pos, err = getN(item, attrPos); err != nil {
		return nil, err
	}
	if c.recorded, err = getI(item, attrRecorded); err != nil {
		return nil, err
	}
	if ev, ok := item[attrEvents]; ok {
		s, ok := ev.(*types.AttributeValueMemberS)
		if !ok {
			return nil, fmt.Errorf("%w: %s is %T", errAttr, attrEvents, ev)
		}
		c.events = []byte(s.Value)
	}
	if c.version == 0 || c.n == 0 {
		return nil, fmt.Errorf("%w: commit %s has version %d and %d events", errAttr, pk, c.version, c.n)
	}
	return c, nil
}

// eventIDs reads the ids of a commit's events.
func (c *commit) eventIDs() ([]string, error) {
	if c.ids != nil {
		return c.ids, nil
	}
	var evs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(c.events, &evs); err != nil {
		return nil, fmt.Errorf("dynamodb: commit %s at version %d: events: %w", c.pk, c.version, err)
	}
	c.ids = make([]string, len(evs))
	for i, e := range evs {
		c.ids[i] = e.ID
	}
	return c.ids, nil
}

// Append implements sourcing.Store.
func (s *EventStore) Append(ctx context.Context, stream string, expected sourcing.Expected, events ...*crossbus.Event) (sourcing.AppendResult, error) {
	if err := sourcing.ValidateAppend(stream, events); err != nil {
		return sourcing.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return sourcing.AppendResult{}, ctxErr(fmt.Sprintf("append to %q", stream), err)
	}
	pk := streamKey(stream)
	// Encode once; an id repeated within the call is recorded once.
	var ids []string
	var bodies []json.RawMessage
	seen := make(map[string]bool, len(events))
	for _, e := range events {
		if seen[e.ID()] {
			continue
		}
		seen[e.ID()] = true
		b, err := json.Marshal(e)
		if err != nil {
			return sourcing.AppendResult{}, fmt.Errorf("dynamodb: append to %q: event %q: %w: %w", stream, e.ID(), crossbus.ErrInvalidEvent, err)
		}
		ids = append(ids, e.ID())
		bodies = append(bodies, b)
	}
	for attempt := 0; ; attempt++ {
		last, err := s.lastCommit(ctx, pk)
		if err != nil {
			return sourcing.AppendResult{}, fmt.Errorf("dynamodb: append to %q: %w", stream, err)
		}
		var current uint64
		if last != nil {
			current = last.end()
			if !last.ok {
				// An append that is recorded but not yet published (in
				// flight, or interrupted): finish it first, so the stream's
				// events enter the global order in version order and their
				// dedupe markers exist.
				if _, err := s.publish(ctx, last); err != nil {
					return sourcing.AppendResult{}, fmt.Errorf("dynamodb: append to %q: publish the previous append: %w", stream, err)
				}
			}
		}
		fresh := make([]int, 0, len(ids))
		if current > 0 && len(ids) > 0 {
			known, err := s.recordedIDs(ctx, pk, ids)
			if err != nil {
				return sourcing.AppendResult{}, fmt.Errorf("dynamodb: append to %q: %w", stream, err)
			}
			for i, id := range ids {
				if !known[id] {
					fresh = append(fresh, i)
				}
			}
		} else {
			for i := range ids {
				fresh = append(fresh, i)
			}
		}
		if len(events) > 0 && len(fresh) == 0 {
			// Every event is recorded: a retry of an append that succeeded.
			return sourcing.AppendResult{Version: current, Duplicates: len(events)}, nil
		}
		if !expected.Allows(current) {
			return sourcing.AppendResult{}, &sourcing.ConflictError{Stream: stream, Expected: expected, Actual: current}
		}
		if len(events) == 0 {
			return sourcing.AppendResult{Version: current}, nil
		}

		c := &commit{pk: pk, version: current + 1, n: uint64(len(fresh)), recorded: s.now().UnixNano()}
		c.ids = make([]string, len(fresh))
		body := []byte{'['}
		for j, i := range fresh {
			if j > 0 {
				body = append(body, ',')
			}
			body = append(body, bodies[i]...)
			c.ids[j] = ids[i]
		}
		c.events = append(body, ']')
		if len(c.events) > maxCommitBytes {
			return sourcing.AppendResult{}, fmt.Errorf("dynamodb: append to %q: %w", stream, &crossbus.SizeError{Size: len(c.events), Limit: maxCommitBytes})
		}
		// From reading the log's head to entering the log, this store's
		// appends go one at a time, so they never race each other for a
		// log position (appends of other processes still may, and retry).
		if err := s.lockLog(ctx); err != nil {
			return sourcing.AppendResult{}, ctxErr(fmt.Sprintf("append to %q", stream), err)
		}
		if c.pos, err = s.nextPosition(ctx); err != nil {
			s.unlockLog()
			return sourcing.AppendResult{}, fmt.Errorf("dynamodb: append to %q: %w", stream, err)
		}
		item := c.key()
		item[attrVersion], item[attrCount], item[attrPos] = attrN(c.version), attrN(c.n), attrN(c.pos)
		item[attrRecorded], item[attrEvents] = attrI(c.recorded), attrS(string(c.events))
		_, err = s.c.PutItem(ctx, &ddb.PutItemInput{
			TableName:                aws.String(s.table),
			Item:                     item,
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{"#pk": attrPK},
		})
		if conditionFailed(err) {
			// Another append took the version: look again (it may have
			// recorded these very events, or moved the version on).
			s.unlockLog()
			backoff(ctx, attempt)
			continue
		}
		if err != nil {
			s.unlockLog()
			return sourcing.AppendResult{}, opError(fmt.Sprintf("append to %q", stream), s.table, err)
		}
		// Recorded: the version is ours and the events will reach the
		// global order, if not by this call then by the next append or
		// read of the stream (or Recover).
		pos, err := s.enterLog(ctx, c)
		s.unlockLog()
		if err == nil {
			err = s.finishPublish(ctx, c, pos)
		}
		if err != nil {
			return sourcing.AppendResult{}, fmt.Errorf("dynamodb: append to %q: recorded at version %d, but its publication (global log entry, dedupe markers) did not finish; the next append or read of the stream finishes it, and retrying the append is safe: %w", stream, c.version, err)
		}
		return sourcing.AppendResult{
			Version:       c.end(),
			FirstPosition: pos,
			LastPosition:  pos + c.n - 1,
			Appended:      len(fresh),
			Duplicates:    len(events) - len(fresh),
		}, nil
	}
}

// backoff waits a little, more after each failed attempt, with jitter.
func backoff(ctx context.Context, attempt int) {
	if attempt == 0 {
		return
	}
	d := time.Duration(1<<min(attempt, 6)) * time.Millisecond
	t := time.NewTimer(d/2 + rand.N(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// lastCommit reads the stream's last commit (nil when it has none), without
// its events.
func (s *EventStore) lastCommit(ctx context.Context, pk string) (*commit, error) {
	out, err := s.c.Query(ctx, &ddb.QueryInput{
		TableName:                aws.String(s.table),
		KeyConditionExpression:   aws.String("#pk = :pk AND #sk BETWEEN :lo AND :hi"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#sk": attrSK, "#v": attrVersion, "#n": attrCount, "#pos": attrPos, "#ok": attrOK, "#at": attrRecorded},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": attrS(pk), ":lo": attrS(commitPrefix), ":hi": attrS(commitEnd),
		},
		ProjectionExpression: aws.String("#pk, #sk, #v, #n, #pos, #ok, #at"),
		ScanIndexForward:     aws.Bool(false),
		Limit:                aws.Int32(1),
		ConsistentRead:       aws.Bool(true),
	})
	if err != nil {
		return nil, opError("read the stream version", s.table, err)
	}
	if len(out.Items) == 0 {
		return nil, nil
	}
	return parseCommit(out.Items[0])
}

// recordedIDs returns which of ids the stream has recorded, from its dedupe
// markers.
func (s *EventStore) recordedIDs(ctx context.Context, pk string, ids []string) (map[string]bool, error) {
	keys := make([]map[string]types.AttributeValue, len(ids))
	for i, id := range ids {
		keys[i] = map[string]types.AttributeValue{attrPK: attrS(pk), attrSK: attrS(markerSK(id))}
	}
	known := map[string]bool{}
	err := s.batchGet(ctx, keys, "#sk", map[string]string{"#sk": attrSK}, func(item map[string]types.AttributeValue) error {
		sk, err := getS(item, attrSK)
		if err != nil {
			return err
		}
		known[sk] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the dedupe markers: %w", err)
	}
	out := make(map[string]bool, len(known))
	for _, id := range ids {
		if known[markerSK(id)] {
			out[id] = true
		}
	}
	return out, nil
}

func markerSK(id string) string { return keyName("i", id, maxSortKey) }

// nextPosition reads the global log's head and returns the position after
// it.
func (s *EventStore) nextPosition(ctx context.Context) (uint64, error) {
	last, n, err := s.logHead(ctx)
	if err != nil {
		return 0, err
	}
	return last + n, nil
}

// logHead returns the first position and event count of the log's last
// entry (0, 1 when the log is empty, so that their sum is the next position).
func (s *EventStore) logHead(ctx context.Context) (pos, n uint64, err error) {
	out, err := s.c.Query(ctx, &ddb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": attrS(logPK)},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(1),
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return 0, 0, opError("read the global log's head", s.table, err)
	}
	if len(out.Items) == 0 {
		return 0, 1, nil
	}
	e, err := parseLogEntry(out.Items[0])
	if err != nil {
		return 0, 0, err
	}
	return e.pos, e.n, nil
}

// logEntry is one published commit in the global log.
type logEntry struct {
	pos     uint64 // first position
	stream  string // the commit's partition key
	version uint64 // the commit's first version
	n       uint64
}

func parseLogEntry(item map[string]types.AttributeValue) (logEntry, error) {
	var e logEntry
	sk, err := getS(item, attrSK)
	if err != nil {
		return e, err
	}
	if e.pos, err = strconv.ParseUint(sk, 10, 64); err != nil || e.pos == 0 {
		return e, fmt.Errorf("%w: log entry key %q", errAttr, sk)
	}
	if e.stream, err = getS(item, attrStream); err != nil {
		return e, err
	}
	if e.version, err = getN(item, attrVersion); err != nil {
		return e, err
	}
	if e.n, err = getN(item, attrCount); err != nil {
		return e, err
	}
	if e.n == 0 || e.version == 0 {
		return e, fmt.Errorf("%w: log entry %d", errAttr, e.pos)
	}
	return e, nil
}

func logKey(pos uint64) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: attrS(logPK), attrSK: attrS(pad(pos))}
}

// publish enters a recorded commit into the global log, writes its dedupe
// markers and marks it published; it returns the commit's first position.
// Any number of callers may publish the same commit at once (its writer, and
// readers or appenders that found it unpublished): the commit's pos
// attribute is a claim on a log position, valid when the log entry there
// names the commit, and only moved (conditionally) by a caller who saw that
// entry name another commit, so the commit enters the log exactly once.
func (s *EventStore) publish(ctx context.Context, c *commit) (uint64, error) {
	if err := s.lockLog(ctx); err != nil {
		return 0, err
	}
	pos, err := s.enterLog(ctx, c)
	s.unlockLog()
	if err != nil {
		return 0, err
	}
	if err := s.finishPublish(ctx, c, pos); err != nil {
		return 0, err
	}
	return pos, nil
}

// lockLog takes the store's turn at the global log (see Append).
func (s *EventStore) lockLog(ctx context.Context) error {
	select {
	case s.logTurn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *EventStore) unlockLog() { <-s.logTurn }

// enterLog puts the commit's entry in the global log, moving its claim on
// while the claimed position is another commit's, and returns its position.
// The caller holds the store's turn at the log.
func (s *EventStore) enterLog(ctx context.Context, c *commit) (uint64, error) {
	pos := c.pos
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		item := logKey(pos)
		item[attrStream], item[attrVersion], item[attrCount] = attrS(c.pk), attrN(c.version), attrN(c.n)
		_, err := s.c.PutItem(ctx, &ddb.PutItemInput{
			TableName:                aws.String(s.table),
			Item:                     item,
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{"#pk": attrPK},
		})
		if err == nil {
			break
		}
		if !conditionFailed(err) {
			return 0, opError("publish to the global log", s.table, err)
		}
		// The position is taken: by this commit (another caller published
		// it), or by another commit (the claim must move on).
		out, err := s.c.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: logKey(pos), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return 0, opError("publish to the global log", s.table, err)
		}
		if out.Item != nil {
			e, err := parseLogEntry(out.Item)
			if err != nil {
				return 0, err
			}
			if e.stream == c.pk && e.version == c.version {
				break
			}
		}
		backoff(ctx, attempt)
		next, err := s.nextPosition(ctx)
		if err != nil {
			return 0, err
		}
		_, err = s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName:                 aws.String(s.table),
			Key:                       c.key(),
			UpdateExpression:          aws.String("SET #pos = :next"),
			ConditionExpression:       aws.String("#pos = :pos"),
			ExpressionAttributeNames:  map[string]string{"#pos": attrPos},
			ExpressionAttributeValues: map[string]types.AttributeValue{":next": attrN(next), ":pos": attrN(pos)},
		})
		switch {
		case err == nil:
			pos = next
		case conditionFailed(err):
			// Another caller moved the claim: follow it.
			cur, err := s.readCommit(ctx, c.pk, c.version, false)
			if err != nil {
				return 0, err
			}
			pos = cur.pos
		default:
			return 0, opError("publish to the global log", s.table, err)
		}
	}
	c.pos = pos
	return pos, nil
}

// finishPublish writes the dedupe markers of a commit that is in the log at
// pos, then the flag that says both are done.
func (s *EventStore) finishPublish(ctx context.Context, c *commit, pos uint64) error {
	if c.ids == nil && c.events == nil {
		full, err := s.readCommit(ctx, c.pk, c.version, true)
		if err != nil {
			return err
		}
		c.events = full.events
	}
	ids, err := c.eventIDs()
	if err != nil {
		return err
	}
	if err := s.writeMarkers(ctx, c.pk, c.version, ids); err != nil {
		return err
	}
	_, err = s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       c.key(),
		UpdateExpression:          aws.String("SET #ok = :t"),
		ConditionExpression:       aws.String("#pos = :pos"),
		ExpressionAttributeNames:  map[string]string{"#ok": attrOK, "#pos": attrPos},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": attrBool(true), ":pos": attrN(pos)},
	})
	if err != nil {
		return opError("mark an append published", s.table, err)
	}
	c.ok = true
	return nil
}

// readCommit reads one commit, with its events when withEvents (else with
// their ids only if needed later: eventIDs reads them).
func (s *EventStore) readCommit(ctx context.Context, pk string, version uint64, withEvents bool) (*commit, error) {
	out, err := s.c.GetItem(ctx, &ddb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            map[string]types.AttributeValue{attrPK: attrS(pk), attrSK: attrS(commitSK(version))},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, opError("read an append", s.table, err)
	}
	if out.Item == nil {
		return nil, fmt.Errorf("dynamodb: the append at version %d of %s is missing", version, pk)
	}
	c, err := parseCommit(out.Item)
	if err != nil {
		return nil, err
	}
	if !withEvents {
		c.events = nil
	}
	return c, nil
}

// writeMarkers writes the dedupe markers of a commit's events (idempotent
// puts).
func (s *EventStore) writeMarkers(ctx context.Context, pk string, version uint64, ids []string) error {
	reqs := make([]types.WriteRequest, len(ids))
	for i, id := range ids {
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			attrPK: attrS(pk), attrSK: attrS(markerSK(id)), attrVersion: attrN(version + uint64(i)),
		}}}
	}
	return s.batchWrite(ctx, reqs)
}
