package tokens

import (
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// ktBenchManagers returns one initialized manager per algorithm with a
// full access token signed by each.
func ktBenchManagers(b *testing.B) (map[string]*KeyManager, map[string]string, *ktClock) {
	b.Helper()
	clock := newKTClock()
	ms, toks := map[string]*KeyManager{}, map[string]string{}
	for _, alg := range ktAlgs {
		ms[alg] = ktNew(b, models.NewStore(dbtest.SQLite(b)), alg, clock)
		toks[alg] = ktSign(b, ms[alg], ktClaims(clock.Now()), TypAccessToken)
	}
	return ms, toks, clock
}

func BenchmarkMintAccessToken(b *testing.B) {
	ms, _, clock := ktBenchManagers(b)
	claims := ktClaims(clock.Now())
	for _, alg := range ktAlgs {
		b.Run(alg, func(b *testing.B) {
			m := ms[alg]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Sign(&claims, TypAccessToken); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyAccessToken(b *testing.B) {
	ms, toks, clock := ktBenchManagers(b)
	now := clock.Now()
	for _, alg := range ktAlgs {
		b.Run(alg, func(b *testing.B) {
			m, tok := ms[alg], toks[alg]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.VerifyAccessToken(tok, ktIssuer, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBareJoseVerify is the floor VerifyAccessToken is measured
// against: go-jose parsing and signature verification alone, no claims.
func BenchmarkBareJoseVerify(b *testing.B) {
	ms, toks, _ := ktBenchManagers(b)
	for _, alg := range ktAlgs {
		b.Run(alg, func(b *testing.B) {
			tok := toks[alg]
			pub := ms[alg].JWKS().Keys[0].Key
			algs := []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}
			b.ReportAllocs()
			for b.Loop() {
				obj, err := jose.ParseSignedCompact(tok, algs)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := obj.Verify(pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
