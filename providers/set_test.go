package providers

import (
	"sync"
	"testing"
)

// TestSetReplace: readers racing a Replace see either the old providers
// or the new ones, whole (run with -race).
func TestSetReplace(t *testing.T) {
	env := Env{}
	mk := func(name string) Provider {
		p, err := NewDev(name, env)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c := mk("a"), mk("b"), mk("c")
	s := NewSet([]Provider{a, b})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				all := s.All()
				switch len(all) {
				case 2: // a, b
					if all[0] != a || all[1] != b {
						t.Error("torn old generation")
						return
					}
				case 1: // c
					if all[0] != c {
						t.Error("torn new generation")
						return
					}
				default:
					t.Errorf("%d providers", len(all))
					return
				}
				_, _ = s.Get("a")
			}
		}()
	}
	for range 100 {
		s.Replace([]Provider{c})
		s.Replace([]Provider{a, b})
	}
	s.Replace([]Provider{c})
	wg.Wait()
	if _, ok := s.Get("a"); ok {
		t.Fatal("a replaced provider is still found")
	}
	if p, ok := s.Get("c"); !ok || p != c {
		t.Fatal("the new provider is not found")
	}
	var none *Set
	if _, ok := none.Get("a"); ok || none.All() != nil {
		t.Fatal("a nil Set has providers")
	}
}
