// Package providerkit is what crossbus's providers share beside the driver
// contract: the set of open receivers that Provider.Close stops (Receivers),
// URL query parameters declared once as a table that both parses them and
// names them in errors (Params), and the Opener that crossbus.Register takes,
// made from a provider's URL parser and constructor (Opener).
//
// The CloudEvents wire rules the codecs share live in internal/cewire.
package providerkit
