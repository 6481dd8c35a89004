package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
)

const dcrToken = "initial-access-token-0123456789abcdef"

// register sends a registration request (method, path under the
// issuer, bearer token, JSON body) and returns status, headers and body.
func register(t *testing.T, s *apptest.Server, method, path, token string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
}

// TestDynamicClientRegistration: with registration on, the initial
// access token registers web clients within the limits (redirect hosts,
// grant types, count), which then sign people in; a missing or wrong
// token, a redirect host or grant type outside the limits are refused;
// RFC 7592 reads, replaces and deletes with the registration access
// token only; bodies are bounded; the tokens and secrets are in no audit
// event or log line. Off by default: no endpoint, nothing in discovery.
func TestDynamicClientRegistration(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			logs := &syncBuffer{}
			s := apptest.Start(t, apptest.Options{YAML: rbacYAML, Postgres: pg, Log: logs, Env: map[string]string{
				"GATEHOUSE_DCR_ENABLED": "true", "GATEHOUSE_DCR_INITIAL_ACCESS_TOKEN": dcrToken,
				"GATEHOUSE_DCR_REDIRECT_HOSTS": "127.0.0.1,*.apps.example.com", "GATEHOUSE_DCR_MAX_CLIENTS": "2",
			}})
			_, _, disc := register(t, s, "GET", "/.well-known/openid-configuration", "", nil)
			if disc["registration_endpoint"] != s.URL+"/auth/register" {
				t.Errorf("registration_endpoint = %v", disc["registration_endpoint"])
			}
			good := map[string]any{"redirect_uris": []string{"http://127.0.0.1:9/dcr/callback"}, "client_name": "Registered",
				"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "client_secret_basic",
				"software_id": "ignored-metadata"}
			refusals := []struct {
				name   string
				token  string
				body   any
				status int
				code   string
			}{
				{"no initial token", "", good, 401, "invalid_token"},
				{"wrong initial token", dcrToken + "x", good, 401, "invalid_token"},
				{"redirect host outside", dcrToken, map[string]any{"redirect_uris": []string{"https://evil.example.net/cb"}}, 400, "invalid_redirect_uri"},
				{"look-alike host", dcrToken, map[string]any{"redirect_uris": []string{"https://apps.example.com.evil.net/cb"}}, 400, "invalid_redirect_uri"},
				{"plain http", dcrToken, map[string]any{"redirect_uris": []string{"http://a.apps.example.com/cb"}}, 400, "invalid_redirect_uri"},
				{"fragment", dcrToken, map[string]any{"redirect_uris": []string{"https://a.apps.example.com/cb#x"}}, 400, "invalid_redirect_uri"},
				{"no redirect", dcrToken, map[string]any{"client_name": "x"}, 400, "invalid_redirect_uri"},
				{"grant outside", dcrToken, map[string]any{"redirect_uris": []string{"https://a.apps.example.com/cb"},
					"grant_types": []string{"authorization_code", "client_credentials"}}, 400, "invalid_client_metadata"},
				{"implicit", dcrToken, map[string]any{"redirect_uris": []string{"https://a.apps.example.com/cb"}, "response_types": []string{"token"}}, 400, "invalid_client_metadata"},
				{"chosen id", dcrToken, map[string]any{"client_id": "kb-web", "redirect_uris": []string{"https://a.apps.example.com/cb"}}, 400, "invalid_client_metadata"},
				{"not json", dcrToken, "{", 400, "invalid_client_metadata"},
				{"oversized", dcrToken, `{"client_name":"` + strings.Repeat("x", 100<<10) + `"}`, 413, "invalid_request"},
			}
			for _, r := range refusals {
				status, h, out := register(t, s, "POST", "/auth/register", r.token, r.body)
				if status != r.status || out["error"] != r.code {
					t.Errorf("%s: %d %v, want %d %s", r.name, status, out, r.status, r.code)
				}
				if status == 401 && !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
					t.Errorf("%s: WWW-Authenticate = %q", r.name, h.Get("WWW-Authenticate"))
				}
			}

			status, _, reg := register(t, s, "POST", "/auth/register", dcrToken, good)
			if status != 201 {
				t.Fatalf("register = %d %v", status, reg)
			}
			id, secret, regToken := reg["client_id"].(string), reg["client_secret"].(string), reg["registration_access_token"].(string)
			if id == "" || len(secret) < 40 || len(regToken) < 40 || reg["registration_client_uri"] != s.URL+"/auth/register/"+id ||
				reg["token_endpoint_auth_method"] != "client_secret_basic" || reg["client_name"] != "Registered" {
				t.Fatalf("registered = %v", reg)
			}
			// The registered client signs someone in at once.
			codeFlow(t, s, id, secret, "http://127.0.0.1:9/dcr/callback", "reg@example.com")

			// RFC 7592: the registration access token, and only it.
			path := "/auth/register/" + id
			for _, tok := range []string{"", "wrong-token", dcrToken, secret} {
				if status, _, out := register(t, s, "GET", path, tok, nil); status != 401 {
					t.Errorf("read with a wrong token = %d %v, want 401", status, out)
				}
			}
			if status, _, _ := register(t, s, "GET", "/auth/register/kb-web", regToken, nil); status != 401 {
				t.Errorf("read of a configured client = %d, want 401", status)
			}
			if status, _, out := register(t, s, "GET", path, regToken, nil); status != 200 || out["client_id"] != id || out["client_secret"] != nil {
				t.Errorf("read = %d %v", status, out)
			}
			upd := map[string]any{"client_id": id, "redirect_uris": []string{"https://one.apps.example.com/cb"}, "token_endpoint_auth_method": "client_secret_basic"}
			if status, _, out := register(t, s, "PUT", path, "wrong-token", upd); status != 401 {
				t.Errorf("update with a wrong token = %d %v", status, out)
			}
			if status, _, out := register(t, s, "PUT", path, regToken, map[string]any{"client_id": id, "redirect_uris": []string{"https://evil.example.net/cb"}}); status != 400 {
				t.Errorf("update outside the limits = %d %v", status, out)
			}
			if status, _, out := register(t, s, "PUT", path, regToken, upd); status != 200 || out["client_name"] != nil ||
				strList(out["redirect_uris"]) != "https://one.apps.example.com/cb" {
				t.Errorf("update = %d %v", status, out)
			}
			// The limit on registered clients.
			if status, _, out := register(t, s, "POST", "/auth/register", dcrToken, map[string]any{"redirect_uris": []string{"https://b.apps.example.com/cb"}, "token_endpoint_auth_method": "none"}); status != 201 || out["client_secret"] != nil {
				t.Errorf("second (public) registration = %d %v", status, out)
			}
			if status, _, out := register(t, s, "POST", "/auth/register", dcrToken, good); status != 403 {
				t.Errorf("registration over the limit = %d %v, want 403", status, out)
			}
			if status, _, _ := register(t, s, "DELETE", path, "wrong-token", nil); status != 401 {
				t.Errorf("delete with a wrong token = %d", status)
			}
			if status, _, _ := register(t, s, "DELETE", path, regToken, nil); status != 204 {
				t.Errorf("delete = %d", status)
			}
			if _, ok := s.OAuth.Client(id); ok {
				t.Error("deleted client still known")
			}
			if status, _, _ := register(t, s, "GET", path, regToken, nil); status != 401 {
				t.Errorf("read after delete = %d, want 401", status)
			}

			var events []models.AuditEvent
			if err := s.Store.Gorm().Where("type LIKE ?", "client.%").Order("id").Find(&events).Error; err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, e := range events {
				types = append(types, e.Type)
				for _, v := range []string{secret, regToken, dcrToken} {
					if strings.Contains(e.Details, v) {
						t.Errorf("%s holds a secret or token", e.Type)
					}
				}
				if !strings.Contains(e.Details, `"by":"registration"`) {
					t.Errorf("%s details = %s", e.Type, e.Details)
				}
			}
			if got := strings.Join(types, " "); got != "client.registered client.updated client.registered client.deleted" {
				t.Errorf("audit events = %s", got)
			}
			for _, v := range []string{secret, regToken, dcrToken} {
				if strings.Contains(logs.String(), v) {
					t.Error("a secret or token is in the log")
				}
			}
		})
	}
}

