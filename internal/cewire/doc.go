// Package cewire holds the CloudEvents wire rules that every codec of
// crossbus shares: the extension-name rule and the context attribute names,
// setting a context attribute from its binary-mode text (with the
// required-attribute check and a cache of parsed sources), and the
// application-property prefixes of the AMQP binding. The header bindings
// (NATS, Kafka), Pub/Sub, SQS and SNS, Service Bus and the Azure Functions
// adapter read binary-mode events through it, and the root package checks
// extension names with it.
package cewire
