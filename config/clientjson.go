package config

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Clients defined outside the YAML file (stored in the database, created
// through the admin API, the console or Dynamic Client Registration) are
// described by the same Client, written as a JSON object whose field
// names are the YAML file's (redirect_uris, grant_types, ...), and checked
// by the same rules (ValidateClient). The conversion goes through YAML so
// that a field added to Client with its yaml tag is stored, read and
// validated without further work.

// MarshalYAML writes the duration in Go syntax ("15m0s"), which
// UnmarshalYAML reads back; zero (unset) is null.
func (d Duration) MarshalYAML() (any, error) {
	if d == 0 {
		return nil, nil
	}
	return d.String(), nil
}

// ClientJSON returns the client as a JSON object with the YAML file's
// field names. The secret (and its hash) are never part of it: a stored
// client's secrets live in their own columns, hashed.
func ClientJSON(cl Client) ([]byte, error) {
	cl.Secret = ""
	raw, err := yaml.Marshal(&cl)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "secret")
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	return json.Marshal(m)
}

// ClientFields returns the client as a map of its YAML field names, as
// ClientJSON writes it.
func ClientFields(cl Client) (map[string]any, error) {
	data, err := ClientJSON(cl)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	err = json.Unmarshal(data, &m)
	return m, err
}

// ParseClientJSON reads a client from a JSON object with the YAML file's
// field names; a field Client does not have is an error naming it. It
// does not validate: ValidateClient does.
func ParseClientJSON(data []byte) (Client, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return Client{}, fmt.Errorf("not a JSON object: %v", err)
	}
	return ParseClientFields(m)
}

// ParseClientFields is ParseClientJSON for an already decoded object.
func ParseClientFields(m map[string]any) (Client, error) {
	raw, err := yaml.Marshal(m)
	if err != nil {
		return Client{}, err
	}
	var cl Client
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&cl); err != nil && err.Error() != "EOF" {
		return Client{}, cleanFieldError(err)
	}
	return cl, nil
}

var (
	yamlLine       = regexp.MustCompile(`line \d+: `)
	yamlUnknown    = regexp.MustCompile(`field (\S+) not found in type \S+`)
	yamlUnmarshalT = regexp.MustCompile("cannot unmarshal !!(\\w+) `[^`]*` into (\\S+)")
)

// cleanFieldError words a YAML decoding error for a JSON caller: no line
// numbers (there are none in JSON), no Go type names, and never the value
// (which could be a secret put in the wrong field).
func cleanFieldError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = yamlLine.ReplaceAllString(msg, "")
	msg = yamlUnknown.ReplaceAllString(msg, "unknown field $1")
	msg = yamlUnmarshalT.ReplaceAllString(msg, "a $1 where a $2 is expected")
	msg = strings.ReplaceAll(msg, "config.", "")
	return fmt.Errorf("%s", strings.Join(strings.Fields(msg), " "))
}

// ValidateClient checks a client defined outside the YAML file with the
// rules of the file's clients (the same code, the same messages, fields
// named without the clients[i]. prefix): allowed_providers must name
// providers of this configuration, and settings that are warnings in
// development (plain-HTTP redirect URIs) are refused in production, as
// for the file. Gatehouse generates such a client's secret, so the
// client must carry none. It fills defaults as loading the file does
// (grant_types). The error is a *ValidationError.
func (c *Config) ValidateClient(cl *Client) error {
	r := &reader{lookup: func(string) (string, bool) { return "", false }}
	unsafe := func(field, msg string) {
		if c.Production() {
			r.fail(field, "%s: not allowed with GATEHOUSE_ENV=production", msg)
		}
	}
	checkClient(r, "", cl, true, unsafe)
	names := map[string]bool{}
	for _, p := range c.File.Providers {
		names[p.Name] = true
	}
	for _, name := range cl.AllowedProviders {
		if !names[name] && !(name == "dev" && c.DevLogin) {
			r.fail("allowed_providers", "%q is not a configured provider", name)
		}
	}
	if len(r.problems) > 0 {
		return &ValidationError{Problems: r.problems}
	}
	return nil
}

// ValidateConfiguredClients checks the YAML clients of c again (as a
// reload does before swapping them in): every client's rules and unique
// ids. c must come from Load, which hashed the secrets: a confidential
// client needs its SecretHash (a private_key_jwt one has none).
func (c *Config) ValidateConfiguredClients() error {
	r := &reader{}
	seen := map[string]bool{}
	for i := range c.File.Clients {
		cl := c.File.Clients[i]
		field := fmt.Sprintf("clients[%d].", i)
		if cl.ID != "" && seen[cl.ID] {
			r.fail(field+"id", "%q is used by another client", cl.ID)
		}
		seen[cl.ID] = true
		if !cl.Public && cl.TokenEndpointAuthMethod != AuthPrivateKeyJWT && cl.SecretHash == ([32]byte{}) && cl.Secret == "" {
			r.fail(field+"secret", "a confidential client needs a secret of at least 16 characters")
		}
		// The secret is already hashed: check the rest as a managed one.
		cl.Secret = ""
		checkClient(r, field, &cl, true, func(string, string) {})
	}
	if len(r.problems) > 0 {
		return &ValidationError{Problems: r.problems}
	}
	return nil
}
