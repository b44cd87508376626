package dynamodb

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute names shared by the tables.
const (
	attrPK  = "pk"
	attrSK  = "sk"
	attrTTL = "ttl" // epoch seconds, for DynamoDB's time to live
)

// Limits of DynamoDB key attributes, in bytes.
const (
	maxPartitionKey = 2048
	maxSortKey      = 1024
)

// keyName encodes s for a key attribute under a one-letter tag: tag+":"+s
// when s is valid UTF-8 (DynamoDB strings must be) and the result fits in
// limit bytes; else tag+"~"+base64url(s) when that fits; else
// tag+"#"+hex(sha256(s)), which cannot be decoded. The three forms never
// collide.
func keyName(tag, s string, limit int) string {
	if utf8.ValidString(s) && len(tag)+1+len(s) <= limit {
		return tag + ":" + s
	}
	if len(tag)+1+base64.RawURLEncoding.EncodedLen(len(s)) <= limit {
		return tag + "~" + base64.RawURLEncoding.EncodeToString([]byte(s))
	}
	sum := sha256.Sum256([]byte(s))
	return tag + "#" + hex.EncodeToString(sum[:])
}

// parseKeyName decodes keyName's first two forms.
func parseKeyName(tag, k string) (string, error) {
	if rest, ok := strings.CutPrefix(k, tag+":"); ok {
		return rest, nil
	}
	if rest, ok := strings.CutPrefix(k, tag+"~"); ok {
		b, err := base64.RawURLEncoding.DecodeString(rest)
		if err != nil {
			return "", fmt.Errorf("key %q: %w", k, err)
		}
		return string(b), nil
	}
	return "", fmt.Errorf("key %q is not a %q name", k, tag)
}

// pad formats n with leading zeros to 20 digits (every uint64), so sort
// keys order as the numbers do.
func pad(n uint64) string {
	var b [20]byte
	s := strconv.AppendUint(b[:0], n, 10)
	out := make([]byte, 20)
	for i := range out {
		out[i] = '0'
	}
	copy(out[20-len(s):], s)
	return string(out)
}

func attrS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func attrN(v uint64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatUint(v, 10)}
}

func attrI(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func attrB(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }

func attrBool(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }

var errAttr = errors.New("dynamodb: unexpected item attribute")

func getS(item map[string]types.AttributeValue, name string) (string, error) {
	switch v := item[name].(type) {
	case *types.AttributeValueMemberS:
		return v.Value, nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("%w: %s is %T, not a string", errAttr, name, item[name])
}

func getN(item map[string]types.AttributeValue, name string) (uint64, error) {
	return getNumber(item, name, func(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) })
}

func getI(item map[string]types.AttributeValue, name string) (int64, error) {
	return getNumber(item, name, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) })
}

// getNumber reads a number attribute with parse (0 when it is missing).
func getNumber[T any](item map[string]types.AttributeValue, name string, parse func(string) (T, error)) (T, error) {
	var zero T
	switch v := item[name].(type) {
	case *types.AttributeValueMemberN:
		n, err := parse(v.Value)
		if err != nil {
			return zero, fmt.Errorf("%w: %s: %w", errAttr, name, err)
		}
		return n, nil
	case nil:
		return zero, nil
	}
	return zero, fmt.Errorf("%w: %s is %T, not a number", errAttr, name, item[name])
}

func getB(item map[string]types.AttributeValue, name string) ([]byte, error) {
	switch v := item[name].(type) {
	case *types.AttributeValueMemberB:
		return v.Value, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("%w: %s is %T, not binary", errAttr, name, item[name])
}

func getBool(item map[string]types.AttributeValue, name string) bool {
	v, ok := item[name].(*types.AttributeValueMemberBOOL)
	return ok && v.Value
}

// conditionFailed reports whether err is a failed condition expression.
func conditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// opError names the operation and, for a table that is missing, says so.
func opError(op, table string, err error) error {
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("dynamodb: %s: table %q does not exist (create it with CreateTables): %w", op, table, err)
	}
	return fmt.Errorf("dynamodb: %s: %w", op, err)
}

// ctxErr names the operation that the caller's context ended.
func ctxErr(op string, err error) error {
	return fmt.Errorf("dynamodb: %s: %w", op, err)
}
