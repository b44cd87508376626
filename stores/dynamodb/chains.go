package dynamodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/patterns/chain"
)

// ChainStore is a chain.Store in one DynamoDB table with keys pk and sk:
// each instance is an item saved with a condition on its revision, its step
// claims are items beside it, and an index partition per chain lists the
// unfinished instances (see the package documentation).
type ChainStore struct {
	c     API
	table string
	now   func() time.Time
}

var _ chain.Store = (*ChainStore)(nil)

// NewChainStore returns the chain store in table, which must exist
// (CreateTables makes it).
func NewChainStore(ctx context.Context, client API, table string) (*ChainStore, error) {
	if err := checkTable(ctx, client, "chain", table, hashRange); err != nil {
		return nil, err
	}
	return &ChainStore{c: client, table: table, now: time.Now}, nil
}

// Chain table keys and attributes.
const (
	instanceSK = "instance"

	attrDoc      = "doc"    // instance: the Instance as JSON
	attrRev      = "rev"    // instance: its revision
	attrChain    = "chain"  // instance: its chain's name
	attrStatus   = "status" // instance: its status
	attrInstance = "ipk"    // index entry: the instance's partition key
	attrOutput   = "out"    // step claim: the step's output (JSON)
)

func instancePK(id string) string { return keyName("i", id, maxPartitionKey) }

func instanceKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: attrS(instancePK(id)), attrSK: attrS(instanceSK)}
}

func indexKey(chainName, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: attrS(keyName("u", chainName, maxPartitionKey)), attrSK: attrS(keyName("i", id, maxSortKey))}
}

func stepKey(k chain.StepKey) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: attrS(instancePK(k.Instance)), attrSK: attrS(keyName(k.Kind(), k.Step, maxSortKey))}
}

func (s *ChainStore) instanceItem(inst *chain.Instance, rev int64) (map[string]types.AttributeValue, error) {
	c := *inst
	c.Revision = rev
	doc, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("dynamodb: chain instance %q: %w", inst.ID, err)
	}
	item := instanceKey(inst.ID)
	item[attrDoc], item[attrRev], item[attrChain], item[attrStatus] = attrS(string(doc)), attrI(rev), attrS(inst.Chain), attrS(string(inst.Status))
	return item, nil
}

// Create implements chain.Store. An unfinished instance is listed in its
// chain's index first, so it is never unfinished and unlisted.
func (s *ChainStore) Create(ctx context.Context, inst *chain.Instance) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(fmt.Sprintf("create chain instance %q", inst.ID), err)
	}
	if inst.ID == "" {
		return fmt.Errorf("%w: instance has no ID", crossbus.ErrInvalidOption)
	}
	item, err := s.instanceItem(inst, 1)
	if err != nil {
		return err
	}
	if !inst.Status.Finished() {
		entry := indexKey(inst.Chain, inst.ID)
		entry[attrInstance] = attrS(instancePK(inst.ID))
		if _, err := s.c.PutItem(ctx, &ddb.PutItemInput{TableName: aws.String(s.table), Item: entry}); err != nil {
			return opError(fmt.Sprintf("create chain instance %q: list it as unfinished", inst.ID), s.table, err)
		}
	}
	_, err = s.c.PutItem(ctx, &ddb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK},
	})
	if conditionFailed(err) {
		// The index entry stays: it lists the instance that holds the id.
		return fmt.Errorf("chain: instance %q: %w", inst.ID, chain.ErrExists)
	}
	if err != nil {
		return opError(fmt.Sprintf("create chain instance %q", inst.ID), s.table, err)
	}
	inst.Revision = 1
	return nil
}

// Load implements chain.Store.
func (s *ChainStore) Load(ctx context.Context, id string) (*chain.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(fmt.Sprintf("load chain instance %q", id), err)
	}
	out, err := s.c.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: instanceKey(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, opError(fmt.Sprintf("load chain instance %q", id), s.table, err)
	}
	if out.Item == nil {
		return nil, fmt.Errorf("chain: instance %q: %w", id, chain.ErrNotFound)
	}
	return parseInstance(out.Item)
}

