package dynamodb

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDB's batch limits.
const (
	maxBatchGet   = 100
	maxBatchWrite = 25
)

// batchGet reads the items at keys with strongly consistent reads, calling
// fn for each item found (in no particular order), and retries the keys
// DynamoDB leaves unprocessed. projection may be "".
func (s *EventStore) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, projection string, names map[string]string, fn func(map[string]types.AttributeValue) error) error {
	return batchGet(ctx, s.c, s.table, keys, projection, names, fn)
}

func batchGet(ctx context.Context, c API, table string, keys []map[string]types.AttributeValue, projection string, names map[string]string, fn func(map[string]types.AttributeValue) error) error {
	for len(keys) > 0 {
		n := min(len(keys), maxBatchGet)
		ka := types.KeysAndAttributes{Keys: keys[:n], ConsistentRead: aws.Bool(true)}
		if projection != "" {
			ka.ProjectionExpression = aws.String(projection)
			ka.ExpressionAttributeNames = names
		}
		keys = keys[n:]
		for attempt := 0; ; attempt++ {
			out, err := c.BatchGetItem(ctx, &ddb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{table: ka}})
			if err != nil {
				return opError("batch read", table, err)
			}
			for _, item := range out.Responses[table] {
				if err := fn(item); err != nil {
					return err
				}
			}
			rest, ok := out.UnprocessedKeys[table]
			if !ok || len(rest.Keys) == 0 {
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			backoff(ctx, attempt+1)
			ka = rest
		}
	}
	return nil
}

// batchWrite runs the requests in batches of 25, retrying what DynamoDB
// leaves unprocessed.
func (s *EventStore) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	return batchWrite(ctx, s.c, s.table, reqs)
}

func batchWrite(ctx context.Context, c API, table string, reqs []types.WriteRequest) error {
	for len(reqs) > 0 {
		n := min(len(reqs), maxBatchWrite)
		batch := reqs[:n]
		reqs = reqs[n:]
		for attempt := 0; len(batch) > 0; attempt++ {
			if attempt > 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				backoff(ctx, attempt)
			}
			out, err := c.BatchWriteItem(ctx, &ddb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: batch}})
			if err != nil {
				return opError("batch write", table, err)
			}
			batch = out.UnprocessedItems[table]
			if attempt > 50 && len(batch) > 0 {
				return fmt.Errorf("dynamodb: batch write to %q: %d items still unprocessed after %d attempts", table, len(batch), attempt)
			}
		}
	}
	return nil
}
