package dynamodb

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// readPage is how many log entries ReadAll reads (and how many commits it
// fetches) per request.
const readPage = 100

// StreamVersion implements sourcing.Store. An append that is recorded but
// not yet published counts: its version is taken.
func (s *EventStore) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxErr(fmt.Sprintf("version of %q", stream), err)
	}
	last, err := s.lastCommit(ctx, streamKey(stream))
	if err != nil {
		return 0, fmt.Errorf("dynamodb: version of %q: %w", stream, err)
	}
	if last == nil {
		return 0, nil
	}
	return last.end(), nil
}

// Head implements sourcing.Store: the last position in the global log.
func (s *EventStore) Head(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxErr("head", err)
	}
	pos, n, err := s.logHead(ctx)
	if err != nil {
		return 0, err
	}
	return pos + n - 1, nil
}

// ReadStream implements sourcing.Store. A recorded append that is not yet
// published is published before its events are yielded, so every record
// has its position.
func (s *EventStore) ReadStream(ctx context.Context, stream string, from uint64) iter.Seq2[sourcing.Record, error] {
	return func(yield func(sourcing.Record, error) bool) {
		from = max(from, 1)
		pk := streamKey(stream)
		fail := func(err error) { yield(sourcing.Record{}, err) }
		if err := ctx.Err(); err != nil {
			fail(err)
			return
		}
		// The commit holding version from starts at or before it.
		lo := commitPrefix
		if from > 1 {
			out, err := s.c.Query(ctx, &ddb.QueryInput{
				TableName:                aws.String(s.table),
				KeyConditionExpression:   aws.String("#pk = :pk AND #sk BETWEEN :lo AND :hi"),
				ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#sk": attrSK},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":pk": attrS(pk), ":lo": attrS(commitPrefix), ":hi": attrS(commitSK(from)),
				},
				ProjectionExpression: aws.String("#sk"),
				ScanIndexForward:     aws.Bool(false),
				Limit:                aws.Int32(1),
				ConsistentRead:       aws.Bool(true),
			})
			if err != nil {
				fail(fmt.Errorf("dynamodb: read stream %q: %w", stream, opError("query", s.table, err)))
				return
			}
			if len(out.Items) > 0 {
				if lo, err = getS(out.Items[0], attrSK); err != nil {
					fail(err)
					return
				}
			}
		}
		var start map[string]types.AttributeValue
		for {
			out, err := s.c.Query(ctx, &ddb.QueryInput{
				TableName:                aws.String(s.table),
				KeyConditionExpression:   aws.String("#pk = :pk AND #sk BETWEEN :lo AND :hi"),
				ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#sk": attrSK},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":pk": attrS(pk), ":lo": attrS(lo), ":hi": attrS(commitEnd),
				},
				ExclusiveStartKey: start,
				ConsistentRead:    aws.Bool(true),
			})
			if err != nil {
				fail(fmt.Errorf("dynamodb: read stream %q: %w", stream, opError("query", s.table, err)))
				return
			}
			for _, item := range out.Items {
				c, err := parseCommit(item)
				if err != nil {
					fail(err)
					return
				}
				if c.end() < from {
					continue
				}
				if !c.ok {
					if _, err := s.publish(ctx, c); err != nil {
						fail(fmt.Errorf("dynamodb: read stream %q: publish an append: %w", stream, err))
						return
					}
				}
				if !yieldCommit(ctx, yield, stream, c, from-min(from, c.version)) {
					return
				}
			}
			if len(out.LastEvaluatedKey) == 0 {
				return
			}
			start = out.LastEvaluatedKey
		}
	}
}

// yieldCommit yields the commit's events after the first skip; it reports
// false when the caller stopped or an error ended the sequence.
func yieldCommit(ctx context.Context, yield func(sourcing.Record, error) bool, stream string, c *commit, skip uint64) bool {
	var raws []json.RawMessage
	if err := json.Unmarshal(c.events, &raws); err != nil {
		yield(sourcing.Record{}, fmt.Errorf("dynamodb: stream %q version %d: events: %w", stream, c.version, err))
		return false
	}
	if uint64(len(raws)) != c.n {
		yield(sourcing.Record{}, fmt.Errorf("dynamodb: stream %q version %d: %d events recorded as %d", stream, c.version, len(raws), c.n))
		return false
	}
	recorded := time.Unix(0, c.recorded).UTC()
	for i, raw := range raws {
		if uint64(i) < skip {
			continue
		}
		v := c.version + uint64(i)
		if err := ctx.Err(); err != nil {
			yield(sourcing.Record{}, err)
			return false
		}
		e := new(crossbus.Event)
		if err := json.Unmarshal(raw, e); err != nil {
			yield(sourcing.Record{}, fmt.Errorf("dynamodb: stream %q version %d: event: %w", stream, v, err))
			return false
		}
		if !yield(sourcing.Record{Stream: stream, Version: v, Position: c.pos + uint64(i), Recorded: recorded, Event: e}, nil) {
			return false
		}
	}
	return true
}

