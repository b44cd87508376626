// Package pattern implements Amazon EventBridge's event-pattern language
// over CloudEvents, with an index for matching many patterns at once and
// translators that push patterns down to native provider filters.
//
// # Event form
//
// A pattern is matched against the CloudEvent's JSON form: the context
// attributes and extensions as top-level fields (specversion, id, source,
// type, subject, time, datacontenttype, dataschema, and every extension by
// name) and "data" as the decoded JSON data. Data under a JSON content type
// (application/json, text/json, any +json; or no content type with JSON
// data) is matched as JSON; textual data (text/*, XML) as a string; binary
// data is absent. time is RFC 3339 in UTC, as the CloudEvents SDK writes it.
// See Doc.
//
// # Language
//
// The supported pattern language is EventBridge's, with its rules and
// limits: every field of a pattern object must match and a value list
// matches when any entry does; exact strings, numbers (compared as EventBridge
// does, between -5e9 and 5e9 with six decimal places, so 100 equals 1e2),
// booleans and null; prefix, suffix, equals-ignore-case and their
// combinations; anything-but (values, prefix, suffix, equals-ignore-case,
// wildcard); numeric ranges; exists; wildcard; cidr; and "$or". Arrays in
// events match when any element does, with array-consistent matching of
// objects inside arrays. Compile rejects what EventBridge rejects (empty
// objects or arrays, an "$or" of fewer than two objects, "**" in a wildcard,
// a host-sized CIDR mask, ...) with a *CompileError naming the JSON path.
//
// # Matching many patterns
//
// Pattern.Match evaluates one pattern. A Matcher holds many patterns under
// ids, indexes them by a field each requires, and decodes an event once for
// all of them; a Doc lets callers share one decode among matchers.
//
// # Push-down
//
// ToEventBridge, ToPubSubFilter, ToServiceBusSQL and ToSNSFilterPolicy
// translate a pattern to a native filter and report whether it is exact or
// a superset; a caller must keep matching locally unless it is exact.
package eventpattern
