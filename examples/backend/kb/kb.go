// Package kb is the example backend's knowledge base: a few routes that
// show how a Go backend trusts Gatehouse with the rbac package. Main
// wires it to the environment; Gatehouse's tests drive it against a live
// Gatehouse.
package kb

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/gatehouse-id/gatehouse/rbac"
)

// Article is one knowledge-base entry.
type Article struct {
	ID     int    `json:"id"`
	OrgID  string `json:"org_id"`
	Title  string `json:"title"`
	Author string `json:"author"`
}

// Store keeps articles in memory, per organization.
type Store struct {
	mu       sync.Mutex
	articles []Article
	// WebSocketOrigins are the browser origins (host patterns, such as
	// "app.example.com") allowed to open /ws besides the backend's own:
	// cross-site WebSocket hijacking is refused by default.
	WebSocketOrigins []string
	// Webhook, when set, serves POST /webhooks/articles: a sender holding
	// one of its secrets adds articles to the webhook's organization.
	Webhook *rbac.Webhook
}

// Handler returns the routes:
//
//	GET  /public  no credential
//	GET  /kb      kb:read   the articles of the caller's organization
//	POST /kb      kb:write  add an article {"title": "..."}
//	GET  /ws      kb:read   WebSocket (an access token in ?token= or an
//	                        API key in ?key=): a welcome, then every
//	                        message echoed back
//	GET  /readyz  nothing   200 once Gatehouse's keys are loaded, else 503
//	POST /webhooks/articles  with Store.Webhook: the webhook's secret
//	                        (Authorization: Bearer) and kb:write
//
// Every route but /public, /readyz and the webhook also accepts
// ?org_id=; naming another organization than the credential's is
// refused with 403.
func Handler(m *rbac.Middleware, st *Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /public", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"message": "anyone may read this"})
	})
	mux.Handle("GET /readyz", m.ReadyHandler())
	if st.Webhook != nil {
		mux.Handle("POST /webhooks/articles", st.Webhook.Authenticate()(m.RequirePermission("kb", "write")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := rbac.PrincipalFrom(r.Context())
			st.addFrom(w, r, p)
		}))))
	}
	mux.Handle("GET /kb", m.RequirePermission("kb", "read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := rbac.PrincipalFrom(r.Context())
		writeJSON(w, http.StatusOK, map[string]any{"principal": p, "articles": st.list(p.OrgID)})
	})))
	mux.Handle("POST /kb", m.RequirePermission("kb", "write")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := rbac.PrincipalFrom(r.Context())
		st.addFrom(w, r, p)
	})))
	mux.Handle("GET /ws", m.RequirePermission("kb", "read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := rbac.PrincipalFrom(r.Context())
		serveSocket(w, r, p, st.WebSocketOrigins)
	})))
	return mux
}

// serveSocket greets the principal and echoes messages until the client
// leaves or the credential expires (a socket outliving its token would
// keep a revoked user connected).
func serveSocket(w http.ResponseWriter, r *http.Request, p *rbac.Principal, origins []string) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: origins})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	// An API key may have no expiry (ExpiresAt zero): then the socket
	// lives as long as the client stays.
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if !p.ExpiresAt.IsZero() {
		ctx, cancel = context.WithDeadline(r.Context(), p.ExpiresAt)
	}
	defer cancel()
	if err := wsjson.Write(ctx, conn, map[string]string{"hello": p.Subject, "org_id": p.OrgID}); err != nil {
		return
	}
	for {
		var msg any
		if err := wsjson.Read(ctx, conn, &msg); err != nil {
			if ctx.Err() != nil {
				conn.Close(websocket.StatusPolicyViolation, "token expired")
			}
			return
		}
		if err := wsjson.Write(ctx, conn, map[string]any{"echo": msg}); err != nil {
			return
		}
	}
}

// addFrom adds the article the request body names, by p.
func (s *Store) addFrom(w http.ResponseWriter, r *http.Request, p *rbac.Principal) {
	var in struct {
		Title string `json:"title"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || in.Title == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "title is required"})
		return
	}
	writeJSON(w, http.StatusCreated, s.add(p.OrgID, in.Title, p.Subject))
}

func (s *Store) list(org string) []Article {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Article{}
	for _, a := range s.articles {
		if a.OrgID == org {
			out = append(out, a)
		}
	}
	return out
}

func (s *Store) add(org, title, author string) Article {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := Article{ID: len(s.articles) + 1, OrgID: org, Title: title, Author: author}
	s.articles = append(s.articles, a)
	return a
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
