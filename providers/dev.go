package providers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
)

// The dev provider is a local sign-in form for development and demos:
// whoever fills it in becomes that person. It is refused in production.
type devProvider struct {
	name        string
	displayName string
}

type devSettings struct {
	DisplayName string `yaml:"display_name"`
}

func init() { Register("dev", newDev) }

func newDev(name string, settings Settings, env Env) (Provider, error) {
	if env.Production {
		return nil, errors.New("the dev provider cannot be used with GATEHOUSE_ENV=production")
	}
	var s devSettings
	if settings != nil {
		if err := settings.Decode(&s); err != nil {
			return nil, err
		}
	}
	if s.DisplayName == "" {
		s.DisplayName = "Development sign-in"
	}
	return &devProvider{name: name, displayName: s.DisplayName}, nil
}

// NewDev returns the built-in dev provider (GATEHOUSE_DEV_LOGIN).
func NewDev(name string, env Env) (Provider, error) { return newDev(name, nil, env) }

func (p *devProvider) Name() string        { return p.name }
func (p *devProvider) Type() string        { return "dev" }
func (p *devProvider) DisplayName() string { return p.displayName }
func (p *devProvider) LocalForm()          {}

// Begin sends the browser to the form at the callback URL.
func (p *devProvider) Begin(_ context.Context, req BeginRequest) (*Challenge, error) {
	u, err := url.Parse(req.CallbackURL)
	if err != nil {
		return nil, fmt.Errorf("callback URL: %w", err)
	}
	q := u.Query()
	q.Set("state", req.State)
	if req.LoginHint != "" {
		q.Set("login_hint", req.LoginHint)
	}
	u.RawQuery = q.Encode()
	return &Challenge{RedirectURL: u.String()}, nil
}

// Complete reads the posted form: email (required), name, and groups
// (comma-separated, reported as "dev:group:<value>"). The identity claims
// no authentication method (AMR empty, ACR empty): nobody proved anything.
func (p *devProvider) Complete(_ context.Context, req CompleteRequest) (*Identity, error) {
	if req.HTTP.Method != "POST" {
		return nil, &UserError{Message: "Fill in the sign-in form.", Err: fmt.Errorf("%w: dev sign-in expects a POST", ErrInvalidResponse)}
	}
	email := strings.TrimSpace(req.HTTP.PostFormValue("email"))
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 {
		return nil, &UserError{Message: "Enter a valid email address, such as ada@example.com.", Err: fmt.Errorf("%w: invalid email", ErrInvalidResponse)}
	}
	email = strings.ToLower(email)
	name := strings.TrimSpace(req.HTTP.PostFormValue("name"))
	if len(name) > 200 {
		return nil, &UserError{Message: "The name is too long (200 characters at most).", Err: fmt.Errorf("%w: name too long", ErrInvalidResponse)}
	}
	var groups []string
	seen := map[string]bool{}
	for _, g := range strings.Split(req.HTTP.PostFormValue("groups"), ",") {
		g = strings.TrimSpace(g)
		if g == "" || seen[g] {
			continue
		}
		if len(g) > 100 {
			return nil, &UserError{Message: "A group name is too long (100 characters at most).", Err: fmt.Errorf("%w: group too long", ErrInvalidResponse)}
		}
		seen[g] = true
		groups = append(groups, "dev:group:"+g)
	}
	// The subject is stable per email, so signing in again is the same person.
	sum := sha256.Sum256([]byte(email))
	return &Identity{
		Provider:      p.name,
		Subject:       hex.EncodeToString(sum[:16]),
		Email:         email,
		EmailVerified: true,
		Name:          name,
		Groups:        groups,
		Claims:        map[string]any{"email": email, "name": name},
		// No AMR: the form asks for no password or any other proof, and
		// RFC 8176 has no value for "typed an email address". Gatehouse
		// reports its default ("ext") for a sign-in without one.
	}, nil
}
