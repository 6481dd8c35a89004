package gatehouse_test

// The map of docs/architecture.md, enforced: this test reads the module's
// import graph and the exported API of the service packages and fails on
// every arrow or signature the architecture forbids, naming the rule and
// why it exists. Change a rule here and in docs/architecture.md together.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/gatehouse-id/gatehouse"

// goPackage is the part of `go list -json` the rules read.
type goPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// rel is a package's path inside the module ("" for the root).
func rel(importPath string) string {
	return strings.TrimPrefix(strings.TrimPrefix(importPath, module), "/")
}

func ours(importPath string) bool {
	return importPath == module || strings.HasPrefix(importPath, module+"/")
}

// under reports whether pkg is dir or a package below it.
func under(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }

// leafPackages (and any package below one) import nothing of Gatehouse;
// providers and rbac may use them.
var leafPackages = []string{"fault", "dburl", "jwks", "claims", "ratelimit", "web"}

func isLeaf(pkg string) bool {
	return !testSupport(pkg) && slices.ContainsFunc(leafPackages, func(leaf string) bool { return under(pkg, leaf) })
}

// testSupportPackages exist for tests (fakes of upstreams, real test
// databases, whole servers): the layering rules do not apply to them, and
// no other package may depend on them.
var testSupportPackages = []string{"app/apptest", "models/dbtest", "providers/providertest", "providers/githubtest",
	"providers/samltest", "ratelimit/redistest", "migrations/migrationstest"}

func testSupport(pkg string) bool { return slices.Contains(testSupportPackages, pkg) }

// ginAllowed are the packages that may depend on Gin: the HTTP layer and
// what assembles it.
func ginAllowed(pkg string) bool {
	return under(pkg, "handlers") || under(pkg, "app") || under(pkg, "cmd") || pkg == "rbac/ginrbac" || under(pkg, "examples")
}

// noHTTPInAPI are the packages whose exported API speaks in domain
// values, with the net/http types each must not use: the services none;
// signin takes the request an upstream answered with (providers parse it
// with crewjam/saml and x/oauth2) but answers with an outcome the handler
// writes, never cookies or a response writer.
var noHTTPInAPI = map[string][]string{
	"oauth":        httpTypes,
	"tokens":       httpTypes,
	"provisioning": httpTypes,
	"admin":        httpTypes,
	"signin":       {"ResponseWriter", "Cookie"},
}

// httpTypes are the net/http types that tie an API to one transport.
var httpTypes = []string{"Request", "ResponseWriter", "Cookie"}

// violation is one broken rule in one package.
type violation struct {
	pkg, rule string
}

