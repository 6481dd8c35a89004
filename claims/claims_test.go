package claims_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/gatehouse-id/gatehouse/claims"
)

// TestAccessWireFormat pins the JSON of an access token's claims: names,
// order, and which claims are always present.
func TestAccessWireFormat(t *testing.T) {
	full := claims.Access{Issuer: "https://auth.example.com", Subject: "u1", Audience: []string{"spa", "kb-api"},
		Expiry: 200, IssuedAt: 100, NotBefore: 100, ID: "j1", ClientID: "spa", SessionID: "s1", Scope: "openid email",
		Name: "Ada", IdP: "github", OrgID: "o1", Roles: []string{"admin"}, Permissions: []string{"kb:*"}}
	full.SetEmail("ada@example.com", false)
	for _, tc := range []struct {
		name string
		c    claims.Access
		want string
	}{
		{"full", full, `{"iss":"https://auth.example.com","sub":"u1","aud":["spa","kb-api"],"exp":200,"iat":100,"nbf":100,` +
			`"jti":"j1","client_id":"spa","sid":"s1","scope":"openid email","email":"ada@example.com","email_verified":false,` +
			`"name":"Ada","idp":"github","org_id":"o1","roles":["admin"],"permissions":["kb:*"]}`},
		{"client credentials", claims.Access{Issuer: "i", Subject: "c", Audience: []string{"c"}, Expiry: 2, IssuedAt: 1, ID: "j", ClientID: "c"},
			`{"iss":"i","sub":"c","aud":["c"],"exp":2,"iat":1,"jti":"j","client_id":"c"}`},
		{"empty", claims.Access{}, `{"iss":"","sub":"","aud":null,"exp":0,"iat":0,"jti":"","client_id":""}`},
	} {
		b, err := json.Marshal(tc.c)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", tc.name, b, err, tc.want)
		}
	}
}

// TestIntrospectedWireFormat pins the members of an introspection answer
// in their order; an empty one encodes to nothing.
func TestIntrospectedWireFormat(t *testing.T) {
	answer := struct {
		Active bool `json:"active"`
		claims.Introspected
	}{true, claims.Introspected{Scope: "openid", ClientID: "spa", Username: "ada@example.com", TokenType: claims.TokenTypeAccessToken,
		Exp: 200, Iat: 100, Nbf: 100, Sub: "u1", Aud: []string{"spa"}, Iss: "https://auth.example.com", Jti: "j1", SessionID: "s1",
		OrgID: "o1", Roles: []string{"admin"}, Permissions: []string{"kb:*"}}}
	want := `{"active":true,"scope":"openid","client_id":"spa","username":"ada@example.com","token_type":"access_token",` +
		`"exp":200,"iat":100,"nbf":100,"sub":"u1","aud":["spa"],"iss":"https://auth.example.com","jti":"j1","sid":"s1",` +
		`"org_id":"o1","roles":["admin"],"permissions":["kb:*"]}`
	if b, err := json.Marshal(answer); err != nil || string(b) != want {
		t.Fatalf("\n got %s (%v)\nwant %s", b, err, want)
	}
	answer.Active, answer.Introspected = false, claims.Introspected{}
	if b, _ := json.Marshal(answer); string(b) != `{"active":false}` {
		t.Fatalf("inactive answer = %s", b)
	}
}

func TestSetEmail(t *testing.T) {
	var c claims.Access
	c.SetEmail("", true)
	if c.Email != "" || c.EmailVerified != nil {
		t.Fatalf("no email: %+v", c)
	}
	c.SetEmail("ada@example.com", true)
	if c.EmailVerified == nil || !*c.EmailVerified {
		t.Fatalf("verified email: %+v", c)
	}
}

func TestAudienceDecodesBothForms(t *testing.T) {
	for in, want := range map[string][]string{`"kb-api"`: {"kb-api"}, `["a","b"]`: {"a", "b"}, `[]`: {}, `null`: nil} {
		var a claims.Audience
		if err := json.Unmarshal([]byte(in), &a); err != nil || !slices.Equal(a, want) || (want == nil) != (a == nil) {
			t.Errorf("%s: %v, %v", in, a, err)
		}
	}
	for _, in := range []string{`5`, `{"a":1}`, `[1]`, `"unterminated`} {
		var a claims.Audience
		if err := json.Unmarshal([]byte(in), &a); err == nil {
			t.Errorf("%s accepted as %v", in, a)
		}
	}
}
