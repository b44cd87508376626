//go:build !race

package eventpattern

const raceEnabled = false
