package eventpattern

// ToEventBridge translates p to an EventBridge rule event pattern for events
// crossbus publishes to EventBridge: CloudEvent source as the entry's
// Source, type as its DetailType, and the whole structured CloudEvent (JSON
// data embedded as JSON, not as data_base64) as its Detail.
//
// The rule applies the entire pattern to "detail", where every field of the
// CloudEvent's JSON form lives (data.amount at detail.data.amount), and also
// copies top-level conditions on source and type to the envelope's
// "source" and "detail-type" fields, which EventBridge matches first. As
// EventBridge evaluates the same pattern language over the same JSON, the
// translation is exact; the error is always nil.
func ToEventBridge(p *Pattern) (json []byte, exact bool, err error) {
	var source, typ *fieldNode
	for _, f := range p.root.fields {
		switch {
		case f.leaf == nil || f.leaf.ifMissing:
		case f.attr == attrSource:
			source = f
		case f.attr == attrType:
			typ = f
		}
	}
	b := []byte(`{"detail":`)
	b = append(b, p.src...)
	if typ != nil {
		b = append(b, `,"detail-type":`...)
		b = appendLeaf(b, typ.leaf)
	}
	if source != nil {
		b = append(b, `,"source":`...)
		b = appendLeaf(b, source.leaf)
	}
	return append(b, '}'), true, nil
}
