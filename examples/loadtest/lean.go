package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// A lean HTTP/1.1 client for the token endpoint, used by the modes that
// post to it over plain HTTP. The load tool shares the machine's cores
// with Gatehouse and its database, so every microsecond it spends is one
// Gatehouse does not get: net/http's client hands each request and
// answer between goroutines, and decoding the whole answer's JSON is a
// tenth of the rest. This client writes the request on a kept-alive
// connection it owns and reads the answer with net/http's own parser in
// the same goroutine (wrk and h2load keep their cost down the same way).

// leanClient posts forms to one path of one loopback HTTP server.
type leanClient struct {
	addr, host, path string
	auth             string // the Authorization header's value, or ""
	timeout          time.Duration
	idle             chan *leanConn
}

// leanConn is one kept-alive connection, used by one worker at a time.
type leanConn struct {
	net.Conn
	r   *bufio.Reader
	req []byte
	buf bytes.Buffer
}

// newLeanClient returns a client posting to path of g's server as g's
// client (client_secret_basic), or nil when g's server is not plain HTTP
// (then the requests go through net/http).
func newLeanClient(g *gatehouse, path string, slots int) *leanClient {
	u, err := url.Parse(g.base)
	if err != nil || u.Scheme != "http" {
		return nil
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(g.client)+":"+url.QueryEscape(g.secret)))
	return &leanClient{addr: addr, host: u.Host, path: strings.TrimSuffix(u.Path, "/") + path, auth: auth,
		timeout: g.timeout, idle: make(chan *leanConn, slots)}
}

// post sends form and returns what do makes of the answer, or the
// transport's failure ("transport: …") when there is no answer. do gets
// the body and answerKind's verdict on it; the body is valid only during
// the call: do copies what it keeps.
func (c *leanClient) post(ctx context.Context, form string, do func(body []byte, kind string) string) string {
	var conn *leanConn
	select {
	case conn = <-c.idle:
	default:
		raw, err := (&net.Dialer{Timeout: c.timeout}).DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return transportKind(err)
		}
		conn = &leanConn{Conn: raw, r: bufio.NewReaderSize(raw, 16<<10)}
	}
	// Not the context's deadline: a request in flight when a run ends
	// finishes (a few milliseconds) instead of failing just before the
	// workers see the run is over.
	_ = conn.SetDeadline(time.Now().Add(c.timeout))
	kind, keep := c.roundTrip(conn, form)
	if kind == "" || strings.HasPrefix(kind, "http ") {
		kind = do(conn.buf.Bytes(), kind)
	}
	if keep {
		select {
		case c.idle <- conn:
			return kind
		default:
		}
	}
	conn.Close()
	return kind
}

// roundTrip writes the request and reads the answer into conn.buf; keep
// reports that the connection may carry another request.
func (c *leanClient) roundTrip(conn *leanConn, form string) (kind string, keep bool) {
	req := append(conn.req[:0], "POST "...)
	req = append(req, c.path...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, c.host...)
	req = append(req, "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "...)
	req = strconv.AppendInt(req, int64(len(form)), 10)
	if c.auth != "" {
		req = append(req, "\r\nAuthorization: "...)
		req = append(req, c.auth...)
	}
	req = append(req, "\r\n\r\n"...)
	req = append(req, form...)
	conn.req = req
	if _, err := conn.Write(req); err != nil {
		return transportKind(err), false
	}
	resp, err := http.ReadResponse(conn.r, nil)
	if err != nil {
		return transportKind(err), false
	}
	conn.buf.Reset()
	_, err = conn.buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return transportKind(err), false
	}
	return answerKind(resp.StatusCode, conn.buf.Bytes()), !resp.Close
}

// errNotPlain says a JSON string value held an escape: the caller decodes
// the answer in full instead.
var errNotPlain = errors.New("escaped JSON string")

// jsonString returns the value of the first member named name in a JSON
// object whose string values hold no escapes (token answers: base64url,
// dots and words), "" when there is none, and errNotPlain when the value
// holds a backslash.
func jsonString(body []byte, name string) (string, error) {
	key := `"` + name + `":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return "", nil
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", errNotPlain
	}
	if bytes.IndexByte(rest[:j], '\\') >= 0 {
		return "", errNotPlain
	}
	return string(rest[:j]), nil
}

// tokenFields reads the access, refresh and ID tokens of a token answer,
// decoding the JSON in full only when it is not of the plain shape
// Gatehouse writes (no access token found, or an escaped value).
func tokenFields(body []byte) (*tokenAnswer, error) {
	var a tokenAnswer
	var err error
	for _, f := range []struct {
		name string
		to   *string
	}{{"access_token", &a.AccessToken}, {"refresh_token", &a.RefreshToken}, {"id_token", &a.IDToken}} {
		if *f.to, err = jsonString(body, f.name); err != nil {
			break
		}
	}
	body = bytes.TrimSpace(body)
	if err == nil && a.AccessToken != "" && len(body) > 1 && body[0] == '{' && body[len(body)-1] == '}' {
		return &a, nil
	}
	a = tokenAnswer{}
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, err
	}
	return &a, nil
}
