package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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
	r    *bufio.Reader
	req  []byte
	buf  bytes.Buffer
	used time.Time
}

// leanIdle: an idle connection older than this is not reused (HAProxy's
// timeout client is 30 s, Gatehouse's IdleTimeout 120 s).
var leanIdle = 10 * time.Second

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
	return &leanClient{addr: addr, host: u.Host, path: strings.TrimSuffix(u.EscapedPath(), "/") + path, auth: auth,
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
		if time.Since(conn.used) > leanIdle {
			conn.Close()
			conn = nil
		}
	default:
	}
	if conn == nil {
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
	conn.used = time.Now()
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
	for err == nil && resp.StatusCode/100 == 1 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(conn.r, nil) // 1xx: the answer follows
	}
	if err != nil {
		return transportKind(err), false
	}
	conn.buf.Reset()
	lr := &io.LimitedReader{R: resp.Body, N: 1 << 20}
	_, err = conn.buf.ReadFrom(lr)
	if err != nil {
		resp.Body.Close()
		return transportKind(err), false
	}
	keep = !resp.Close && lr.N > 0 && resp.StatusCode != http.StatusSwitchingProtocols // body read to its end
	if resp.Body.Close() != nil || conn.r.Buffered() > 0 {
		keep = false
	}
	return answerKind(resp.StatusCode, conn.buf.Bytes()), keep
}

// tokenFields reads the access, refresh and ID tokens of a token answer.
// The shape Gatehouse writes (compact JSON, access_token first, each
// member once, no escapes in the tokens) is read by a scan; anything else
// is decoded in full.
func tokenFields(body []byte) (*tokenAnswer, error) {
	body = bytes.TrimSpace(body)
	if a, ok := plainTokenFields(body); ok {
		return a, nil
	}
	var a tokenAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// plainTokenFields scans body for the tokens; ok is false when body is
// not of the plain shape, and the caller decodes it in full.
func plainTokenFields(body []byte) (a *tokenAnswer, ok bool) {
	if !bytes.HasPrefix(body, []byte(`{"access_token":"`)) || !bytes.HasSuffix(body, []byte("}")) {
		return nil, false
	}
	a = &tokenAnswer{}
	for _, f := range [...]struct {
		name string
		to   *string
	}{{"access_token", &a.AccessToken}, {"refresh_token", &a.RefreshToken}, {"id_token", &a.IDToken}} {
		name := []byte(`"` + f.name + `"`)
		switch bytes.Count(body, name) {
		case 0:
			continue
		case 1:
		default:
			return nil, false // a repeated member: the decoder's rules decide
		}
		i := bytes.Index(body, append(name, ':', '"'))
		if i < 0 {
			return nil, false // another spacing or a value that is not a string
		}
		rest := body[i+len(name)+2:]
		j := bytes.IndexByte(rest, '"')
		if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
			return nil, false
		}
		*f.to = string(rest[:j])
	}
	return a, true
}