// checkImports applies the import rules to the graph.
func checkImports(pkgs []goPackage) []violation {
	var out []violation
	add := func(pkg, format string, args ...any) {
		out = append(out, violation{pkg, fmt.Sprintf(format, args...)})
	}
	for _, p := range pkgs {
		name := rel(p.ImportPath)
		if testSupport(name) {
			continue
		}
		for _, imp := range p.Imports {
			if under(name, "handlers") && under(imp, "gorm.io") {
				add(name, "imports %s: handlers parse, call a service and render; storage stays behind the services", imp)
			}
			if !ours(imp) {
				continue
			}
			to := rel(imp)
			switch {
			case isLeaf(name):
				add(name, "imports %s: leaf packages import nothing of Gatehouse, so that providers and the rbac package backends embed can use them without pulling in the server", to)
			case under(name, "providers") && !isLeaf(to) && !under(to, "providers"):
				add(name, "imports %s: providers import only leaf packages (%s), so that an upstream kind can be added, tested and reasoned about without the rest of Gatehouse", to, strings.Join(leafPackages, ", "))
			case under(to, "cmd"):
				add(name, "imports %s: nothing imports a command; move what is shared into a package", to)
			case under(to, "app") && !under(name, "app") && !under(name, "cmd"):
				add(name, "imports %s: only the binary assembles the application; a package that needs app has its arrow pointing up", to)
			case under(name, "oauth") && under(to, "signin"):
				add(name, "imports %s: browser sign-in builds on the authorization server, never the reverse", to)
			case under(name, "handlers") && under(to, "models"):
				add(name, "imports %s: handlers parse, call a service and render; storage stays behind the services (an error that must become a status carries a kind instead)", to)
			}
		}
		reported := map[string]bool{} // one line per package and rule, not per subpackage of Gin
		for _, dep := range p.Deps {
			switch {
			case ours(dep) && testSupport(rel(dep)) && !reported[dep]:
				reported[dep] = true
				add(name, "depends on %s: test fakes and harnesses serve tests only; production code that reaches them ships them", rel(dep))
			case under(dep, "gorm.io") && !reported["gorm"] && (under(name, "config") || under(name, "rbac") || isLeaf(name) || under(name, "providers")):
				reported["gorm"] = true
				add(name, "depends on %s: only storage and what builds on it use GORM; config, rbac, providers and leaf packages stay free of it, so that backends and tools can import them", dep)
			case strings.HasPrefix(dep, "github.com/gin-gonic/") && !reported["gin"] && !ginAllowed(name):
				reported["gin"] = true
				add(name, "depends on %s: Gin stays in the HTTP layer (handlers, rbac/ginrbac); a net/http backend importing rbac must not compile Gin, and services must not know the router", dep)
			}
			if under(name, "rbac") && ours(dep) && !isLeaf(rel(dep)) && !under(rel(dep), "rbac") {
				add(name, "depends on %s: rbac is what backends import; it verifies tokens and decides permissions and needs none of Gatehouse's storage, providers, provisioning, tokens or handlers", rel(dep))
			}
		}
	}
	return out
}

// checkAPI reports exported functions, methods, struct fields and
// interface methods of pkg that take or return a net/http request,
// response writer or cookie.
func checkAPI(name string, forbidden []string, files map[string][]byte) ([]violation, error) {
	var out []violation
	fset := token.NewFileSet()
	for fileName, src := range files {
		f, err := parser.ParseFile(fset, fileName, src, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		httpName := ""
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); path == "net/http" {
				httpName = "http"
				if imp.Name != nil {
					httpName = imp.Name.Name
				}
			}
		}
		if httpName == "" {
			continue
		}
		usesHTTP := func(n ast.Node) string {
			found := ""
			ast.Inspect(n, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == httpName && slices.Contains(forbidden, sel.Sel.Name) {
						found = "http." + sel.Sel.Name
					}
				}
				return found == ""
			})
			return found
		}
		report := func(what, typ string) {
			out = append(out, violation{name, fmt.Sprintf("%s uses %s in its exported API (%s): services speak in domain values so that any transport can call them; the handler converts", what, typ, filepath.Base(fileName))})
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() || (d.Recv != nil && !exportedReceiver(d.Recv)) {
					continue
				}
				if typ := usesHTTP(d.Type); typ != "" {
					report(d.Name.Name, typ)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch sp := spec.(type) {
					case *ast.TypeSpec:
						if !sp.Name.IsExported() {
							continue
						}
						for _, member := range exportedMembers(sp.Type) {
							if typ := usesHTTP(member); typ != "" {
								report(sp.Name.Name, typ)
							}
						}
					case *ast.ValueSpec:
						for i, n := range sp.Names {
							if !n.IsExported() {
								continue
							}
							var typ string
							if sp.Type != nil {
								typ = usesHTTP(sp.Type)
							}
							if typ == "" && i < len(sp.Values) {
								typ = usesHTTP(sp.Values[i])
							}
							if typ != "" {
								report(n.Name, typ)
							}
						}
					}
				}
			}
		}
	}
	return out, nil
}

func exportedReceiver(recv *ast.FieldList) bool {
	if len(recv.List) == 0 {
		return false
	}
	t := recv.List[0].Type
	if star, ok := t.(*ast.StarExpr); ok {
		t = star.X
	}
	switch idx := t.(type) {
	case *ast.IndexExpr:
		t = idx.X
	case *ast.IndexListExpr:
		t = idx.X
	}
	id, ok := t.(*ast.Ident)
	return ok && id.IsExported()
}

