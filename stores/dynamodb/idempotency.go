package dynamodb

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
)

// IdempotencyStore is a crossbus.IdempotencyStore in a DynamoDB table with
// partition key pk (see the package documentation for the item layout).
// Begin is one conditional PutItem, so of concurrent Begins for a free key
// exactly one claims it; Renew, Complete and Release are conditional on the
// claim's token and lease. Leases and TTLs are measured with this machine's
// clock (DynamoDB has none to offer), so the machines sharing a table need
// clocks in step to well under a lease. Expired records are ignored, and
// deleted by DynamoDB's time to live (attribute ttl) when it is on.
type IdempotencyStore struct {
	c     API
	table string
	now   func() time.Time
}

var _ crossbus.IdempotencyStore = (*IdempotencyStore)(nil)

// NewIdempotencyStore returns the idempotency store in table, which must
// exist (CreateTables makes it).
func NewIdempotencyStore(ctx context.Context, client API, table string) (*IdempotencyStore, error) {
	if err := checkTable(ctx, client, "idempotency", table, hashOnly); err != nil {
		return nil, err
	}
	return &IdempotencyStore{c: client, table: table, now: time.Now}, nil
}

// Record states (attribute st).
const (
	stateHeld = "p" // in progress: tok holds the claim until exp
	stateDone = "c" // completed until exp
)

// heldCond: the record is in progress under :tok and its lease has not run
// out at :now.
const heldCond = "#st = :held AND #tok = :tok AND #exp > :now"

func idemKey(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: attrS(keyName("k", key, maxPartitionKey))}
}

// until returns the expiry in Unix milliseconds (rounded up) and the time to
// live attribute in Unix seconds (rounded up).
func until(now time.Time, d time.Duration) (ms, sec int64) {
	end := now.Add(max(d, time.Millisecond))
	ms = (end.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	return ms, (ms + 999) / 1000
}

// Begin implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Begin(ctx context.Context, key string, lease time.Duration) (crossbus.Claim, error) {
	if err := ctx.Err(); err != nil {
		return crossbus.Claim{}, ctxErr("idempotency begin", err)
	}
	token := claimtoken.New()
	for attempt := 0; attempt < 5; attempt++ {
		now := s.now()
		exp, ttl := until(now, lease)
		item := idemKey(key)
		item["st"], item["tok"], item["exp"], item[attrTTL] = attrS(stateHeld), attrS(token), attrI(exp), attrI(ttl)
		_, err := s.c.PutItem(ctx, &ddb.PutItemInput{
			TableName:                 aws.String(s.table),
			Item:                      item,
			ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #exp <= :now"),
			ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#exp": "exp"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": attrI(now.UnixMilli())},
		})
		if err == nil {
			return crossbus.Claim{Status: crossbus.ClaimNew, Token: token}, nil
		}
		if !conditionFailed(err) {
			return crossbus.Claim{}, opError("idempotency begin", s.table, err)
		}
		// A live record is there: which kind?
		out, err := s.c.GetItem(ctx, &ddb.GetItemInput{
			TableName:                aws.String(s.table),
			Key:                      idemKey(key),
			ConsistentRead:           aws.Bool(true),
			ProjectionExpression:     aws.String("#st, #exp"),
			ExpressionAttributeNames: map[string]string{"#st": "st", "#exp": "exp"},
		})
		if err != nil {
			return crossbus.Claim{}, opError("idempotency begin", s.table, err)
		}
		st, err := getS(out.Item, "st")
		if err != nil {
			return crossbus.Claim{}, err
		}
		end, err := getI(out.Item, "exp")
		if err != nil {
			return crossbus.Claim{}, err
		}
		if out.Item == nil || end <= s.now().UnixMilli() {
			continue // released or expired since the put: try again
		}
		if st == stateDone {
			return crossbus.Claim{Status: crossbus.ClaimCompleted}, nil
		}
		return crossbus.Claim{Status: crossbus.ClaimInProgress}, nil
	}
	// The record keeps changing under us: someone is working on the key.
	return crossbus.Claim{Status: crossbus.ClaimInProgress}, nil
}

// Renew implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if err := ctx.Err(); err != nil {
		return ctxErr("idempotency renew", err)
	}
	now := s.now()
	exp, ttl := until(now, lease)
	return s.update(ctx, "renew", key, token, now, "SET #exp = :exp, #ttl = :ttl", map[string]types.AttributeValue{":exp": attrI(exp), ":ttl": attrI(ttl)})
}

// Complete implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Complete(ctx context.Context, key, token string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return ctxErr("idempotency complete", err)
	}
	now := s.now()
	exp, sec := until(now, ttl)
	return s.update(ctx, "complete", key, token, now, "SET #st = :done, #exp = :exp, #ttl = :ttl REMOVE #tok",
		map[string]types.AttributeValue{":done": attrS(stateDone), ":exp": attrI(exp), ":ttl": attrI(sec)})
}

func (s *IdempotencyStore) update(ctx context.Context, op, key, token string, now time.Time, expr string, values map[string]types.AttributeValue) error {
	values[":held"], values[":tok"], values[":now"] = attrS(stateHeld), attrS(token), attrI(now.UnixMilli())
	names := map[string]string{"#st": "st", "#tok": "tok", "#exp": "exp", "#ttl": attrTTL}
	_, err := s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       idemKey(key),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String(heldCond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if conditionFailed(err) {
		return fmt.Errorf("dynamodb: idempotency %s: key %q: %w", op, key, crossbus.ErrLeaseLost)
	}
	if err != nil {
		return opError("idempotency "+op, s.table, err)
	}
	return nil
}

// Release implements crossbus.IdempotencyStore.
func (s *IdempotencyStore) Release(ctx context.Context, key, token string) error {
	if err := ctx.Err(); err != nil {
		return ctxErr("idempotency release", err)
	}
	_, err := s.c.DeleteItem(ctx, &ddb.DeleteItemInput{
		TableName:                aws.String(s.table),
		Key:                      idemKey(key),
		ConditionExpression:      aws.String(heldCond),
		ExpressionAttributeNames: map[string]string{"#st": "st", "#tok": "tok", "#exp": "exp"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":held": attrS(stateHeld), ":tok": attrS(token), ":now": attrI(s.now().UnixMilli()),
		},
	})
	if conditionFailed(err) {
		return fmt.Errorf("dynamodb: idempotency release: key %q: %w", key, crossbus.ErrLeaseLost)
	}
	if err != nil {
		return opError("idempotency release", s.table, err)
	}
	return nil
}
