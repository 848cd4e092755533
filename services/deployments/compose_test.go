package deployments

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// dockerfile is what the checks need of a Dockerfile.
type dockerfile struct {
	from        []string
	run, syntax bool
	healthcheck []string // exec form; nil if absent
	entrypoint  []string
	env         map[string]string
	expose      map[int]bool
	user        string
}

func parseDockerfile(t testing.TB, rel string) *dockerfile {
	t.Helper()
	d := &dockerfile{env: map[string]string{}, expose: map[int]bool{}}
	var logical []string
	cur := ""
	for _, line := range strings.Split(readFile(t, rel), "\n") {
		trimmed := strings.TrimSpace(line)
		if regexp.MustCompile(`(?i)^#\s*syntax\s*=`).MatchString(trimmed) {
			d.syntax = true
		}
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		logical = append(logical, cur+trimmed)
		cur = ""
	}
	for _, l := range logical {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			d.from = append(d.from, rest)
		case "RUN":
			d.run = true
		case "HEALTHCHECK":
			i := strings.Index(rest, "CMD ")
			if i < 0 {
				t.Errorf("%s: HEALTHCHECK %s has no CMD", rel, rest)
				continue
			}
			if err := json.Unmarshal([]byte(rest[i+4:]), &d.healthcheck); err != nil {
				t.Errorf("%s: HEALTHCHECK is not in exec form (a JSON array): %s", rel, rest)
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &d.entrypoint); err != nil {
				t.Errorf("%s: ENTRYPOINT is not in exec form (a JSON array): %s", rel, rest)
			}
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Errorf("%s: ENV %s: write ENV KEY=VALUE", rel, rest)
				}
				d.env[k] = v
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					t.Errorf("%s: EXPOSE %s", rel, p)
				}
				d.expose[n] = true
			}
		case "USER":
			d.user = rest
		}
	}
	return d
}

// TestDockerfiles: one Dockerfile per image build.sh builds, each FROM
// scratch with no RUN and no syntax directive (nothing to pull), running
// its binary as a non-root user, with an exec-form health check by the
// probe on a port it exposes; the .dockerignore is an allow-list.
func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	images := builtImages(t)
	var want []string
	for _, name := range images {
		want = append(want, name)
	}
	have, err := filepath.Glob(filepath.Join(root, "deployments/images/*/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range have {
		got = append(got, filepath.Base(filepath.Dir(f)))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Dockerfiles for %v, build.sh builds %v", got, want)
	}

	passwd := readFile(t, "deployments/images/rootfs/etc/passwd")
	for _, name := range want {
		rel := "deployments/images/" + name + "/Dockerfile"
		d := parseDockerfile(t, rel)
		binary := imageBinary[name]
		if !slices.Equal(d.from, []string{"scratch"}) {
			t.Errorf("%s: FROM %q, want only FROM scratch", rel, d.from)
		}
		if d.run {
			t.Errorf("%s: has RUN (the images are assembled from files only)", rel)
		}
		if d.syntax {
			t.Errorf("%s: has a # syntax= directive (BuildKit would pull its frontend)", rel)
		}
		if !slices.Equal(d.entrypoint, []string{"/usr/local/bin/" + binary}) {
			t.Errorf("%s: ENTRYPOINT %q, want [/usr/local/bin/%s]", rel, d.entrypoint, binary)
		}
		if d.healthcheck == nil {
			t.Errorf("%s: no HEALTHCHECK", rel)
		} else if d.healthcheck[0] != "/usr/local/bin/probe" {
			t.Errorf("%s: HEALTHCHECK %q does not run the probe", rel, d.healthcheck)
		} else {
			checkProbe(t, rel+" HEALTHCHECK", d.healthcheck, d.expose)
		}
		uid, _, _ := strings.Cut(d.user, ":")
		if uid == "" || uid == "0" || uid == "root" || !regexp.MustCompile(`(?m)^[a-z]+:x:`+regexp.QuoteMeta(uid)+`:`).MatchString(passwd) {
			t.Errorf("%s: USER %q: want a non-root uid listed in rootfs/etc/passwd", rel, d.user)
		}
		var envs []string
		for k := range d.env {
			envs = append(envs, k)
		}
		checkEnvNames(t, rel, binary, envs)
	}

	ignore := readFile(t, "deployments/images/.dockerignore")
	var rules []string
	for _, l := range strings.Split(ignore, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			rules = append(rules, l)
		}
	}
	if len(rules) == 0 || rules[0] != "*" {
		t.Errorf(".dockerignore: first rule %q, want * (an allow-list)", rules)
	}
	for _, r := range rules[1:] {
		if !strings.HasPrefix(r, "!") {
			t.Errorf(".dockerignore: rule %q after * is not an exception (!path)", r)
		}
	}
}

