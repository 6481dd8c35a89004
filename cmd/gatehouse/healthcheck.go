package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/config"
)

// healthcheck asks this machine's Gatehouse for /healthz and fails unless
// it answers 200: the container HEALTHCHECK of an image without a shell
// or curl. It reads only GATEHOUSE_ADDR (default :8080), so it works with
// any configuration, and talks to the loopback address.
func healthcheck(args []string, stdout io.Writer) error {
	target := ""
	switch {
	case len(args) == 0:
		addr := os.Getenv("GATEHOUSE_ADDR")
		if addr == "" {
			addr = ":8080"
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("GATEHOUSE_ADDR %q: %w", addr, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		target = "http://" + net.JoinHostPort(host, port) + "/healthz"
	case len(args) == 2 && args[0] == "--url":
		target = args[1]
	default:
		return errors.New("usage: gatehouse healthcheck [--url URL]")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d", target, resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// doctor prints one line per check of the configuration against its
// deployment and exits 1 when any check fails (2 on a configuration that
// does not load).
func doctor(args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintln(stderr, "usage: gatehouse doctor")
		return 2
	}
	cfg, _, err := config.Load(config.Options{})
	if err != nil {
		fmt.Fprintln(stdout, app.DoctorCheck{Status: app.DoctorFail, What: "configuration: " + app.OneLine(err), Todo: "fix the settings named"})
		return 1
	}
	failed := false
	for _, c := range app.Doctor(context.Background(), cfg, app.DoctorOptions{}) {
		fmt.Fprintln(stdout, c)
		failed = failed || c.Status == app.DoctorFail
	}
	if failed {
		return 1
	}
	return 0
}