// exportedMembers returns what of a type declaration callers see: the
// exported fields and embedded types of a struct, the methods of an
// interface, or the whole type for anything else.
func exportedMembers(t ast.Expr) []ast.Node {
	var out []ast.Node
	switch t := t.(type) {
	case *ast.StructType:
		for _, f := range t.Fields.List {
			if len(f.Names) == 0 || slices.ContainsFunc(f.Names, (*ast.Ident).IsExported) {
				out = append(out, f.Type)
			}
		}
	case *ast.InterfaceType:
		for _, m := range t.Methods.List {
			out = append(out, m.Type)
		}
	default:
		out = append(out, t)
	}
	return out
}

// listPackages runs `go list -json` over the module.
func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; the module layout is not what this test reads", len(pkgs))
	}
	return pkgs
}

func TestArchitecture(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	pkgs := listPackages(t)
	violations := checkImports(pkgs)
	for _, p := range pkgs {
		name := rel(p.ImportPath)
		var forbidden []string
		for pkg, types := range noHTTPInAPI {
			if under(name, pkg) && !testSupport(name) {
				forbidden = types
			}
		}
		if forbidden == nil {
			continue
		}
		files := map[string][]byte{}
		for _, f := range p.GoFiles {
			src, err := os.ReadFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			files[f] = src
		}
		v, err := checkAPI(name, forbidden, files)
		if err != nil {
			t.Fatal(err)
		}
		violations = append(violations, v...)
	}
	for _, v := range violations {
		t.Errorf("%s: %s", v.pkg, v.rule)
	}
	if len(violations) > 0 {
		t.Log("docs/architecture.md describes the layers; move the code, or change the rule there and here with the reason")
	}
}

