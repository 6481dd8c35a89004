// Command gatehouse runs the Gatehouse server and its maintenance tasks.
//
//	gatehouse [serve]              run the server (the default)
//	gatehouse migrate up|down|status
//	gatehouse keys rotate|list
//	gatehouse admin grant EMAIL
//	gatehouse users list|deactivate|reactivate|delete
//	gatehouse clients list|show|create|update|rotate-secret|delete
//	gatehouse doctor
//	gatehouse healthcheck
//	gatehouse version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

const usage = `usage: gatehouse [command]

commands:
  serve                   run the server (default)
  migrate up|down|status  apply, roll back one, or list schema migrations
  keys rotate|list        rotate the token signing key, or list keys
  admin grant EMAIL       make EMAIL an owner of the administrators' organization
  users list [--email EMAIL] [--disabled true|false] [--limit N]
                          list users, oldest first
  users deactivate USER   disable USER (an id, or an email one user has): sessions end, sign-in refused
  users reactivate USER   enable USER again
  users delete USER --yes delete USER for good (an erasure request)
  clients list|show|create|update|rotate-secret|delete
                          manage the clients stored in the database (gatehouse clients for usage)
  doctor                  check the configuration against the deployment, one line per check
  healthcheck [--url URL] exit 0 if this machine's Gatehouse answers /healthz (container HEALTHCHECK)
  version                 print the version

Settings come from the environment (see .env.example).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(stderr)
	case "migrate":
		err = migrate(args, stdout, stderr)
	case "keys":
		err = keys(args, stdout, stderr)
	case "admin":
		err = adminCmd(args, stdout, stderr)
	case "users":
		err = usersCmd(args, stdout, stderr)
	case "clients":
		err = clientsCmd(args, stdout, stderr)
	case "healthcheck":
		err = healthcheck(args, stdout)
	case "doctor":
		return doctor(args, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "gatehouse", buildVersion())
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse:", app.OneLine(err))
		return 1
	}
	return 0
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

func loadConfig(stderr io.Writer) (*config.Config, error) {
	cfg, warnings, err := config.Load(config.Options{})
	if err != nil {
		return nil, err
	}
	log := app.NewLoggerFormat(stderr, cfg.LogLevel, cfg.LogFormat)
	for _, w := range warnings {
		log.Warn("unsafe development default", "setting", w)
	}
	return cfg, nil
}

func serve(stderr io.Writer) error {
	cfg, err := loadConfig(stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := app.NewLoggerFormat(stderr, cfg.LogLevel, cfg.LogFormat)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := app.Listen(cfg.Addr)
	if err != nil {
		return err
	}
	return a.Serve(ctx, ln)
}

// openDatabase loads the configuration and connects, applying nothing.
func openDatabase(ctx context.Context, stderr io.Writer) (*config.Config, *models.DB, *migrations.Migrator, error) {
	cfg, err := loadConfig(stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	db, m, err := app.OpenDatabase(ctx, cfg)
	return cfg, db, m, err
}

// openCurrent opens the database and checks its schema is current, for
// commands that read and write it.
func openCurrent(ctx context.Context, stderr io.Writer) (*config.Config, *models.DB, error) {
	cfg, db, m, err := openDatabase(ctx, stderr)
	if err != nil {
		return nil, nil, err
	}
	if err := m.CheckCurrent(ctx); err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return cfg, db, nil
}

func migrate(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: gatehouse migrate up|down|status")
	}
	ctx := context.Background()
	_, db, m, err := openDatabase(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	switch args[0] {
	case "up":
		applied, err := m.Up(ctx)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintf(stdout, "schema is current (version %d)\n", m.Latest())
		}
		for _, v := range applied {
			fmt.Fprintf(stdout, "applied %05d\n", v)
		}
	case "down":
		v, err := m.Down(ctx)
		if err != nil {
			return err
		}
		if v == 0 {
			fmt.Fprintln(stdout, "nothing to roll back")
		} else {
			fmt.Fprintf(stdout, "rolled back %05d\n", v)
		}
	case "status":
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
		for _, s := range st {
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			fmt.Fprintf(tw, "%05d\t%s\t%s\t%s\n", s.Version, state, s.AppliedAt, s.Name)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown migrate command %q: use up, down or status", args[0])
	}
	return nil
}

func keys(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || (args[0] != "rotate" && args[0] != "list") {
		return errors.New("usage: gatehouse keys rotate|list")
	}
	ctx := context.Background()
	cfg, db, err := openCurrent(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	km, err := app.OpenKeys(ctx, cfg, models.NewStore(db))
	if err != nil {
		return err
	}
	if args[0] == "rotate" {
		k, err := km.Rotate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new key %s (%s) published now, signs from %s\n", k.KID, k.Algorithm, k.ActivatesAt.UTC().Format(time.RFC3339))
		return nil
	}
	list, err := km.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tSIGNS FROM\tRETIRED\tUNPUBLISHED AFTER")
	for _, k := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Algorithm, k.State,
			k.ActivatesAt.UTC().Format(time.RFC3339), timeOrDash(k.RetiredAt), timeOrDash(k.DeleteAfter))
	}
	return tw.Flush()
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// adminCmd bootstraps administrators: the person with the email becomes an
// owner of the administrators' organization, at once if they have signed
// in through a provider trusted for email that verified it, else at their
// first such sign-in.
func adminCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "grant" || !strings.Contains(args[1], "@") {
		return errors.New("usage: gatehouse admin grant EMAIL")
	}
	ctx := context.Background()
	cfg, db, err := openCurrent(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	store := models.NewStore(db)
	svc := admin.New(admin.NewStore(store), app.NewProvisioner(cfg, store), nil)
	res, err := svc.GrantAdmin(ctx, args[1])
	if err != nil {
		return err
	}
	if res.Created {
		fmt.Fprintf(stdout, "created the administrators' organization %s (slug %s)\n", models.AdminOrgID, models.AdminOrgSlug)
	}
	if res.UserID != "" {
		fmt.Fprintf(stdout, "%s (user %s) is now an owner of %s\n", args[1], res.UserID, models.AdminOrgID)
	} else {
		if n := len(res.PassedOver); n > 0 {
			fmt.Fprintf(stdout, "%d user(s) (%s) have %s verified only by providers not trusted for email (trusted_email off): not made owner\n",
				n, strings.Join(res.PassedOver, ", "), args[1])
		}
		fmt.Fprintf(stdout, "invitation %s makes %s owner of %s at their first sign-in with that email verified by a provider trusted for email (valid 7 days)\n",
			res.InvitationID, args[1], models.AdminOrgID)
	}
	fmt.Fprintf(stdout, "sign in with organization=%s, through a client whose audience includes %s, to use /api/v1/admin\n",
		models.AdminOrgID, cfg.AdminAudience)
	return nil
}
