package app_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestConsoleRefusesUnsolicitedAnswers: /admin/ reached with a sign-in
// answer this tab did not start (a link anyone can send: an error with
// a description of the sender's choosing, or a code) shows the console's
// own refusal and the sign-in button, never the link's text, and
// redeems nothing; the address bar keeps no query.
func TestConsoleRefusesUnsolicitedAnswers(t *testing.T) {
	ctx := browserContext(t)
	w := newWorldWith(t, false, consoleYAML)
	c := &console{t: t, ctx: ctx, url: w.s.URL}
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1280, 860)); err != nil {
		t.Fatal(err)
	}
	phish := "Gatehouse moved: sign in at https://evil.example/admin and call +1 555 0100"
	for _, query := range []url.Values{
		{"error": {"access_denied"}, "error_description": {phish}},
		{"error": {"access_denied"}, "error_description": {phish}, "state": {"guessed"}},
		{"code": {"attacker-code"}, "state": {"guessed"}, "iss": {w.s.URL}},
	} {
		var text, loc string
		c.run("open /admin/?"+query.Encode(),
			chromedp.Navigate(c.url+"/admin/?"+query.Encode()),
			chromedp.WaitVisible("#signin", chromedp.ByID),
			chromedp.Text("#view", &text, chromedp.ByID),
			chromedp.Location(&loc),
		)
		if strings.Contains(text, "evil.example") || !strings.Contains(text, "not started here") {
			t.Errorf("/admin/?%s shows:\n%s", query.Encode(), text)
		}
		if loc != c.url+"/admin/" {
			t.Errorf("address after the answer = %s", loc)
		}
	}
}
