package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/admin"
)

// The admin API's text inputs (path segments, query parameters, JSON
// strings) must be text a database stores: valid UTF-8 without NUL.
// PostgreSQL refuses anything else with an error that surfaced as a 500
// (and SQLite cuts a LIKE pattern at a NUL, so q=%00 matched every
// user); such input is a 400 naming the parameter, on both databases.

// textOK reports whether s is valid UTF-8 without NUL.
func textOK(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// plainTextInput refuses a request whose route parameters or query hold
// anything but plain text.
func (h *Admin) plainTextInput(c *gin.Context) {
	bad := ""
	for _, p := range c.Params {
		if !textOK(p.Value) {
			bad = p.Key
			break
		}
	}
	if bad == "" {
		for k, vs := range c.Request.URL.Query() {
			if !textOK(k) {
				bad = "query"
			}
			for _, v := range vs {
				if !textOK(v) {
					bad = k
				}
			}
			if bad != "" {
				break
			}
		}
	}
	if bad != "" {
		writeAdminError(c, h.Log, &admin.InputError{Field: bad, Reason: "must be UTF-8 text without NUL characters"})
		c.Abort()
		return
	}
	c.Next()
}

// errNULInBody: a JSON string of the body holds a NUL (\u0000); JSON
// decoding already replaces invalid UTF-8.
var errNULInBody = &admin.InputError{Field: "body", Reason: "must not contain NUL characters (\\u0000)"}

// checkBodyText reads the body and refuses one whose JSON strings hold a
// NUL, returning what was read for decoding.
func checkBodyText(body io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return raw, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) || err != nil {
			return raw, nil // the decoder proper reports malformed JSON
		}
		if s, ok := tok.(string); ok && strings.ContainsRune(s, 0) {
			return nil, errNULInBody
		}
	}
}
