package rbac

import "time"

// SetTimingForTest shortens the start's backoff and the development
// warning's interval for the tests of this package; the returned func
// restores them. Middlewares read them in New.
func SetTimingForTest(minRetry, maxRetry, devWarn time.Duration) (restore func()) {
	a, b, c := retryMin, retryMax, devWarnInterval
	retryMin, retryMax, devWarnInterval = minRetry, maxRetry, devWarn
	return func() { retryMin, retryMax, devWarnInterval = a, b, c }
}

// Jittered exposes the backoff's jitter.
var Jittered = jittered
