package tokens

import "time"

// RetainAtLeast lengthens how long keys retired from now on stay
// published to at least d (a configuration reload that gave a client
// longer token lifetimes); it never shortens it, since tokens already
// signed may live as long as the longest lifetime ever configured.
func (m *KeyManager) RetainAtLeast(d time.Duration) {
	for {
		cur := m.retain.Load()
		if int64(d) <= cur || m.retain.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}
