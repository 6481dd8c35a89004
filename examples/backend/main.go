// Command backend is an example API that trusts Gatehouse: it verifies
// access tokens locally with the rbac package and enforces kb:read and
// kb:write, with net/http alone (rbac pulls in no Gin; a Gin backend adds
// rbac/ginrbac). See docs/backends.md.
//
//	GATEHOUSE_ISSUER   Gatehouse's issuer (default http://localhost:8080)
//	BACKEND_ADDR       listen address (default :8090)
//	BACKEND_AUDIENCE   the aud Gatehouse mints for this API's clients (default kb-api)
//	BACKEND_CLIENT_ID, BACKEND_CLIENT_SECRET
//	                   a confidential client, to accept X-API-Key (optional)
//	BACKEND_WS_ORIGINS comma-separated browser origins allowed to open /ws (host patterns)
//	BACKEND_WEBHOOK_SECRETS
//	                   comma-separated secrets of the articles webhook, two
//	                   during a rotation (optional: no webhook without)
//	BACKEND_WEBHOOK_ORG the organization the webhook's articles go to
//
// The backend starts even while Gatehouse is down: requests with a
// credential are answered 503 until its keys are loaded (GET /readyz).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-id/gatehouse/examples/backend/kb"
	"github.com/gatehouse-id/gatehouse/rbac"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("backend stopped", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// list reads a comma-separated setting.
func list(name string) []string {
	var out []string
	for o := range strings.SplitSeq(os.Getenv(name), ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

func run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opts := rbac.Options{
		Issuer:   env("GATEHOUSE_ISSUER", "http://localhost:8080"),
		Audience: env("BACKEND_AUDIENCE", "kb-api"),
		Logger:   log,
		// rbac logs nothing by itself: say here which requests were refused
		// and why (never with the credential, which the refusal does not hold).
		OnRefusal: func(r *http.Request, f *rbac.Refusal) {
			attrs := []any{slog.Int("status", f.Status), slog.String("path", r.URL.Path), slog.String("reason", f.Reason),
				slog.String("description", f.Description)}
			if f.Cause != nil && f.Status == http.StatusServiceUnavailable {
				attrs = append(attrs, slog.String("cause", f.Cause.Error()))
			}
			log.InfoContext(r.Context(), "request refused", attrs...)
		},
	}
	if id := os.Getenv("BACKEND_CLIENT_ID"); id != "" {
		opts.APIKeys = &rbac.APIKeyOptions{ClientID: id, ClientSecret: os.Getenv("BACKEND_CLIENT_SECRET")}
	}
	// New waits up to 10 s for Gatehouse, then goes on trying in the
	// background; it fails only for settings that cannot work.
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	m, err := rbac.New(startCtx, opts)
	cancel()
	if err != nil {
		return fmt.Errorf("trust %s: %w", opts.Issuer, err)
	}
	defer m.Close()
	st := &kb.Store{WebSocketOrigins: list("BACKEND_WS_ORIGINS")}
	if secrets := list("BACKEND_WEBHOOK_SECRETS"); len(secrets) > 0 {
		st.Webhook, err = m.Webhook(rbac.WebhookOptions{Name: "articles", Secrets: secrets,
			Permissions: []string{"kb:write"}, OrgID: os.Getenv("BACKEND_WEBHOOK_ORG")})
		if err != nil {
			return err
		}
	}
	srv := &http.Server{Addr: env("BACKEND_ADDR", ":8090"), Handler: kb.Handler(m, st), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("backend listening", slog.String("addr", srv.Addr), slog.String("issuer", opts.Issuer), slog.String("audience", opts.Audience))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
