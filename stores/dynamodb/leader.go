package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/crossbus/crossbus/patterns/leader"
)

// LeaderStore is a leader.Store in a DynamoDB table with partition key pk:
// one item per lease name (pk l:name) with the holder, the token of its
// term and its expiry (exp, Unix milliseconds). A new term is a
// conditional update that adds 1 to the token; a renewal is a conditional
// update that leaves it; a release empties the holder and keeps the token,
// so tokens only rise. DynamoDB has no clock to offer, so expiry is
// measured with the callers' clocks: replicas sharing a lease need clocks
// in step to well under leader.Options.SafetyMargin (NTP keeps them within
// milliseconds).
type LeaderStore struct {
	c     API
	table string
	now   func() time.Time
}

var _ leader.Store = (*LeaderStore)(nil)

// NewLeaderStore returns the leader lease store in table, which must exist
// (CreateTables makes it).
func NewLeaderStore(ctx context.Context, client API, table string) (*LeaderStore, error) {
	if err := checkTable(ctx, client, "leader", table, hashOnly); err != nil {
		return nil, err
	}
	return &LeaderStore{c: client, table: table, now: time.Now}, nil
}

var leaseNames = map[string]string{"#pk": attrPK, "#h": "holder", "#tok": "tok", "#exp": "exp"}

func leaseKey(name string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: attrS(keyName("l", name, maxPartitionKey))}
}

func parseLease(name string, item map[string]types.AttributeValue, now time.Time) (leader.Lease, error) {
	l := leader.Lease{Name: name}
	holder, err := getS(item, "holder")
	if err != nil {
		return l, err
	}
	if l.Token, err = getI(item, "tok"); err != nil {
		return l, err
	}
	exp, err := getI(item, "exp")
	if err != nil {
		return l, err
	}
	if holder != "" && exp > now.UnixMilli() {
		l.Holder, l.Expires = holder, time.UnixMilli(exp)
	}
	return l, nil
}

// TryAcquire implements leader.Store.
func (s *LeaderStore) TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (leader.Lease, error) {
	if err := leader.ValidateLease(name, holder, ttl); err != nil {
		return leader.Lease{}, err
	}
	op := fmt.Sprintf("acquire lease %q", name)
	for attempt := 0; attempt < 10; attempt++ {
		if err := ctx.Err(); err != nil {
			return leader.Lease{}, ctxErr(op, err)
		}
		now := s.now()
		exp, _ := until(now, ttl)
		values := map[string]types.AttributeValue{":h": attrS(holder), ":exp": attrI(exp), ":now": attrI(now.UnixMilli())}
		// Renew: the caller holds a live term.
		out, err := s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName:                           aws.String(s.table),
			Key:                                 leaseKey(name),
			UpdateExpression:                    aws.String("SET #exp = :exp"),
			ConditionExpression:                 aws.String("#h = :h AND #exp > :now"),
			ExpressionAttributeNames:            map[string]string{"#h": "holder", "#exp": "exp"},
			ExpressionAttributeValues:           values,
			ReturnValues:                        types.ReturnValueAllNew,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		if err == nil {
			return parseLease(name, out.Attributes, now)
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return leader.Lease{}, opError(op, s.table, err)
		}
		if ccf.Item != nil {
			// The server said what is there (DynamoDB does; dynalite
			// does not): another holder's live term ends it here.
			if cur, err := parseLease(name, ccf.Item, now); err == nil && cur.Holder != "" {
				return cur, nil
			}
		}
		// A new term: the lease is missing, released or expired.
		values[":empty"], values[":one"] = attrS(""), attrI(1)
		out, err = s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName:                 aws.String(s.table),
			Key:                       leaseKey(name),
			UpdateExpression:          aws.String("SET #h = :h, #exp = :exp ADD #tok :one"),
			ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #h = :empty OR #exp <= :now"),
			ExpressionAttributeNames:  leaseNames,
			ExpressionAttributeValues: values,
			ReturnValues:              types.ReturnValueAllNew,
		})
		if err == nil {
			return parseLease(name, out.Attributes, now)
		}
		if !conditionFailed(err) {
			return leader.Lease{}, opError(op, s.table, err)
		}
		// Held by someone: read it.
		got, err := s.c.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: leaseKey(name), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return leader.Lease{}, opError(op, s.table, err)
		}
		cur, err := parseLease(name, got.Item, s.now())
		if err != nil {
			return leader.Lease{}, err
		}
		if cur.Holder != "" && cur.Holder != holder {
			return cur, nil
		}
		// Released, expired or taken by the caller meanwhile: again.
	}
	return leader.Lease{}, fmt.Errorf("dynamodb: %s: the lease kept changing", op)
}

// Release implements leader.Store.
func (s *LeaderStore) Release(ctx context.Context, name, holder string, token int64) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(fmt.Sprintf("release lease %q", name), err)
	}
	_, err := s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      leaseKey(name),
		UpdateExpression:         aws.String("SET #h = :empty, #exp = :zero"),
		ConditionExpression:      aws.String("#h = :h AND #tok = :tok AND #exp > :now"),
		ExpressionAttributeNames: map[string]string{"#h": "holder", "#tok": "tok", "#exp": "exp"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":empty": attrS(""), ":zero": attrI(0), ":h": attrS(holder), ":tok": attrI(token), ":now": attrI(s.now().UnixMilli()),
		},
	})
	if conditionFailed(err) {
		return fmt.Errorf("dynamodb: release lease %q by %q (token %d): %w", name, holder, token, leader.ErrNotHeld)
	}
	if err != nil {
		return opError(fmt.Sprintf("release lease %q", name), s.table, err)
	}
	return nil
}
