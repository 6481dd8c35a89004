package fault

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

type stated struct{ k Kind }

func (s stated) Error() string { return "stated " + string(s.k) }
func (s stated) Kind() Kind    { return s.k }

type publicOnly struct{ m string }

func (p publicOnly) Error() string         { return "detail" }
func (p publicOnly) PublicMessage() string { return p.m }

var errDriver = errors.New("driver: connection reset")

func init() {
	RegisterClassifier(func(err error) (Kind, bool) {
		if errors.Is(err, errDriver) {
			return Unavailable, true
		}
		return "", false
	})
}

func TestOf(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, ""},
		{"plain", errors.New("boom"), Internal},
		{"given", New(NotFound, errors.New("no row")), NotFound},
		{"wrapped", fmt.Errorf("load: %w", New(Conflict, errors.New("taken"))), Conflict},
		{"outermost wins", New(InvalidGrant, fmt.Errorf("redeem: %w", New(NotFound, errors.New("no row")))), InvalidGrant},
		{"stated by a type", fmt.Errorf("x: %w", stated{Forbidden}), Forbidden},
		{"classified", fmt.Errorf("query: %w", errDriver), Unavailable},
		{"a stated kind beats a classifier", New(InvalidGrant, errDriver), InvalidGrant},
		{"joined", errors.Join(errors.New("a"), New(TooLarge, errors.New("b"))), TooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Of(tc.err); got != tc.want {
				t.Errorf("Of = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMessageOf(t *testing.T) {
	cause := errors.New("secret detail")
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"none", cause, ""},
		{"kind only", New(NotFound, cause), ""},
		{"explained", Explain(Forbidden, "you are not an owner", cause), "you are not an owner"},
		{"wrapped", fmt.Errorf("ctx: %w", Explain(Conflict, "slug taken", cause)), "slug taken"},
		{"outermost wins", Explain(UpstreamDenied, "outer", Explain(UpstreamDenied, "inner", cause)), "outer"},
		{"the kind's decider has no message: nothing below speaks for it", New(SignInInterrupted, Explain(UpstreamDenied, "inner", cause)), ""},
		{"a message above the decider", fmt.Errorf("x: %w", Explain(Busy, "above", New(Unavailable, cause))), "above"},
		{"a typed message on an unkinded error", fmt.Errorf("x: %w", publicOnly{"shown"}), "shown"},
		{"joined", errors.Join(cause, Explain(Busy, "later", nil)), "later"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := MessageOf(tc.err); got != tc.want {
				t.Errorf("MessageOf = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestErrorKeepsTheCause(t *testing.T) {
	cause := errors.New("the detail")
	err := Explain(Forbidden, "shown", cause)
	if err.Error() != "the detail" || !errors.Is(err, cause) {
		t.Errorf("Error() = %q, errors.Is(cause) = %v", err.Error(), errors.Is(err, cause))
	}
	if New(NotFound, nil) != nil {
		t.Error("New(k, nil) is not nil")
	}
}

func TestKindsAreDistinct(t *testing.T) {
	seen := map[Kind]bool{}
	for _, k := range Kinds {
		if k == "" || seen[k] {
			t.Errorf("kind %q empty or listed twice", k)
		}
		seen[k] = true
	}
	if !slices.Contains(Kinds, Internal) {
		t.Error("Internal missing")
	}
}

// TestRetryAfter: a delay given to an error survives wrapping, keeps the
// error's kind and message, and nil or a non-positive delay adds nothing.
func TestRetryAfter(t *testing.T) {
	base := Explain(UpstreamUnconfirmed, "retry later", errors.New("cause"))
	err := fmt.Errorf("refresh: %w", WithRetryAfter(base, 12*time.Second))
	if RetryAfterOf(err) != 12*time.Second || Of(err) != UpstreamUnconfirmed || MessageOf(err) != "retry later" {
		t.Fatalf("RetryAfterOf %v, kind %q, message %q", RetryAfterOf(err), Of(err), MessageOf(err))
	}
	if WithRetryAfter(nil, time.Second) != nil || WithRetryAfter(base, 0) != base || RetryAfterOf(base) != 0 {
		t.Fatal("nil or a zero delay changed something")
	}
}
