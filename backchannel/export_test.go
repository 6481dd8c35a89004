package backchannel

import (
	"testing"
	"time"
)

// SetWriteGrace shortens, for the dispatchers New makes until the test
// ends, the time a delivery has beyond Timeout to record its outcome.
func SetWriteGrace(t testing.TB, d time.Duration) {
	old := writeGrace
	writeGrace = d
	t.Cleanup(func() { writeGrace = old })
}
