package deployments

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/services/cluster"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.RemoveBinaries()
	if probeDir != "" {
		os.RemoveAll(probeDir)
	}
	os.Exit(code)
}

// repoRoot is the directory holding go.work.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the test's directory")
		}
		dir = parent
	}
}

func readFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// imageBinary maps an image name (streamline/NAME) to the binary it runs.
var imageBinary = map[string]string{
	"streamline": "streamline",
	"gateway":    "gateway",
	"logsvc":     "logsvc",
	"uploader":   "uploader",
	"etcd":       "streamline-etcd",
	"versitygw":  "versitygw",
	"jaeger":     "jaeger",
}

// binaryPackage maps this repository's binaries to their packages.
var binaryPackage = map[string]string{
	"streamline":      "./services/cmd/streamline",
	"gateway":         "./gateway/cmd/gateway",
	"logsvc":          "./logsvc/cmd/logsvc",
	"uploader":        "./uploader/cmd/uploader",
	"streamline-etcd": "./services/cmd/streamline-etcd",
}

// builtImages returns the image references deployments/images/build.sh
// builds with its default tag, mapped to the image name
// ("streamline/gateway:dev" -> "gateway").
func builtImages(t testing.TB) map[string]string {
	t.Helper()
	script := readFile(t, "deployments/images/build.sh")
	all := regexp.MustCompile(`(?m)^ALL_IMAGES="([^"]+)"`).FindStringSubmatch(script)
	tag := regexp.MustCompile(`(?m)^TAG=\$\{IMAGE_TAG:-([^}]+)\}`).FindStringSubmatch(script)
	if all == nil || tag == nil {
		t.Fatal("build.sh: no ALL_IMAGES=\"...\" or TAG=${IMAGE_TAG:-...} line")
	}
	images := map[string]string{}
	for _, name := range strings.Fields(all[1]) {
		if _, ok := imageBinary[name]; !ok {
			t.Fatalf("build.sh builds image %q, which this test does not know the binary of (add it to imageBinary)", name)
		}
		images["streamline/"+name+":"+tag[1]] = name
	}
	return images
}

// help is what a binary's --help says: its flags and STREAMLINE_* variables.
type help struct {
	text  string
	flags map[string]bool
	envs  map[string]bool
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]*help{}
)

