package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/providers/githubtest"
	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

// TestBoundedClient: an answer of up to the bound reads whole; one byte
// more fails with an error naming the answer and the bound.
func TestBoundedClient(t *testing.T) {
	const max = 4096
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		_, _ = fmt.Sscan(r.URL.Query().Get("n"), &n)
		_, _ = io.WriteString(w, strings.Repeat("a", n))
	}))
	t.Cleanup(srv.Close)
	client := boundedClient(&http.Client{Timeout: 5 * time.Second}, max, "test document")
	for _, tc := range []struct {
		n    int
		fail bool
	}{{0, false}, {1, false}, {max - 1, false}, {max, false}, {max + 1, true}, {10 * max, true}, {8 << 20, true}} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			resp, err := client.Get(fmt.Sprintf("%s/?n=%d", srv.URL, tc.n))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			switch {
			case tc.fail && (err == nil || !errors.Is(err, ErrInvalidResponse) || !strings.Contains(err.Error(), "test document larger than 4096 bytes")):
				t.Fatalf("read %d bytes, err %v; want the size error", len(body), err)
			case tc.fail && len(body) > max:
				t.Fatalf("read %d bytes past the bound", len(body))
			case !tc.fail && (err != nil || len(body) != tc.n):
				t.Fatalf("read %d of %d bytes, err %v", len(body), tc.n, err)
			}
		})
	}
}

// TestOversizedUpstreamAnswersRefused: discovery, JWKS and UserInfo
// answers larger than their bounds are refused with an error that says
// so; answers just under the bounds are read.
func TestOversizedUpstreamAnswersRefused(t *testing.T) {
	t.Run("discovery", func(t *testing.T) {
		fake := providertest.New(t, providertest.Options{})
		fake.PadAnswers("discovery", maxDiscoveryBytes)
		p, err := New("oidc", "up", yamlSettings(fixtures["oidc"].yaml(fake)), Env{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.(interface{ Close() error }).Close() })
		rc := p.(ReadinessChecker)
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := rc.Ready(context.Background())
			if err != nil && strings.Contains(err.Error(), fmt.Sprintf("discovery document larger than %d bytes", maxDiscoveryBytes)) {
				break
			}
			if err == nil || time.Now().After(deadline) {
				t.Fatalf("oversized discovery document: ready = %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Back to a normal size: the background retry succeeds.
		fake.PadAnswers("discovery", maxDiscoveryBytes-64<<10)
		waitReady(t, p)
		if _, err := signIn(t, p, BeginRequest{}); err != nil {
			t.Fatalf("sign-in after discovery recovered: %v", err)
		}
	})
	t.Run("JWKS", func(t *testing.T) {
		fake := providertest.New(t, providertest.Options{})
		fetch := httpJWKSFetcher(&http.Client{Timeout: 5 * time.Second}, fake.URL+"/jwks.json")
		fake.PadAnswers("jwks", maxJWKSBytes)
		if _, _, err := fetch(context.Background()); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("key set larger than %d bytes", maxJWKSBytes)) {
			t.Fatalf("oversized key set: %v", err)
		}
		// A sign-in needing those keys is refused as unavailable.
		p := startProvider(t, "oidc", fixtures["oidc"].yaml(fake), Env{})
		if _, err := signIn(t, p, BeginRequest{}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("sign-in with an oversized key set: %v", err)
		}
		fake.PadAnswers("jwks", maxJWKSBytes-64<<10)
		if keys, _, err := fetch(context.Background()); err != nil || len(keys) != 1 {
			t.Fatalf("key set under the bound: %d keys, %v", len(keys), err)
		}
	})
	t.Run("UserInfo", func(t *testing.T) {
		p, fake := startKind(t, "oidc", func(o *providertest.Options) {
			o.UserInfoOnly = []string{"email", "email_verified", "name", "groups"}
		})
		fake.PadAnswers("userinfo", maxUserInfoBytes)
		_, err := signIn(t, p, BeginRequest{})
		var ue *UserError
		if !errors.Is(err, ErrInvalidResponse) || !strings.Contains(err.Error(), fmt.Sprintf("UserInfo answer larger than %d bytes", maxUserInfoBytes)) ||
			!errors.As(err, &ue) || ue.Message != verifyFailed {
			t.Fatalf("oversized UserInfo: %v", err)
		}
		fake.PadAnswers("userinfo", maxUserInfoBytes-64<<10)
		if id, err := signIn(t, p, BeginRequest{}); err != nil || id.Email != "ada@example.com" {
			t.Fatalf("UserInfo under the bound: %+v, %v", id, err)
		}
	})
}

// TestGitHubOversizedAnswersRefused: a GitHub API answer larger than
// githubMaxBody is refused with GitHub's "does not understand" message
// and the bound in the detail; one under it is read.
func TestGitHubOversizedAnswersRefused(t *testing.T) {
	padded := func(n int) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `[{"slug":"platform","name":"platform","id":1,"organization":{"login":"Acme","id":1},"x":"`+
				strings.Repeat("x", n)+`"}]`)
		}
	}
	user := func(n int) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			b, _ := json.Marshal(map[string]any{"id": ada.ID, "login": ada.Login, "name": ada.Name, "x": strings.Repeat("x", n)})
			_, _ = w.Write(b)
		}
	}
	for _, tc := range []struct {
		name, path string
		answer     func(w http.ResponseWriter)
		refused    bool
	}{
		{"user over the bound", "/user", user(githubMaxBody), true},
		{"user under the bound", "/user", user(githubMaxBody - 64<<10), false},
		{"teams page over the bound", "/user/teams", padded(githubMaxBody), true},
		{"teams page under the bound", "/user/teams", padded(githubMaxBody - 64<<10), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gh := githubtest.New(t)
			gh.SignIn(ada)
			gh.SetIntercept(onPath(tc.path, "", tc.answer))
			p, err := New("github", "github", githubSettingsFor(gh, githubtest.ClientSecret, true, "allowed_organizations: [acme]\n"),
				Env{HTTPClient: &http.Client{Timeout: 10 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			id, _, err := githubSignIn(t, p, gh, nil, nil)
			if !tc.refused {
				if err != nil || id.Subject != "583231" {
					t.Fatalf("identity %+v, %v", id, err)
				}
				return
			}
			var ue *UserError
			if !errors.Is(err, ErrInvalidResponse) || !errors.As(err, &ue) || ue.Message != githubMsgBadAnswer ||
				!strings.Contains(err.Error(), fmt.Sprintf("answer is larger than %d bytes", githubMaxBody)) {
				t.Fatalf("oversized %s: %v", tc.path, err)
			}
		})
	}
}