// ReadAll implements sourcing.Store: it reads the global log in position
// order and each entry's events from its commit.
func (s *EventStore) ReadAll(ctx context.Context, from uint64) iter.Seq2[sourcing.Record, error] {
	return func(yield func(sourcing.Record, error) bool) {
		from = max(from, 1)
		fail := func(err error) { yield(sourcing.Record{}, err) }
		if err := ctx.Err(); err != nil {
			fail(err)
			return
		}
		// The entry holding position from starts at or before it.
		lo := pad(from)
		out, err := s.c.Query(ctx, &ddb.QueryInput{
			TableName:                aws.String(s.table),
			KeyConditionExpression:   aws.String("#pk = :pk AND #sk <= :hi"),
			ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#sk": attrSK},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": attrS(logPK), ":hi": attrS(pad(from)),
			},
			ProjectionExpression: aws.String("#sk"),
			ScanIndexForward:     aws.Bool(false),
			Limit:                aws.Int32(1),
			ConsistentRead:       aws.Bool(true),
		})
		if err != nil {
			fail(fmt.Errorf("dynamodb: read all: %w", opError("query the global log", s.table, err)))
			return
		}
		if len(out.Items) > 0 {
			if lo, err = getS(out.Items[0], attrSK); err != nil {
				fail(err)
				return
			}
		}
		var start map[string]types.AttributeValue
		for {
			out, err := s.c.Query(ctx, &ddb.QueryInput{
				TableName:                aws.String(s.table),
				KeyConditionExpression:   aws.String("#pk = :pk AND #sk >= :lo"),
				ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#sk": attrSK},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":pk": attrS(logPK), ":lo": attrS(lo),
				},
				ExclusiveStartKey: start,
				Limit:             aws.Int32(readPage),
				ConsistentRead:    aws.Bool(true),
			})
			if err != nil {
				fail(fmt.Errorf("dynamodb: read all: %w", opError("query the global log", s.table, err)))
				return
			}
			entries := make([]logEntry, 0, len(out.Items))
			for _, item := range out.Items {
				e, err := parseLogEntry(item)
				if err != nil {
					fail(err)
					return
				}
				if e.pos+e.n-1 >= from {
					entries = append(entries, e)
				}
			}
			commits, err := s.commitsOf(ctx, entries)
			if err != nil {
				fail(fmt.Errorf("dynamodb: read all: %w", err))
				return
			}
			for i, e := range entries {
				stream, err := parseKeyName("s", e.stream)
				if err != nil {
					fail(fmt.Errorf("dynamodb: read all: log entry %d: %w", e.pos, err))
					return
				}
				c := commits[i]
				// The log, not the commit's claim, says where it stands.
				c.pos = e.pos
				if !yieldCommit(ctx, yield, stream, c, from-min(from, e.pos)) {
					return
				}
			}
			if len(out.LastEvaluatedKey) == 0 {
				return
			}
			start = out.LastEvaluatedKey
		}
	}
}

// commitsOf reads the commits the log entries name, in their order.
func (s *EventStore) commitsOf(ctx context.Context, entries []logEntry) ([]*commit, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	type ref struct {
		pk      string
		version uint64
	}
	keys := make([]map[string]types.AttributeValue, len(entries))
	for i, e := range entries {
		keys[i] = map[string]types.AttributeValue{attrPK: attrS(e.stream), attrSK: attrS(commitSK(e.version))}
	}
	found := make(map[ref]*commit, len(entries))
	err := s.batchGet(ctx, keys, "", nil, func(item map[string]types.AttributeValue) error {
		c, err := parseCommit(item)
		if err != nil {
			return err
		}
		found[ref{c.pk, c.version}] = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*commit, len(entries))
	for i, e := range entries {
		c := found[ref{e.stream, e.version}]
		if c == nil || c.n != e.n {
			return nil, fmt.Errorf("dynamodb: log entry %d names an append (%s version %d) that is missing or differs", e.pos, e.stream, e.version)
		}
		out[i] = c
	}
	return out, nil
}
