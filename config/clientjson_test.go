package config

import (
	"strings"
	"testing"
	"time"
)

// TestClientJSONRoundTrip: a client written as JSON with the YAML file's
// field names reads back the same, without its secret; unknown fields
// are named.
func TestClientJSONRoundTrip(t *testing.T) {
	no := false
	in := Client{ID: "c1", Name: "One", Secret: "s3cret-s3cret-s3cret", RedirectURIs: []string{"https://a.example/cb"},
		GrantTypes: []string{GrantAuthorizationCode}, AccessTokenTTL: Duration(5 * time.Minute), IDTokenOnRefresh: &no,
		Groups: &GroupsClaim{Allow: []string{"g:*"}, StripPrefix: StringList{"g:"}}}
	data, err := ClientJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "s3cret") || !strings.Contains(string(data), `"redirect_uris"`) {
		t.Fatalf("json = %s", data)
	}
	out, err := ParseClientJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != "c1" || out.AccessTokenTTL != in.AccessTokenTTL || out.IDTokenTTL != 0 || *out.IDTokenOnRefresh ||
		out.Groups.StripPrefix[0] != "g:" || out.Secret != "" {
		t.Fatalf("read back = %+v", out)
	}
	if _, err := ParseClientJSON([]byte(`{"id":"x","redirect_uri":"https://a.example"}`)); err == nil ||
		!strings.Contains(err.Error(), "unknown field redirect_uri") || strings.Contains(err.Error(), "line") {
		t.Fatalf("unknown field: %v", err)
	}
}
