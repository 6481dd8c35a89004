package providers

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestDevProviderRefusedInProduction(t *testing.T) {
	if _, err := New("dev", "dev", nil, Env{Production: true}); err == nil || !strings.Contains(err.Error(), "production") {
		t.Fatalf("err = %v", err)
	}
}

func TestDevProviderForm(t *testing.T) {
	p, err := NewDev("dev", Env{})
	if err != nil {
		t.Fatal(err)
	}
	complete := func(form url.Values) (*Identity, error) {
		r := httptest.NewRequest("POST", "/auth/callback/dev", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return p.Complete(context.Background(), CompleteRequest{HTTP: r})
	}
	id, err := complete(url.Values{"email": {"Ada@Example.com"}, "name": {" Ada "}, "groups": {"eng, admins,eng,,"}})
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "ada@example.com" || !id.EmailVerified || id.Name != "Ada" || id.Provider != "dev" ||
		strings.Join(id.Groups, "|") != "dev:group:eng|dev:group:admins" || id.AMR != nil || id.ACR != "" || id.UpstreamLogout != "" {
		t.Fatalf("identity = %+v", id)
	}
	again, _ := complete(url.Values{"email": {"ada@example.com"}})
	if again.Subject != id.Subject {
		t.Fatal("the subject must be stable per email")
	}
	for name, form := range map[string]url.Values{
		"no email":        {},
		"bad email":       {"email": {"not an email"}},
		"display address": {"email": {"Ada <ada@example.com>"}},
		"long name":       {"email": {"a@example.com"}, "name": {strings.Repeat("n", 201)}},
		"long group":      {"email": {"a@example.com"}, "groups": {strings.Repeat("g", 101)}},
	} {
		_, err := complete(form)
		var ue *UserError
		if !errors.As(err, &ue) || ue.Message == "" || !errors.Is(err, ErrInvalidResponse) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	r := httptest.NewRequest("GET", "/auth/callback/dev", nil)
	if _, err := p.Complete(context.Background(), CompleteRequest{HTTP: r}); err == nil {
		t.Error("GET completed a sign-in")
	}
}

func TestRegistry(t *testing.T) {
	if _, err := New("nope", "x", nil, Env{}); err == nil || !strings.Contains(err.Error(), `unknown provider type "nope"`) {
		t.Fatalf("err = %v", err)
	}
}