// helpOf returns the --help of a binary an image runs. This repository's
// binaries are built once per test run; versitygw is the one `make tools`
// installs. Binaries without a known --help (jaeger) fail the test: the
// deployment files pass them no flags.
func helpOf(t testing.TB, binary string) *help {
	t.Helper()
	helpMu.Lock()
	defer helpMu.Unlock()
	if h, ok := helpCache[binary]; ok {
		return h
	}
	var text string
	switch {
	case binaryPackage[binary] != "":
		text = runHelp(t, cluster.Binary(t, binaryPackage[binary]), "--help")
	case binary == "versitygw":
		bin := findVersityGW(t)
		text = runHelp(t, bin, "--help") + runHelp(t, bin, "posix", "--help")
	default:
		t.Fatalf("no --help known for %s: the deployment files must not pass it flags or STREAMLINE_* variables", binary)
	}
	h := &help{text: text, flags: map[string]bool{}, envs: map[string]bool{}}
	for _, m := range regexp.MustCompile(`--([a-zA-Z0-9][a-zA-Z0-9-]*)`).FindAllStringSubmatch(text, -1) {
		h.flags[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\b(STREAMLINE_[A-Z0-9_]+)\b`).FindAllStringSubmatch(text, -1) {
		h.envs[m[1]] = true
	}
	helpCache[binary] = h
	return h
}

func runHelp(t testing.TB, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput() // exit codes of --help vary
	if !strings.Contains(string(out), "--") {
		t.Fatalf("%s %s printed no flags:\n%s", bin, strings.Join(args, " "), out)
	}
	return string(out)
}

// findVersityGW finds the versitygw binary as the objstore tests do: PATH,
// $GOBIN, $(go env GOPATH)/bin. Missing, the test fails: run `make tools`.
func findVersityGW(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(gp, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("versitygw not found (PATH, %s): run `make tools`", strings.Join(dirs, ", "))
	return ""
}

// checkFlags reports every flag in args that binary's --help does not list.
func checkFlags(t testing.TB, where, binary string, args []string) {
	t.Helper()
	var h *help
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		if h == nil {
			h = helpOf(t, binary)
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !h.flags[name] {
			t.Errorf("%s: flag --%s is not in `%s --help`", where, name, binary)
		}
	}
}

// checkEnvNames reports every STREAMLINE_* variable among names that
// binary's --help does not list (a variable no flag reads is ignored
// silently, so a typo would go unnoticed).
func checkEnvNames(t testing.TB, where, binary string, names []string) {
	t.Helper()
	for _, n := range names {
		if !strings.HasPrefix(n, "STREAMLINE_") {
			continue
		}
		if !helpOf(t, binary).envs[n] {
			t.Errorf("%s: %s is not a variable of `%s --help`", where, n, binary)
		}
	}
}

// The probe: built once (GOWORK=off: a module of its own).
var (
	probeOnce sync.Once
	probeDir  string
	probeBin  string
	probeErr  error
)

func probeBinary(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	probeOnce.Do(func() {
		if probeDir, probeErr = os.MkdirTemp("", "streamline-probe-"); probeErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin := filepath.Join(probeDir, "probe")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
		cmd.Dir = filepath.Join(root, "deployments", "images", "probe")
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = fmt.Errorf("go build deployments/images/probe: %v\n%s", err, out)
			return
		}
		probeBin = bin
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return probeBin
}

// probeCommand is one subcommand of the probe as its --help describes it.
type probeCommand struct {
	flags      map[string]bool // flag -> takes a value
	positional int
}

var (
	probeUsageOnce sync.Once
	probeUsage     map[string]probeCommand
)

// probeCommands parses `probe --help`: lines "probe CMD [--flag V] [--bool] ARG...".
func probeCommands(t testing.TB) map[string]probeCommand {
	t.Helper()
	bin := probeBinary(t)
	probeUsageOnce.Do(func() {
		out, _ := exec.Command(bin, "--help").CombinedOutput()
		probeUsage = map[string]probeCommand{}
		flagRE := regexp.MustCompile(`\[--([a-z0-9-]+)( [A-Z]+)?\]`)
		for _, m := range regexp.MustCompile(`(?m)^\s+probe ([a-z0-9-]+)(.*)$`).FindAllStringSubmatch(string(out), -1) {
			c := probeCommand{flags: map[string]bool{}}
			for _, f := range flagRE.FindAllStringSubmatch(m[2], -1) {
				c.flags[f[1]] = f[2] != ""
			}
			c.positional = len(strings.Fields(flagRE.ReplaceAllString(m[2], "")))
			probeUsage[m[1]] = c
		}
	})
	if len(probeUsage) == 0 {
		t.Fatal("`probe --help` lists no commands")
	}
	return probeUsage
}

// checkProbe checks a health-check command line: /usr/local/bin/probe, a
// known subcommand, known flags, the right number of arguments, and a
// target on the container itself (127.0.0.1) at one of ports, if given.
func checkProbe(t testing.TB, where string, argv []string, ports map[int]bool) {
	t.Helper()
	if len(argv) < 2 || argv[0] != "/usr/local/bin/probe" {
		t.Errorf("%s: health check %q does not run /usr/local/bin/probe", where, argv)
		return
	}
	cmd, ok := probeCommands(t)[argv[1]]
	if !ok {
		t.Errorf("%s: probe has no command %q", where, argv[1])
		return
	}
	var pos []string
	for i := 2; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") {
			pos = append(pos, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := cmd.flags[name]
		if !ok {
			t.Errorf("%s: probe %s has no flag --%s", where, argv[1], name)
			continue
		}
		if takesValue && !hasValue {
			i++
		}
	}
	if len(pos) != cmd.positional {
		t.Errorf("%s: probe %s takes %d argument(s), got %q", where, argv[1], cmd.positional, pos)
		return
	}
	if len(pos) == 0 {
		return
	}
	target := pos[0]
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil {
			t.Errorf("%s: probe target %q: %v", where, target, err)
			return
		}
		target = u.Host
		if u.Port() == "" {
			target += ":80"
		}
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		t.Errorf("%s: probe target %q is not host:port: %v", where, pos[0], err)
		return
	}
	if host != "127.0.0.1" && host != "localhost" {
		t.Errorf("%s: probe target %q is not on the container itself (127.0.0.1)", where, pos[0])
	}
	if p, _ := strconv.Atoi(port); ports != nil && !ports[p] {
		t.Errorf("%s: probe target %q: port %s is not one of the container's ports %v", where, pos[0], port, keys(ports))
	}
}

func keys[K comparable, V any](m map[K]V) []K {
	var ks []K
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// hostPort splits "host:port" with a numeric port.
func hostPort(s string) (string, int, bool) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(p)
	return h, n, err == nil
}

// flagValue returns the value of --name in args ("--name=v" or "--name v").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}