func parseInstance(item map[string]types.AttributeValue) (*chain.Instance, error) {
	doc, err := getS(item, attrDoc)
	if err != nil {
		return nil, err
	}
	rev, err := getI(item, attrRev)
	if err != nil {
		return nil, err
	}
	inst := new(chain.Instance)
	if err := json.Unmarshal([]byte(doc), inst); err != nil {
		return nil, fmt.Errorf("dynamodb: chain instance: %w", err)
	}
	inst.Revision = rev
	return inst, nil
}

// Save implements chain.Store: one put conditional on the revision. A
// finished instance then leaves its chain's index (a failure there is
// repaired by Unfinished, which skips and removes entries of finished
// instances).
func (s *ChainStore) Save(ctx context.Context, inst *chain.Instance) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(fmt.Sprintf("save chain instance %q", inst.ID), err)
	}
	item, err := s.instanceItem(inst, inst.Revision+1)
	if err != nil {
		return err
	}
	_, err = s.c.PutItem(ctx, &ddb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      item,
		ConditionExpression:       aws.String("#rev = :rev"),
		ExpressionAttributeNames:  map[string]string{"#rev": attrRev},
		ExpressionAttributeValues: map[string]types.AttributeValue{":rev": attrI(inst.Revision)},
	})
	if conditionFailed(err) {
		cur, lerr := s.Load(ctx, inst.ID)
		if errors.Is(lerr, chain.ErrNotFound) {
			return lerr
		}
		if lerr != nil {
			return lerr
		}
		return fmt.Errorf("chain: instance %q at revision %d, saved from %d: %w", inst.ID, cur.Revision, inst.Revision, chain.ErrStale)
	}
	if err != nil {
		return opError(fmt.Sprintf("save chain instance %q", inst.ID), s.table, err)
	}
	inst.Revision++
	if inst.Status.Finished() {
		_, _ = s.c.DeleteItem(ctx, &ddb.DeleteItemInput{TableName: aws.String(s.table), Key: indexKey(inst.Chain, inst.ID)})
	}
	return nil
}

// Unfinished implements chain.Store: it reads the chain's index and the
// instances it lists.
func (s *ChainStore) Unfinished(ctx context.Context, chainName string) ([]*chain.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(fmt.Sprintf("unfinished instances of %q", chainName), err)
	}
	var keys []map[string]types.AttributeValue
	var start map[string]types.AttributeValue
	for {
		out, err := s.c.Query(ctx, &ddb.QueryInput{
			TableName:                 aws.String(s.table),
			KeyConditionExpression:    aws.String("#pk = :pk"),
			ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": attrS(keyName("u", chainName, maxPartitionKey))},
			ExclusiveStartKey:         start,
			ConsistentRead:            aws.Bool(true),
		})
		if err != nil {
			return nil, opError(fmt.Sprintf("unfinished instances of %q", chainName), s.table, err)
		}
		for _, item := range out.Items {
			ipk, err := getS(item, attrInstance)
			if err != nil {
				return nil, err
			}
			keys = append(keys, map[string]types.AttributeValue{attrPK: attrS(ipk), attrSK: attrS(instanceSK)})
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		start = out.LastEvaluatedKey
	}
	var open []*chain.Instance
	var done []*chain.Instance
	err := batchGet(ctx, s.c, s.table, keys, "", nil, func(item map[string]types.AttributeValue) error {
		inst, err := parseInstance(item)
		if err != nil {
			return err
		}
		switch {
		case inst.Chain != chainName:
		case inst.Status.Finished():
			done = append(done, inst)
		default:
			open = append(open, inst)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dynamodb: unfinished instances of %q: %w", chainName, err)
	}
	// Entries of finished instances are left over from a Save that could
	// not remove them; entries of missing instances may belong to a Create
	// in flight, so they stay.
	for _, inst := range done {
		_, _ = s.c.DeleteItem(ctx, &ddb.DeleteItemInput{TableName: aws.String(s.table), Key: indexKey(chainName, inst.ID)})
	}
	return open, nil
}

// Step claim states use the idempotency store's: stateHeld while a worker
// holds it (tok, until exp in Unix milliseconds), stateDone once finished.

// BeginStep implements chain.Store.
func (s *ChainStore) BeginStep(ctx context.Context, key chain.StepKey, lease time.Duration) (chain.StepClaim, error) {
	if err := ctx.Err(); err != nil {
		return chain.StepClaim{}, ctxErr(stepOp("begin", key), err)
	}
	token := claimtoken.New()
	for attempt := 0; attempt < 5; attempt++ {
		now := s.now()
		exp, _ := until(now, lease)
		item := stepKey(key)
		item["st"], item["tok"], item["exp"] = attrS(stateHeld), attrS(token), attrI(exp)
		_, err := s.c.PutItem(ctx, &ddb.PutItemInput{
			TableName:                aws.String(s.table),
			Item:                     item,
			ConditionExpression:      aws.String("attribute_not_exists(#pk) OR (#st = :held AND #exp <= :now)"),
			ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#st": "st", "#exp": "exp"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":held": attrS(stateHeld), ":now": attrI(now.UnixMilli()),
			},
		})
		if err == nil {
			return chain.StepClaim{Status: crossbus.ClaimNew, Token: token}, nil
		}
		if !conditionFailed(err) {
			return chain.StepClaim{}, opError(stepOp("begin", key), s.table, err)
		}
		out, err := s.c.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: stepKey(key), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return chain.StepClaim{}, opError(stepOp("begin", key), s.table, err)
		}
		if out.Item == nil {
			continue // released since the put
		}
		st, err := getS(out.Item, "st")
		if err != nil {
			return chain.StepClaim{}, err
		}
		if st == stateDone {
			output, err := getB(out.Item, attrOutput)
			if err != nil {
				return chain.StepClaim{}, err
			}
			return chain.StepClaim{Status: crossbus.ClaimCompleted, Output: json.RawMessage(output)}, nil
		}
		end, err := getI(out.Item, "exp")
		if err != nil {
			return chain.StepClaim{}, err
		}
		if end > s.now().UnixMilli() {
			return chain.StepClaim{Status: crossbus.ClaimInProgress}, nil
		}
		// Expired since the put: try again.
	}
	return chain.StepClaim{Status: crossbus.ClaimInProgress}, nil
}

