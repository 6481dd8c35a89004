package signin

import "github.com/gatehouse-id/gatehouse/providers"

// Outcome is a sign-in route's answer, for the handler to render. The
// handler sets Cookies first, whatever follows; then exactly one of these
// answers:
//
//   - Err: the error page or client redirect handlers/errors.go renders
//     for it (an error with a fault kind, an *oauth.RedirectError);
//   - Chooser, Form, DevForm, LogoutConfirm or Device: that page, with
//     Status;
//   - SignedOut: the signed-out page, with Status;
//   - otherwise a redirect to RedirectURL with Status (302 or 303).
type Outcome struct {
	// Cookies are login cookies to set or clear.
	Cookies []Cookie
	Err     error
	// Status is the HTTP status of the page or redirect.
	Status      int
	RedirectURL string
	// Chooser lists the providers a client may sign in with.
	Chooser *Chooser
	// Form is a form the browser posts on its own (a SAML request to the
	// upstream, or an answer posted again from Gatehouse's origin).
	Form *providers.AutoPostForm
	// DevForm is the dev provider's sign-in form (providers.LocalForm).
	DevForm *DevForm
	// LogoutConfirm asks the person to confirm signing out.
	LogoutConfirm *LogoutConfirm
	// Device is the device verification page (RFC 8628).
	Device *DevicePage
	// SignedOut: the person is signed out, and no application asked to
	// have them back.
	SignedOut bool
}

// Chooser is the provider chooser page.
type Chooser struct {
	// Client is the name of the application the person signs in to.
	Client    string
	Providers []ChooserEntry
	// Continue, with prompt=select_account and a live browser session,
	// continues as that session's person (DisplayName is their name).
	Continue *ChooserEntry
}

// ChooserEntry is one provider on the chooser: a link that repeats the
// authorization request with that provider chosen.
type ChooserEntry struct {
	DisplayName string
	URL         string
}

// DevForm is the dev provider's form: it posts back to Action with State,
// showing Error (a rejected entry) and the values entered so far.
type DevForm struct {
	Action string
	State  string
	Error  string
	Email  string
	Name   string
	Groups string
}
