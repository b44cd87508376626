package kafka

// DeadLetterQueueTopic names the topic that holds a subscription's dead
// letters (DeadLetterTopic). Operations tools (package ops) use it to keep
// the dead letters they leave in place when they take others out: a
// consumer group commits offsets, not single records, so those left are
// appended again at the topic's end before the originals are committed
// past.
func (p *Provider) DeadLetterQueueTopic(topic, subscription string) string {
	return DeadLetterTopic(topic, subscription)
}
