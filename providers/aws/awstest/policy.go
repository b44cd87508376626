package awstest

import (
	"encoding/json"
	"unicode/utf8"
)

func utf8Valid(s string) bool { return utf8.ValidString(s) }

// policyAllows evaluates the part of an SQS queue policy that decides
// whether a service (sns.amazonaws.com, events.amazonaws.com) may send to
// the queue on behalf of sourceARN: an Allow statement whose principal
// names the service (or "*"), whose action covers sqs:SendMessage, whose
// resource covers the queue, and whose aws:SourceArn condition (ArnEquals,
// ArnLike, StringEquals or StringLike), if any, matches sourceARN; and no
// Deny statement that matches the same way.
func policyAllows(policy, service, sourceARN, queueARN string) bool {
	if policy == "" {
		return false
	}
	var doc struct {
		Statement json.RawMessage
	}
	if json.Unmarshal([]byte(policy), &doc) != nil {
		return false
	}
	var stmts []statement
	if json.Unmarshal(doc.Statement, &stmts) != nil {
		var one statement
		if json.Unmarshal(doc.Statement, &one) != nil {
			return false
		}
		stmts = []statement{one}
	}
	allowed := false
	for _, st := range stmts {
		if !st.matches(service, sourceARN, queueARN) {
			continue
		}
		switch st.Effect {
		case "Deny":
			return false
		case "Allow":
			allowed = true
		}
	}
	return allowed
}

type statement struct {
	Effect    string
	Principal json.RawMessage
	Action    json.RawMessage
	Resource  json.RawMessage
	Condition map[string]map[string]json.RawMessage
}

// strs reads a JSON string or array of strings.
func strs(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

func anyGlob(patterns []string, v string) bool {
	for _, p := range patterns {
		if glob(p, v) {
			return true
		}
	}
	return false
}

// glob matches IAM wildcards: * is any run of characters (including none),
// ? is exactly one.
func glob(p, v string) bool {
	star, mark := -1, 0
	i, j := 0, 0
	for j < len(v) {
		switch {
		case i < len(p) && (p[i] == '?' || p[i] == v[j]):
			i++
			j++
		case i < len(p) && p[i] == '*':
			star, mark = i, j
			i++
		case star >= 0:
			i = star + 1
			mark++
			j = mark
		default:
			return false
		}
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

func (st statement) matches(service, sourceARN, queueARN string) bool {
	principalOK := false
	if p := strs(st.Principal); len(p) == 1 && p[0] == "*" {
		principalOK = true
	} else {
		var m map[string]json.RawMessage
		if json.Unmarshal(st.Principal, &m) == nil {
			principalOK = contains(strs(m["Service"]), service) || contains(strs(m["AWS"]), "*")
		}
	}
	if !principalOK || !anyGlob(strs(st.Action), "sqs:SendMessage") && !contains(strs(st.Action), "*") {
		return false
	}
	if res := strs(st.Resource); len(res) > 0 && !anyGlob(res, queueARN) {
		return false
	}
	for op, kv := range st.Condition {
		for key, raw := range kv {
			if key != "aws:SourceArn" && key != "aws:sourceArn" {
				continue
			}
			vals := strs(raw)
			switch op {
			case "ArnEquals", "StringEquals":
				if !contains(vals, sourceARN) {
					return false
				}
			case "ArnLike", "StringLike":
				if !anyGlob(vals, sourceARN) {
					return false
				}
			}
		}
	}
	return true
}
