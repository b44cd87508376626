// Package interop holds the tests that run crossbus's providers against the
// CloudEvents Go SDK's own protocol bindings, in both directions: HTTP (the
// Pub/Sub push and Event Grid webhook handlers, and the Event Grid
// namespace and basic-topic paths), Kafka (protocol/kafka_sarama against
// kfake), NATS JetStream (protocol/nats_jetstream against an embedded
// nats-server), Pub/Sub (protocol/pubsub against pstest) and AMQP
// (protocol/amqp against sbtest, the Service Bus test broker).
//
// The AMQP binding needs go-amqp v0.17, which cannot share a build with the
// v1 that azservicebus uses, so its side runs in a separate program: the
// module in the amqpsdk directory. TestAMQP builds it with the go command
// (skipping, with the reason, when it cannot) and drives it.
//
// The package has no code outside its tests; README.md's interoperability
// matrix summarises what they establish.
package interop
