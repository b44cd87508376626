package servicebus

// ReceiveErrorForTest maps err as a receive from topic's subscription sub
// would.
func ReceiveErrorForTest(topic, sub string, err error) error {
	return receiveError(entity{topic: topic, sub: sub}, err)
}
