package dynamodb

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// Snapshot attributes.
const (
	attrSchema = "schema"
	attrState  = "state"
	attrTaken  = "taken" // Unix nanoseconds
)

// SaveSnapshot implements sourcing.SnapshotStore: one conditional put, so a
// snapshot never replaces one at a higher version.
func (s *EventStore) SaveSnapshot(ctx context.Context, snap sourcing.Snapshot) error {
	if err := sourcing.ValidateAppend(snap.Stream, nil); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(fmt.Sprintf("save snapshot of %q", snap.Stream), err)
	}
	if snap.Taken.IsZero() {
		snap.Taken = s.now()
	}
	item := map[string]types.AttributeValue{
		attrPK: attrS(streamKey(snap.Stream)), attrSK: attrS(snapshotSK),
		attrVersion: attrN(snap.Version), attrSchema: attrS(snap.Schema), attrTaken: attrI(snap.Taken.UnixNano()),
	}
	if len(snap.State) > 0 {
		item[attrState] = attrB(snap.State)
	}
	_, err := s.c.PutItem(ctx, &ddb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #v <= :v"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#v": attrVersion},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": attrN(snap.Version)},
	})
	if conditionFailed(err) {
		return nil // a newer snapshot is stored
	}
	if err != nil {
		return opError(fmt.Sprintf("save snapshot of %q", snap.Stream), s.table, err)
	}
	return nil
}

// LoadSnapshot implements sourcing.SnapshotStore.
func (s *EventStore) LoadSnapshot(ctx context.Context, stream string) (sourcing.Snapshot, bool, error) {
	if err := ctx.Err(); err != nil {
		return sourcing.Snapshot{}, false, ctxErr(fmt.Sprintf("load snapshot of %q", stream), err)
	}
	out, err := s.c.GetItem(ctx, &ddb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            map[string]types.AttributeValue{attrPK: attrS(streamKey(stream)), attrSK: attrS(snapshotSK)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return sourcing.Snapshot{}, false, opError(fmt.Sprintf("load snapshot of %q", stream), s.table, err)
	}
	if out.Item == nil {
		return sourcing.Snapshot{}, false, nil
	}
	snap := sourcing.Snapshot{Stream: stream}
	var taken int64
	if snap.Version, err = getN(out.Item, attrVersion); err == nil {
		if snap.Schema, err = getS(out.Item, attrSchema); err == nil {
			if snap.State, err = getB(out.Item, attrState); err == nil {
				taken, err = getI(out.Item, attrTaken)
			}
		}
	}
	if err != nil {
		return sourcing.Snapshot{}, false, fmt.Errorf("dynamodb: load snapshot of %q: %w", stream, err)
	}
	snap.Taken = time.Unix(0, taken).UTC()
	return snap, true, nil
}

func checkpointKey(name string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: attrS(keyName("p", name, maxPartitionKey)), attrSK: attrS(checkpointSK)}
}

// Checkpoint implements sourcing.CheckpointStore.
func (s *EventStore) Checkpoint(ctx context.Context, name string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxErr(fmt.Sprintf("checkpoint %q", name), err)
	}
	out, err := s.c.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: checkpointKey(name), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return 0, opError(fmt.Sprintf("checkpoint %q", name), s.table, err)
	}
	return getN(out.Item, attrPos)
}

// SaveCheckpoint implements sourcing.CheckpointStore.
func (s *EventStore) SaveCheckpoint(ctx context.Context, name string, position uint64) error {
	if name == "" {
		return fmt.Errorf("%w: checkpoint name is empty", crossbus.ErrInvalidOption)
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(fmt.Sprintf("save checkpoint %q", name), err)
	}
	item := checkpointKey(name)
	item[attrPos] = attrN(position)
	item[attrRecorded] = attrI(s.now().UnixNano())
	if _, err := s.c.PutItem(ctx, &ddb.PutItemInput{TableName: aws.String(s.table), Item: item}); err != nil {
		return opError(fmt.Sprintf("save checkpoint %q", name), s.table, err)
	}
	return nil
}

// Recover publishes every append that was recorded but not published,
// because its writer stopped in between (a crash, a lost connection) and
// no append or read of its stream has come since. Until then its events
// are in their stream but not in ReadAll. It scans the whole table, so run
// it after an outage or at start-up, not in a loop; it returns how many
// appends it published.
func (s *EventStore) Recover(ctx context.Context) (int, error) {
	var start map[string]types.AttributeValue
	published := 0
	for {
		out, err := s.c.Scan(ctx, &ddb.ScanInput{
			TableName:                aws.String(s.table),
			FilterExpression:         aws.String("begins_with(#sk, :c) AND attribute_not_exists(#ok)"),
			ProjectionExpression:     aws.String("#pk, #sk, #v, #n, #pos, #ok, #at"),
			ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#sk": attrSK, "#v": attrVersion, "#n": attrCount, "#pos": attrPos, "#ok": attrOK, "#at": attrRecorded},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":c": attrS(commitPrefix),
			},
			ExclusiveStartKey: start,
			ConsistentRead:    aws.Bool(true),
		})
		if err != nil {
			return published, opError("recover: scan", s.table, err)
		}
		for _, item := range out.Items {
			c, err := parseCommit(item)
			if err != nil {
				return published, err
			}
			if _, err := s.publish(ctx, c); err != nil {
				return published, fmt.Errorf("dynamodb: recover: %w", err)
			}
			published++
		}
		if len(out.LastEvaluatedKey) == 0 {
			return published, nil
		}
		start = out.LastEvaluatedKey
	}
}
