package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/models"
)

const clientsUsage = `usage: gatehouse clients list
       gatehouse clients show CLIENT_ID
       gatehouse clients create --file FILE | --json JSON
       gatehouse clients update CLIENT_ID --file FILE | --json JSON
       gatehouse clients rotate-secret CLIENT_ID [--overlap 24h]
       gatehouse clients delete CLIENT_ID --yes
FILE (YAML or JSON, - for standard input) and JSON hold one client with the
configuration file's field names, its id as client_id; update changes only
the fields given (null resets one)`

// clientsCmd manages the clients stored in the database from the
// console, with the server's settings and database, as the admin API's
// /clients routes do: the configuration file's clients are listed and
// shown but not changed. Running replicas take changes at their next
// poll (GATEHOUSE_CLIENTS_POLL_INTERVAL). Changes are audited with
// "by": "console". A generated secret is printed once.
func clientsCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(clientsUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("clients "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("file", "", "")
	inline := fs.String("json", "", "")
	overlap := fs.String("overlap", "", "")
	yes := fs.Bool("yes", false, "")
	rest, err := parseInterspersed(fs, args, clientsUsage)
	if err != nil {
		return err
	}
	wantArgs := map[string]int{"list": 0, "create": 0, "show": 1, "update": 1, "rotate-secret": 1, "delete": 1}
	n, known := wantArgs[sub]
	switch {
	case !known:
		return fmt.Errorf("unknown clients command %q\n%s", sub, clientsUsage)
	case len(rest) != n:
		return errors.New(clientsUsage)
	case (sub == "create" || sub == "update") && (*file == "") == (*inline == ""):
		return fmt.Errorf("give the client with --file or --json (one of them)\n%s", clientsUsage)
	}
	var fields map[string]any
	if sub == "create" || sub == "update" {
		var err error
		if fields, err = readClientFields(*file, *inline); err != nil {
			return err
		}
	}
	ctx := context.Background()
	cfg, db, err := openCurrent(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	store := models.NewStore(db)
	svc := admin.New(admin.NewStore(store), app.NewProvisioner(cfg, store), nil)
	svc.SetClients(app.ClientOptions(cfg, nil, nil))
	switch sub {
	case "list":
		list, err := svc.ConsoleListClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT ID\tSOURCE\tTYPE\tNAME\tGRANT TYPES")
		for _, c := range list.Items {
			kind := "confidential"
			if c["public"] == true {
				kind = "public"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", orDash(fmt.Sprint(c["client_id"])), c["source"], kind,
				orDash(str(c["name"])), orDash(joinList(c["grant_types"])))
		}
		return tw.Flush()
	case "show":
		c, err := svc.ConsoleGetClient(ctx, rest[0])
		if err != nil {
			return err
		}
		return printJSON(stdout, c)
	case "create":
		res, err := svc.ConsoleCreateClient(ctx, fields)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created client %s\n", orDash(fmt.Sprint(res.Client["client_id"])))
		printSecret(stdout, res)
		return nil
	case "update":
		res, err := svc.ConsoleUpdateClient(ctx, rest[0], fields)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "updated client %s\n", orDash(rest[0]))
		printSecret(stdout, res)
		return nil
	case "rotate-secret":
		d, err := admin.ParseSecretOverlap(*overlap)
		if err != nil {
			return err
		}
		res, err := svc.ConsoleRotateClientSecret(ctx, rest[0], d)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rotated the secret of client %s\n", orDash(rest[0]))
		printSecret(stdout, res)
		return nil
	}
	if !*yes {
		return fmt.Errorf("deleting client %s ends its sessions and it cannot sign anyone in again; run again with --yes", orDash(rest[0]))
	}
	res, err := svc.ConsoleDeleteClient(ctx, rest[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted client %s: %d session(s) ended\n", orDash(rest[0]), res.SessionsEnded)
	return nil
}

// readClientFields reads a client's fields from a file (YAML or JSON;
// "-" is standard input) or inline JSON.
func readClientFields(file, inline string) (map[string]any, error) {
	data := []byte(inline)
	if file != "" {
		var err error
		if file == "-" {
			data, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return nil, fmt.Errorf("read the client: %w", err)
		}
	}
	var fields map[string]any
	// YAML reads JSON too; the fields go on as JSON values.
	if err := yaml.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, errors.New("the client must be one YAML or JSON object with the configuration file's field names")
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("the client: %w", err)
	}
	fields = nil
	err = json.Unmarshal(raw, &fields)
	return fields, err
}

func printSecret(w io.Writer, res *admin.ClientSecret) {
	if res.Secret == "" {
		return
	}
	fmt.Fprintf(w, "client_secret: %s\n", res.Secret)
	fmt.Fprintln(w, "(shown this once: Gatehouse keeps only its hash)")
	if res.PreviousSecretExpiresAt != nil {
		fmt.Fprintf(w, "the previous secret keeps working until %s\n", res.PreviousSecretExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func joinList(v any) string {
	l, _ := v.([]any)
	parts := make([]string, 0, len(l))
	for _, x := range l {
		parts = append(parts, fmt.Sprint(x))
	}
	return strings.Join(parts, ",")
}
