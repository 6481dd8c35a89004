package admin

import (
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/models"
)

// TestErasureScrub: the details of an audit event lose every trace of a
// deleted person: their id becomes the pseudonym, their emails are
// erased inside any string (any case, map keys too), and in events about
// them a value that is wholly their name, upstream subject or avatar is
// erased; events about others keep values that merely equal the name.
func TestErasureScrub(t *testing.T) {
	u := models.User{Email: "ada@example.com", Name: "Ada Lovelace", AvatarURL: "https://img.example.com/ada.png"}
	ids := []models.Identity{
		{Provider: "github", Subject: "424242", Email: "Ada.L@Corp.example", Name: "ada-l"},
		{Provider: "saml", Subject: "ada@idp.example", Email: ""},
	}
	er := newErasure("u-123", "deleted-user:abc", u, ids)
	cases := []struct {
		name, in string
		about    bool
		want     string // "" = unchanged
	}{
		{"nothing of hers", `{"session_id":"s-1","reason":"expired"}`, true, ""},
		{"email in a value", `{"email":"ada@example.com"}`, false, `{"email":"[erased]"}`},
		{"email in another case inside text", `{"reason":"no user has ADA@EXAMPLE.COM verified"}`, false, `{"reason":"no user has [erased] verified"}`},
		{"identity email", `{"hint":"ada.l@corp.example"}`, false, `{"hint":"[erased]"}`},
		{"email as a map key", `{"by_email":{"ada@example.com":1}}`, false, `{"by_email":{"[erased]":1}}`},
		{"id in a list", `{"users_with_email":["u-9","u-123"]}`, false, `{"users_with_email":["u-9","deleted-user:abc"]}`},
		{"name in an event about her", `{"name":"Ada Lovelace","n":5}`, true, `{"n":5,"name":"[erased]"}`},
		{"name in an event holding her id", `{"name":" ada lovelace ","user":"u-123"}`, false, `{"name":"[erased]","user":"deleted-user:abc"}`},
		{"name in an event about someone else", `{"name":"Ada Lovelace"}`, false, ""},
		{"subject and login", `{"subject":"424242","login":"ada-l","saml":"ada@idp.example"}`, true,
			`{"login":"[erased]","saml":"[erased]","subject":"[erased]"}`},
		{"avatar", `{"avatar":"https://img.example.com/ada.png"}`, true, `{"avatar":"[erased]"}`},
		{"numbers kept exactly", `{"big":12345678901234567890,"email":"ada@example.com"}`, false, `{"big":12345678901234567890,"email":"[erased]"}`},
		{"not JSON", `ada@example.com and u-123`, false, `[erased] and deleted-user:abc`},
		{"an email merely containing hers is erased where hers is", `{"e":"grace.ada@example.com"}`, false, `{"e":"grace.[erased]"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := er.scrub(tc.in, tc.about)
			want := tc.want
			if want == "" {
				want = tc.in
			}
			if got != want || changed != (tc.want != "") {
				t.Fatalf("scrub(%s) = %s, %v; want %s, %v", tc.in, got, changed, want, tc.want != "")
			}
			for _, left := range []string{"u-123", "ada@example.com", "ada.l@corp.example"} {
				if strings.Contains(strings.ToLower(got), left) && !strings.Contains(tc.name, "merely") {
					t.Fatalf("scrub left %q in %s", left, got)
				}
			}
		})
	}
	if p, err := newPseudonym(); err != nil || !strings.HasPrefix(p, DeletedPrefix) || len(p) != len(DeletedPrefix)+24 {
		t.Fatalf("pseudonym = %q, %v", p, err)
	}
}
