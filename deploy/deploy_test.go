package deploy_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-id/gatehouse/handlers"
)

// settings are the variables config reads (as config's own test finds
// them), plus the ${NAME} references of the example configuration.
func settings(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../config/config.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(GATEHOUSE_[A-Z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		out[m[1]] = true
	}
	if len(out) < 20 {
		t.Fatalf("found only %d settings in config.go: the scan is broken", len(out))
	}
	return out
}

type container struct {
	Name            string
	Image           string
	Args            []string
	EnvFrom         []map[string]struct{ Name string } `yaml:"envFrom"`
	ReadinessProbe  *probe                             `yaml:"readinessProbe"`
	LivenessProbe   *probe                             `yaml:"livenessProbe"`
	Resources       struct{ Limits, Requests map[string]string }
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct{ Drop []string }
	} `yaml:"securityContext"`
}

type probe struct {
	HTTPGet struct{ Path, Port string } `yaml:"httpGet"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []container
}

type object struct {
	Kind     string
	Metadata struct {
		Name   string
		Labels map[string]string
	}
	Data       map[string]string
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Selector map[string]any
		Template struct {
			Metadata struct{ Labels map[string]string }
			Spec     podSpec
		}
		Rules []struct {
			HTTP struct {
				Paths []struct {
					Backend struct{ Service struct{ Name string } }
				}
			}
		}
	}
}

func manifests(t *testing.T) map[string]object {
	t.Helper()
	files, _ := filepath.Glob("kubernetes/*.yaml")
	out := map[string]object{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(false)
		for {
			var o object
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out[o.Kind] = o
		}
	}
	return out
}

// TestKubernetesManifests: the manifests parse; the Deployment probes
// /readyz and /healthz, which the router answers; the Deployment and the
// migration Job (`migrate up`) run the same image as a non-root user on
// a read-only root file system, without privilege escalation, with
// resource limits; every GATEHOUSE_ variable is one config reads; the
// Service, PodDisruptionBudget and Ingress select what the Deployment
// runs.
func TestKubernetesManifests(t *testing.T) {
	objs := manifests(t)
	for _, kind := range []string{"Deployment", "Job", "Service", "PodDisruptionBudget", "Ingress", "ConfigMap", "Secret"} {
		if _, ok := objs[kind]; !ok {
			t.Fatalf("no %s in deploy/kubernetes", kind)
		}
	}
	dep, job := objs["Deployment"], objs["Job"]
	c := dep.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Fatalf("Deployment probes: readiness %+v liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	router, err := handlers.NewRouter(handlers.RouterOptions{Log: slog.New(slog.DiscardHandler), Metrics: handlers.NewMetrics()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path} {
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("the router answers the probe path %s with %d", p, rec.Code)
		}
	}
	jc := job.Spec.Template.Spec.Containers[0]
	if strings.Join(jc.Args, " ") != "migrate up" {
		t.Fatalf("migration Job runs %q", jc.Args)
	}
	if jc.Image != c.Image || !strings.Contains(c.Image, "gatehouse") {
		t.Fatalf("images differ: Deployment %s, Job %s", c.Image, jc.Image)
	}
	for name, pod := range map[string]podSpec{"Deployment": dep.Spec.Template.Spec, "Job": job.Spec.Template.Spec} {
		if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 {
			t.Errorf("%s: pod may run as root: %+v", name, pod.SecurityContext)
		}
		for _, c := range pod.Containers {
			sc := c.SecurityContext
			if !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || strings.Join(sc.Capabilities.Drop, ",") != "ALL" {
				t.Errorf("%s/%s: securityContext %+v", name, c.Name, sc)
			}
			if c.Resources.Limits["cpu"] == "" || c.Resources.Limits["memory"] == "" || c.Resources.Requests["memory"] == "" {
				t.Errorf("%s/%s: resources %+v", name, c.Name, c.Resources)
			}
			refs := map[string]bool{}
			for _, e := range c.EnvFrom {
				for kind, ref := range e {
					refs[kind+"/"+ref.Name] = true
				}
			}
			if !refs["configMapRef/"+objs["ConfigMap"].Metadata.Name] || !refs["secretRef/"+objs["Secret"].Metadata.Name] {
				t.Errorf("%s/%s: envFrom %v", name, c.Name, refs)
			}
		}
	}
	known := settings(t)
	for kind, vars := range map[string]map[string]string{"ConfigMap": objs["ConfigMap"].Data, "Secret": objs["Secret"].StringData} {
		for k := range vars {
			if strings.HasPrefix(k, "GATEHOUSE_") && !known[k] {
				t.Errorf("%s sets %s, which Gatehouse does not read", kind, k)
			}
		}
	}
	labels := dep.Spec.Template.Metadata.Labels
	matches := func(sel map[string]any) bool {
		if m, ok := sel["matchLabels"].(map[string]any); ok {
			sel = m
		}
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget"} {
		if !matches(objs[kind].Spec.Selector) {
			t.Errorf("%s selector %v does not select the pods %v", kind, objs[kind].Spec.Selector, labels)
		}
	}
	if b := objs["Ingress"].Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name; b != objs["Service"].Metadata.Name {
		t.Errorf("Ingress sends to %q, the Service is %q", b, objs["Service"].Metadata.Name)
	}
}

// TestDockerfileAndCompose: the Dockerfile builds in one stage and runs
// in another on a minimal base, with CGO off, a non-root USER and a
// HEALTHCHECK through `gatehouse healthcheck`; .dockerignore keeps
// secrets and databases out of the build; compose runs PostgreSQL, Redis,
// a migration and Gatehouse with settings config reads.
func TestDockerfileAndCompose(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	src := string(df)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(src, -1)
	if len(froms) < 2 || !strings.Contains(froms[len(froms)-1][1], "distroless/static") {
		t.Fatalf("Dockerfile stages: %v", froms)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`CGO_ENABLED=0 GOOS=linux go build -trimpath`),
		regexp.MustCompile(`(?m)^USER 65532:65532$`),
		regexp.MustCompile(`(?m)^HEALTHCHECK .*\n\s+CMD \["/usr/local/bin/gatehouse", "healthcheck"\]`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/gatehouse"\]`),
	} {
		if !want.MatchString(src) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	if regexp.MustCompile(`(?m)^USER (root|0)\b`).MatchString(src) {
		t.Error("Dockerfile runs as root")
	}
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", ".env", "*.db"} {
		if !strings.Contains(string(ignore), want+"\n") {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}

	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string
			Command     []string
			Environment map[string]string
			ReadOnly    bool `yaml:"read_only"`
		}
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"postgres", "redis", "migrate", "gatehouse"} {
		if _, ok := compose.Services[s]; !ok {
			t.Fatalf("compose has no %s service", s)
		}
	}
	known := settings(t)
	gh, mig := compose.Services["gatehouse"], compose.Services["migrate"]
	if strings.Join(mig.Command, " ") != "migrate up" || !gh.ReadOnly || gh.Image != mig.Image {
		t.Errorf("compose: gatehouse %+v, migrate %+v", gh, mig)
	}
	for k := range gh.Environment {
		if !known[k] {
			t.Errorf("compose sets %s, which Gatehouse does not read", k)
		}
	}
	for _, k := range []string{"GATEHOUSE_DATABASE_URL", "GATEHOUSE_REDIS_URL", "GATEHOUSE_SECRET_KEY"} {
		if gh.Environment[k] == "" {
			t.Errorf("compose does not set %s", k)
		}
	}
}

// TestStaticBinaryAndHealthcheck builds Gatehouse the way the Dockerfile
// does and checks the result is static (no program interpreter, no
// shared libraries: it runs on distroless/static or scratch), then runs
// its healthcheck against a server that answers 200 and one that
// answers 503.
func TestStaticBinaryAndHealthcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "gatehouse")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=test", "-o", bin, "./cmd/gatehouse")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the binary is dynamically linked (%v)", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary needs %v", libs)
	}
	for code, want := range map[int]int{http.StatusOK: 0, http.StatusServiceUnavailable: 1} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(code)
		}))
		cmd := exec.Command(bin, "healthcheck")
		cmd.Env = []string{"GATEHOUSE_ADDR=" + strings.TrimPrefix(srv.URL, "http://")}
		err := cmd.Run()
		srv.Close()
		got := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			got = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("healthcheck against %d exits %d, want %d", code, got, want)
		}
	}
}
