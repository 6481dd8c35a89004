package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/models"
)

const usersUsage = `usage: gatehouse users list [--email EMAIL] [--disabled true|false] [--limit N]
       gatehouse users deactivate|reactivate USER
       gatehouse users delete USER --yes
USER is a user id, or an email exactly one user has`

// usersCmd is what an operator does to people from the console, with the
// server's settings and database: list them, deactivate or reactivate one
// (as the admin API's disable and enable), delete one for good (an
// erasure request, as DELETE /api/v1/admin/users/{id}). Changes are
// audited with "by": "console".
func usersCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usersUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("users "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	email := fs.String("email", "", "")
	disabled := fs.String("disabled", "", "")
	limit := fs.Int("limit", 100, "")
	yes := fs.Bool("yes", false, "")
	// Flags may come before or after the user.
	rest, err := parseInterspersed(fs, args, usersUsage)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch sub {
	case "list":
		if len(rest) != 0 || *limit < 1 || *limit > 10000 {
			return errors.New(usersUsage)
		}
	case "deactivate", "disable", "reactivate", "enable", "delete":
		if len(rest) != 1 || *email != "" || *disabled != "" {
			return errors.New(usersUsage)
		}
	default:
		return fmt.Errorf("unknown users command %q\n%s", sub, usersUsage)
	}
	cfg, db, err := openCurrent(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	store := models.NewStore(db)
	svc := admin.New(admin.NewStore(store), app.NewProvisioner(cfg, store), nil)
	if sub == "list" {
		users, err := svc.ConsoleListUsers(ctx, admin.UserQuery{Email: *email, Disabled: *disabled}, *limit)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tSTATE\tLAST SIGN-IN\tCREATED")
		for _, u := range users {
			state := "active"
			if u.Disabled {
				state = "deactivated"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, orDash(u.Email), orDash(u.Name), state,
				timeOrDash(u.LastLoginAt), u.CreatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	}
	u, err := svc.FindUserRef(ctx, rest[0])
	if err != nil {
		return err
	}
	switch sub {
	case "deactivate", "disable", "reactivate", "enable":
		off := sub == "deactivate" || sub == "disable"
		if _, err := svc.ConsoleSetUserDisabled(ctx, u.ID, off); err != nil {
			return err
		}
		if off {
			fmt.Fprintf(stdout, "deactivated user %s (%s): every session ended, sign-in and refresh refused\n", u.ID, orDash(u.Email))
		} else {
			fmt.Fprintf(stdout, "reactivated user %s (%s): they may sign in again\n", u.ID, orDash(u.Email))
		}
		return nil
	}
	if !*yes {
		return fmt.Errorf("deleting user %s (%s) erases them for good (see docs/admin-api.md, Erasure requests); run again with --yes", u.ID, orDash(u.Email))
	}
	res, err := svc.ConsoleDeleteUser(ctx, u.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted user %s: %d session(s) ended (back-channel logouts queued), %d identit(ies), %d membership(s), %d invitation(s) deleted; %d audit event(s) anonymized\n",
		u.ID, res.SessionsEnded, res.IdentitiesDeleted, res.MembershipsDeleted, res.InvitationsDeleted, res.AuditEventsAnonymized)
	if len(res.APIKeysKept) > 0 {
		fmt.Fprintf(stdout, "API keys they created keep working, with no creator: %s\n", strings.Join(res.APIKeysKept, ", "))
	}
	fmt.Fprintf(stdout, "the audit trail names them %s from now on\n", res.Reference)
	return nil
}

// orDash is s as the console shows it: "-" for none, and quoted with
// escapes when it holds anything but printable characters. Names and
// emails come from upstreams: an escape sequence, a carriage return or a
// bidirectional override in one must not rewrite the operator's
// terminal (hide a row, or show another person's id beside it).
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.QuoteToASCII(s)
	}
	return s
}

// parseInterspersed parses fs's flags wherever they stand among args
// and returns the other arguments in order; an error carries usage.
func parseInterspersed(fs *flag.FlagSet, args []string, usage string) ([]string, error) {
	var rest []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%v\n%s", err, usage)
		}
		if fs.NArg() == 0 {
			break
		}
		rest, args = append(rest, fs.Arg(0)), fs.Args()[1:]
	}
	return rest, nil
}