func stepOp(op string, k chain.StepKey) string {
	return fmt.Sprintf("%s step %q of %q (%s)", op, k.Step, k.Instance, k.Kind())
}

// FinishStep implements chain.Store.
func (s *ChainStore) FinishStep(ctx context.Context, key chain.StepKey, token string, output json.RawMessage) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(stepOp("finish", key), err)
	}
	expr := "SET #st = :done REMOVE #tok, #exp"
	values := map[string]types.AttributeValue{
		":done": attrS(stateDone), ":held": attrS(stateHeld), ":tok": attrS(token), ":now": attrI(s.now().UnixMilli()),
	}
	names := map[string]string{"#st": "st", "#tok": "tok", "#exp": "exp"}
	if len(output) > 0 {
		expr = "SET #st = :done, #out = :out REMOVE #tok, #exp"
		values[":out"] = attrB(output)
		names["#out"] = attrOutput
	}
	_, err := s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       stepKey(key),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String(heldCond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if conditionFailed(err) {
		return fmt.Errorf("chain: step %q of %q (%s): %w", key.Step, key.Instance, key.Kind(), crossbus.ErrLeaseLost)
	}
	if err != nil {
		return opError(stepOp("finish", key), s.table, err)
	}
	return nil
}

// ReleaseStep implements chain.Store.
func (s *ChainStore) ReleaseStep(ctx context.Context, key chain.StepKey, token string) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(stepOp("release", key), err)
	}
	_, err := s.c.DeleteItem(ctx, &ddb.DeleteItemInput{
		TableName:                aws.String(s.table),
		Key:                      stepKey(key),
		ConditionExpression:      aws.String(heldCond),
		ExpressionAttributeNames: map[string]string{"#st": "st", "#tok": "tok", "#exp": "exp"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":held": attrS(stateHeld), ":tok": attrS(token), ":now": attrI(s.now().UnixMilli()),
		},
	})
	if conditionFailed(err) {
		return fmt.Errorf("chain: step %q of %q (%s): %w", key.Step, key.Instance, key.Kind(), crossbus.ErrLeaseLost)
	}
	if err != nil {
		return opError(stepOp("release", key), s.table, err)
	}
	return nil
}
