package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/crossbus/crossbus"
)

// API is the part of the DynamoDB client (*dynamodb.Client) the stores
// use. Tests and instrumentation may wrap the client in their own API.
type API interface {
	GetItem(ctx context.Context, in *ddb.GetItemInput, optFns ...func(*ddb.Options)) (*ddb.GetItemOutput, error)
	PutItem(ctx context.Context, in *ddb.PutItemInput, optFns ...func(*ddb.Options)) (*ddb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *ddb.UpdateItemInput, optFns ...func(*ddb.Options)) (*ddb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *ddb.DeleteItemInput, optFns ...func(*ddb.Options)) (*ddb.DeleteItemOutput, error)
	Query(ctx context.Context, in *ddb.QueryInput, optFns ...func(*ddb.Options)) (*ddb.QueryOutput, error)
	Scan(ctx context.Context, in *ddb.ScanInput, optFns ...func(*ddb.Options)) (*ddb.ScanOutput, error)
	BatchGetItem(ctx context.Context, in *ddb.BatchGetItemInput, optFns ...func(*ddb.Options)) (*ddb.BatchGetItemOutput, error)
	BatchWriteItem(ctx context.Context, in *ddb.BatchWriteItemInput, optFns ...func(*ddb.Options)) (*ddb.BatchWriteItemOutput, error)
	DescribeTable(ctx context.Context, in *ddb.DescribeTableInput, optFns ...func(*ddb.Options)) (*ddb.DescribeTableOutput, error)
}

var _ API = (*ddb.Client)(nil)

// Tables names the stores' tables. CreateTables creates the ones named; an
// empty name is skipped. Each store needs only its own table.
type Tables struct {
	Idempotency string // IdempotencyStore: key pk
	Events      string // EventStore: keys pk, sk
	Chains      string // ChainStore: keys pk, sk
	Leases      string // LeaderStore: key pk
}

// DefaultTables names the tables prefix-idempotency, prefix-events,
// prefix-chains and prefix-leases.
func DefaultTables(prefix string) Tables {
	return Tables{
		Idempotency: prefix + "-idempotency",
		Events:      prefix + "-events",
		Chains:      prefix + "-chains",
		Leases:      prefix + "-leases",
	}
}

// CreateTablesOptions configure CreateTables.
type CreateTablesOptions struct {
	// Tables to create (those with a name).
	Tables Tables
	// BillingMode of new tables (default on-demand, PAY_PER_REQUEST).
	// With PROVISIONED, ReadCapacity and WriteCapacity apply to each table.
	BillingMode                 types.BillingMode
	ReadCapacity, WriteCapacity int64
	// NoTimeToLive skips turning on DynamoDB's time to live on the
	// idempotency table's ttl attribute. Without it, expired records stay
	// in the table (the store ignores them) until overwritten. Servers
	// without UpdateTimeToLive (dynalite) need it.
	NoTimeToLive bool
}

// CreateTables creates the named tables that do not exist yet, waits until
// they are active and turns on time to live for the idempotency table. A
// table that exists with another key schema is an error; one with the right
// schema is left as it is.
func CreateTables(ctx context.Context, client *ddb.Client, opts CreateTablesOptions) error {
	specs := []struct {
		name    string
		layout  layout
		withTTL bool
	}{
		{opts.Tables.Idempotency, hashOnly, true},
		{opts.Tables.Events, hashRange, false},
		{opts.Tables.Chains, hashRange, false},
		{opts.Tables.Leases, hashOnly, false},
	}
	for _, sp := range specs {
		if sp.name == "" {
			continue
		}
		if err := createTable(ctx, client, sp.name, sp.layout, opts); err != nil {
			return err
		}
		if sp.withTTL && !opts.NoTimeToLive {
			if err := enableTTL(ctx, client, sp.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// layout is a table's key schema: pk (string), and sk (string) for
// hashRange.
type layout int

const (
	hashOnly layout = iota
	hashRange
)

func (l layout) String() string {
	if l == hashRange {
		return "partition key pk (string) and sort key sk (string)"
	}
	return "partition key pk (string) and no sort key"
}

func createTable(ctx context.Context, client *ddb.Client, name string, l layout, opts CreateTablesOptions) error {
	in := &ddb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}
	if l == hashRange {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS})
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange})
	}
	if opts.BillingMode == types.BillingModeProvisioned {
		in.BillingMode = types.BillingModeProvisioned
		in.ProvisionedThroughput = &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(max(opts.ReadCapacity, 1)), WriteCapacityUnits: aws.Int64(max(opts.WriteCapacity, 1))}
	}
	_, err := client.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("dynamodb: create table %q: %w", name, err)
	}
	// Wait until it is active (a table that existed is checked the same way).
	for {
		out, err := client.DescribeTable(ctx, &ddb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("dynamodb: create table %q: describe: %w", name, err)
		}
		if err := checkSchema(out.Table, l); err != nil {
			return fmt.Errorf("dynamodb: create table %q: it exists with another layout: %w", name, err)
		}
		if out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dynamodb: create table %q: waiting for it to become active: %w", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func enableTTL(ctx context.Context, client *ddb.Client, name string) error {
	d, err := client.DescribeTimeToLive(ctx, &ddb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err == nil && d.TimeToLiveDescription != nil && aws.ToString(d.TimeToLiveDescription.AttributeName) == attrTTL {
		switch d.TimeToLiveDescription.TimeToLiveStatus {
		case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
			return nil
		}
	}
	_, err = client.UpdateTimeToLive(ctx, &ddb.UpdateTimeToLiveInput{
		TableName:               aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attrTTL), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("dynamodb: turn on time to live (attribute %s) for table %q (CreateTablesOptions.NoTimeToLive skips it): %w", attrTTL, name, err)
	}
	return nil
}

// checkSchema reports whether a table has layout l.
func checkSchema(t *types.TableDescription, l layout) error {
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, a := range t.AttributeDefinitions {
		attrTypes[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	var hash, rng string
	for _, k := range t.KeySchema {
		switch k.KeyType {
		case "HASH":
			hash = aws.ToString(k.AttributeName)
		case "RANGE":
			rng = aws.ToString(k.AttributeName)
		}
	}
	ok := hash == attrPK && attrTypes[attrPK] == "S"
	if l == hashRange {
		ok = ok && rng == attrSK && attrTypes[attrSK] == "S"
	} else {
		ok = ok && rng == ""
	}
	if !ok {
		desc := "partition key " + hash
		if rng != "" {
			desc += " and sort key " + rng
		}
		return fmt.Errorf("%w: the table has %s; the store needs %s", crossbus.ErrInvalidOption, desc, l)
	}
	return nil
}

// checkTable makes sure the store's table exists with layout l, so a
// misconfigured store fails when it is made rather than at first use.
func checkTable(ctx context.Context, client API, kind, table string, l layout) error {
	if client == nil {
		return fmt.Errorf("dynamodb: %s store: %w: nil client", kind, crossbus.ErrInvalidOption)
	}
	if table == "" {
		return fmt.Errorf("dynamodb: %s store: %w: no table name", kind, crossbus.ErrInvalidOption)
	}
	out, err := client.DescribeTable(ctx, &ddb.DescribeTableInput{TableName: aws.String(table)})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("dynamodb: %s store: table %q does not exist (create it with CreateTables; it needs %s): %w", kind, table, l, err)
	}
	if err != nil {
		return fmt.Errorf("dynamodb: %s store: describe table %q: %w", kind, table, err)
	}
	if err := checkSchema(out.Table, l); err != nil {
		return fmt.Errorf("dynamodb: %s store: table %q: %w", kind, table, err)
	}
	return nil
}