type composeFile struct {
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image       string         `json:"image"`
	Command     []string       `json:"command"`
	Environment map[string]any `json:"environment"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Ports       []string `json:"ports"`
	Volumes     []string `json:"volumes"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
}

// env returns the service's environment as strings.
func (s composeService) env() map[string]string {
	m := map[string]string{}
	for k, v := range s.Environment {
		m[k] = fmt.Sprint(v)
	}
	return m
}

// withDefaults replaces ${VAR:-default} by its default, as compose does
// when VAR is unset.
func withDefaults(s string) string {
	return regexp.MustCompile(`\$\{[A-Za-z0-9_]+:-([^}]*)\}`).ReplaceAllString(s, "$1")
}

// TestCompose checks docker-compose.yml: see the package doc.
func TestCompose(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	images := builtImages(t)
	imageOf := func(svc string) string { return images[cf.Services[svc].Image] }
	dockerfiles := map[string]*dockerfile{}
	for _, name := range images {
		dockerfiles[name] = parseDockerfile(t, "deployments/images/"+name+"/Dockerfile")
	}

	count := map[string]int{}
	for name, s := range cf.Services {
		where := "docker-compose.yml service " + name
		image, ok := images[s.Image]
		if !ok {
			t.Errorf("%s: image %q is not one deployments/images/build.sh builds (%v)", where, s.Image, keys(images))
			continue
		}
		count[image]++
		binary := imageBinary[image]
		args := make([]string, len(s.Command))
		for i, a := range s.Command {
			args[i] = withDefaults(a)
		}
		checkFlags(t, where, binary, args)
		env := s.env()
		checkEnvNames(t, where, binary, keys(env))
		df := dockerfiles[image]

		for dep, d := range s.DependsOn {
			target, ok := cf.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s: depends on %s, which is not a service", where, dep)
			case d.Condition != "service_healthy":
				t.Errorf("%s: depends on %s with condition %q, want service_healthy", where, dep, d.Condition)
			case target.Healthcheck == nil && dockerfiles[imageOf(dep)].healthcheck == nil:
				t.Errorf("%s: depends on %s being healthy, which has no health check", where, dep)
			}
		}
		if s.Healthcheck != nil {
			test := s.Healthcheck.Test
			if len(test) < 2 || test[0] != "CMD" {
				t.Errorf("%s: healthcheck %q: want exec form [CMD, /usr/local/bin/probe, ...]", where, test)
			} else {
				checkProbe(t, where+" healthcheck", test[1:], df.expose)
			}
		}
		for _, v := range s.Volumes {
			vol, _, _ := strings.Cut(v, ":")
			if _, ok := cf.Volumes[vol]; !ok && !strings.HasPrefix(vol, ".") && !strings.HasPrefix(vol, "/") {
				t.Errorf("%s: volume %q is not declared under volumes:", where, vol)
			}
		}

		// Published ports: on loopback, to a port the image exposes; a
		// gateway advertises exactly the published address.
		for _, p := range s.Ports {
			parts := strings.Split(withDefaults(p), ":")
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				t.Errorf("%s: port %q: want 127.0.0.1:HOST:CONTAINER", where, p)
				continue
			}
			cport, _ := strconv.Atoi(parts[2])
			if !df.expose[cport] {
				t.Errorf("%s: port %q: the image does not expose %d", where, p, cport)
			}
			if binary == "gateway" {
				_, listen, _ := hostPort(flagOrEnv(args, env, "kafka-addr", df))
				adv, _ := flagValue(args, "advertised-kafka-addr")
				if listen == cport && adv != parts[0]+":"+parts[1] {
					t.Errorf("%s: advertises %q but publishes its Kafka port as %s:%s", where, adv, parts[0], parts[1])
				}
			}
		}
		if binary == "gateway" && len(s.Ports) == 0 {
			t.Errorf("%s: a gateway without a published port", where)
		}
		// gRPC services advertise their service name and listen port.
		if adv, ok := flagValue(args, "advertised-grpc-addr"); ok {
			_, port, _ := hostPort(flagOrEnv(args, env, "grpc-addr", df))
			if want := fmt.Sprintf("%s:%d", name, port); adv != want {
				t.Errorf("%s: --advertised-grpc-addr %q, want %q (its service name and --grpc-addr port)", where, adv, want)
			}
		} else if binary == "logsvc" || binary == "uploader" {
			t.Errorf("%s: no --advertised-grpc-addr (the listen address 0.0.0.0 is no use to other containers)", where)
		}

		if binary == "gateway" || binary == "logsvc" || binary == "uploader" {
			// Traces go to the compose trace backend.
			ep := env["OTEL_EXPORTER_OTLP_ENDPOINT"]
			host, port, _ := hostPort(strings.TrimPrefix(ep, "http://"))
			if imageOf(host) != "jaeger" || port != 4317 {
				t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %q, want http://<the jaeger service>:4317", where, ep)
			}
		}
		if binary == "logsvc" || binary == "uploader" {
			checkComposeObjectStore(t, where, cf, env)
		}
	}
	for image, n := range map[string]int{"etcd": 1, "versitygw": 1, "jaeger": 1, "logsvc": 3, "uploader": 2, "gateway": 2} {
		if count[image] != n {
			t.Errorf("docker-compose.yml: %d services of image %s, want %d", count[image], image, n)
		}
	}
}

