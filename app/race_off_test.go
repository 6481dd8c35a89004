//go:build !race

package app_test

// raceEnabled: built with -race.
const raceEnabled = false