// TestArchitectureRulesCatch feeds the checks made-up graphs and APIs, so a
// rule that stopped matching anything cannot pass silently.
func TestArchitectureRulesCatch(t *testing.T) {
	pkg := func(name string, imports, deps []string) goPackage {
		return goPackage{ImportPath: module + "/" + name, Imports: imports, Deps: deps}
	}
	m := func(name string) string { return module + "/" + name }
	gin := "github.com/gin-gonic/gin"
	gorm := "gorm.io/gorm"
	cases := []struct {
		name string
		pkg  goPackage
		want string // a fragment of the rule broken; "" for none
	}{
		{"provider uses a leaf", pkg("providers", []string{m("jwks")}, []string{m("jwks")}), ""},
		{"provider reaches into storage", pkg("providers", []string{m("models")}, []string{m("models"), gorm}), "providers import only leaf packages"},
		{"leaf grows a dependency", pkg("jwks", []string{m("tokens")}, []string{m("tokens")}), "leaf packages import nothing"},
		{"rbac pulls in Gin", pkg("rbac", nil, []string{gin}), "Gin stays in the HTTP layer"},
		{"rbac pulls in tokens", pkg("rbac", []string{m("tokens")}, []string{m("tokens")}), "rbac is what backends import"},
		{"rbac uses claims", pkg("rbac", []string{m("claims")}, []string{m("claims")}), ""},
		{"gin adapter may use Gin", pkg("rbac/ginrbac", []string{m("rbac")}, []string{m("rbac"), gin}), ""},
		{"handlers import models", pkg("handlers", []string{m("models")}, []string{m("models")}), "handlers parse, call a service and render"},
		{"handlers use a service", pkg("handlers", []string{m("admin")}, []string{m("admin"), gorm}), ""},
		{"handlers import GORM", pkg("handlers", []string{gorm}, []string{gorm}), "storage stays behind the services"},
		{"service uses Gin", pkg("oauth", nil, []string{gin}), "Gin stays in the HTTP layer"},
		{"config uses GORM", pkg("config", []string{m("models")}, []string{m("models"), gorm}), "only storage and what builds on it"},
		{"oauth imports signin", pkg("oauth", []string{m("signin")}, []string{m("signin")}), "never the reverse"},
		{"signin imports oauth", pkg("signin", []string{m("oauth")}, []string{m("oauth")}), ""},
		{"a package imports app", pkg("handlers", []string{m("app")}, []string{m("app")}), "only the binary assembles"},
		{"the binary imports app", pkg("cmd/gatehouse", []string{m("app")}, []string{m("app"), gin}), ""},
		{"a package imports a command", pkg("app", []string{m("cmd/gatehouse")}, []string{m("cmd/gatehouse")}), "nothing imports a command"},
		{"test fakes are free", pkg("providers/providertest", []string{m("tokens")}, []string{m("tokens")}), ""},
		{"a provider reaching a fake", pkg("providers", []string{m("providers/providertest")}, []string{m("providers/providertest"), m("config")}), "test fakes and harnesses serve tests only"},
		{"a tool reaching the harness", pkg("examples/loadtest", []string{m("app/apptest")}, []string{m("app/apptest")}), "test fakes and harnesses serve tests only"},
		{"the gin adapter reaching storage", pkg("rbac/ginrbac", []string{m("tokens")}, []string{m("tokens"), gin}), "rbac is what backends import"},
		{"handlers reaching a models subpackage", pkg("handlers", []string{m("models/dbtest")}, []string{m("models/dbtest")}), "handlers parse, call a service and render"},
		{"a leaf's subpackage", pkg("jwks/x", []string{m("tokens")}, []string{m("tokens")}), "leaf packages import nothing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkImports([]goPackage{tc.pkg})
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("refused an allowed arrow: %v", got)
			case tc.want != "" && !slices.ContainsFunc(got, func(v violation) bool { return strings.Contains(v.rule, tc.want) }):
				t.Errorf("want a violation containing %q, got %v", tc.want, got)
			}
		})
	}

	apis := []struct {
		name, src string
		bad       bool
	}{
		{"exported func takes a request", "package p\nimport \"net/http\"\nfunc Do(r *http.Request) {}", true},
		{"method returns a cookie", "package p\nimport \"net/http\"\ntype S struct{}\nfunc (S) C() *http.Cookie { return nil }", true},
		{"aliased import", "package p\nimport nh \"net/http\"\nfunc W(w nh.ResponseWriter) {}", true},
		{"exported field", "package p\nimport \"net/http\"\ntype O struct{ Req *http.Request }", true},
		{"interface method", "package p\nimport \"net/http\"\ntype I interface{ Do(*http.Request) }", true},
		{"unexported func", "package p\nimport \"net/http\"\nfunc do(r *http.Request) {}", false},
		{"unexported field", "package p\nimport \"net/http\"\ntype O struct{ req *http.Request }", false},
		{"method of unexported type", "package p\nimport \"net/http\"\ntype s struct{}\nfunc (s) Do(r *http.Request) {}", false},
		{"status constants are fine", "package p\nimport \"net/http\"\nfunc Status() int { return http.StatusOK }", false},
		{"an http client is fine", "package p\nimport \"net/http\"\ntype O struct{ HTTP *http.Client }", false},
		{"exported variable", "package p\nimport \"net/http\"\nvar Hook func(*http.Request)", true},
		{"exported variable's value", "package p\nimport \"net/http\"\nvar C = &http.Cookie{}", true},
		{"method of a generic type", "package p\nimport \"net/http\"\ntype G[K, V any] struct{}\nfunc (G[K, V]) Do(*http.Request) {}", true},
	}
	if got, _ := checkAPI("signin", noHTTPInAPI["signin"], map[string][]byte{"s.go": []byte(
		"package s\nimport \"net/http\"\nfunc Callback(r *http.Request) {}\nfunc Set() *http.Cookie { return nil }")}); len(got) != 1 {
		t.Errorf("signin: want only the cookie refused, got %v", got)
	}
	for _, tc := range apis {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkAPI("p", httpTypes, map[string][]byte{"p.go": []byte(tc.src)})
			if err != nil {
				t.Fatal(err)
			}
			if (len(got) > 0) != tc.bad {
				t.Errorf("violations %v, want bad=%v", got, tc.bad)
			}
		})
	}
}