// TestDynamicClientRegistrationOff: by default there is no registration
// endpoint, in discovery or at /auth/register.
func TestDynamicClientRegistrationOff(t *testing.T) {
	s := apptest.Start(t, apptest.Options{YAML: rbacYAML})
	if _, _, disc := register(t, s, "GET", "/.well-known/openid-configuration", "", nil); disc["registration_endpoint"] != nil {
		t.Errorf("registration_endpoint = %v", disc["registration_endpoint"])
	}
	if status, _, _ := register(t, s, "POST", "/auth/register", dcrToken, map[string]any{"redirect_uris": []string{"http://127.0.0.1:9/cb"}}); status != 404 {
		t.Errorf("POST /auth/register = %d, want 404", status)
	}
}

func strList(v any) string {
	l, _ := v.([]any)
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i], _ = x.(string)
	}
	return strings.Join(parts, ",")
}

// TestDynamicClientRegistrationAuthMethods: the answers name the
// token_endpoint_auth_method the client must use (client_secret_post
// when it registered that one), and an RFC 7592 update that leaves the
// method out returns it to the default, so a confidential client can
// be made public and back.
func TestDynamicClientRegistrationAuthMethods(t *testing.T) {
	s := apptest.Start(t, apptest.Options{YAML: rbacYAML, Env: map[string]string{
		"GATEHOUSE_DCR_ENABLED": "true", "GATEHOUSE_DCR_INITIAL_ACCESS_TOKEN": dcrToken,
		"GATEHOUSE_DCR_REDIRECT_HOSTS": "127.0.0.1",
	}})
	uris := []string{"http://127.0.0.1:9/dcr/callback"}
	status, _, reg := register(t, s, "POST", "/auth/register", dcrToken, map[string]any{"redirect_uris": uris,
		"token_endpoint_auth_method": "client_secret_post"})
	if status != 201 || reg["token_endpoint_auth_method"] != "client_secret_post" {
		t.Fatalf("register with client_secret_post = %d %v", status, reg)
	}
	id, regToken := reg["client_id"].(string), reg["registration_access_token"].(string)
	path := "/auth/register/" + id
	if status, _, out := register(t, s, "GET", path, regToken, nil); status != 200 || out["token_endpoint_auth_method"] != "client_secret_post" {
		t.Fatalf("read = %d %v", status, out)
	}
	if status, _, out := register(t, s, "PUT", path, regToken, map[string]any{"client_id": id, "redirect_uris": uris,
		"token_endpoint_auth_method": "none"}); status != 200 || out["token_endpoint_auth_method"] != "none" || out["client_secret"] != nil {
		t.Fatalf("made public = %d %v", status, out)
	}
	status, _, out := register(t, s, "PUT", path, regToken, map[string]any{"client_id": id, "redirect_uris": uris})
	if status != 200 || out["token_endpoint_auth_method"] != "client_secret_basic" || out["client_secret"] == nil {
		t.Fatalf("made confidential again = %d %v", status, out)
	}
	if c, ok := s.OAuth.Client(id); !ok || c.Public || c.TokenEndpointAuthMethod != "" {
		t.Fatalf("served client = %+v, %v", c, ok)
	}
}