// flagOrEnv returns a flag's value from the command, else the service's
// environment, else the image's ENV.
func flagOrEnv(args []string, env map[string]string, flag string, df *dockerfile) string {
	if v, ok := flagValue(args, flag); ok {
		return v
	}
	name := "STREAMLINE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
	if v, ok := env[name]; ok {
		return v
	}
	return df.env[name]
}

// checkComposeObjectStore: the object store URL points at the versitygw
// service, with the credentials it was given, and its health check
// creates the URL's bucket.
func checkComposeObjectStore(t *testing.T, where string, cf composeFile, env map[string]string) {
	raw := env["STREAMLINE_OBJECT_STORE"]
	if raw == "" {
		t.Errorf("%s: no STREAMLINE_OBJECT_STORE: diskless topics cannot be led or uploaded", where)
		return
	}
	bucket, endpoint := parseObjectStore(t, raw)
	host, port, ok := hostPort(strings.TrimPrefix(endpoint, "http://"))
	gw, exists := cf.Services[host]
	if !ok || !exists || !strings.HasPrefix(gw.Image, "streamline/versitygw:") {
		t.Errorf("%s: object store endpoint %q is not the versitygw service", where, endpoint)
		return
	}
	if v, _ := flagValue(gw.Command, "port"); v != fmt.Sprintf(":%d", port) {
		t.Errorf("%s: object store on port %d, versitygw's --port is %q", where, port, v)
	}
	gwEnv := gw.env()
	if env["AWS_ACCESS_KEY_ID"] != gwEnv["ROOT_ACCESS_KEY"] || env["AWS_SECRET_ACCESS_KEY"] != gwEnv["ROOT_SECRET_KEY"] {
		t.Errorf("%s: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY differ from versitygw's ROOT_ACCESS_KEY/ROOT_SECRET_KEY", where)
	}
	if gw.Healthcheck == nil || !slices.Contains(gw.Healthcheck.Test, "--create") || gw.Healthcheck.Test[len(gw.Healthcheck.Test)-1] != bucket {
		t.Errorf("%s: versitygw's health check does not create bucket %q", where, bucket)
	}
}
