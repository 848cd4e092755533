package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/services/cluster"
)

// readmeMarker precedes every README command block the test runs.
const readmeMarker = "<!-- readme-test -->"

// readmeBlock is one runnable block of README.md and the lines its output
// must contain (the text block after it, if any).
type readmeBlock struct {
	line   int // of the opening fence, 1-based
	script string
	want   []string
}

// readmeBlocks extracts the marked sh blocks of README.md in order.
func readmeBlocks(t *testing.T, readme string) []readmeBlock {
	t.Helper()
	lines := strings.Split(readme, "\n")
	var out []readmeBlock
	fence := func(i int) (string, int) { // a fenced block's text and the line after it
		var body []string
		for j := i + 1; j < len(lines); j++ {
			if strings.TrimSpace(lines[j]) == "```" {
				return strings.Join(body, "\n"), j + 1
			}
			body = append(body, lines[j])
		}
		t.Fatalf("README.md:%d: unterminated code block", i+1)
		return "", 0
	}
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != readmeMarker {
			continue
		}
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "```sh" {
			t.Fatalf("README.md:%d: %s must be followed by a ```sh block", i+1, readmeMarker)
		}
		b := readmeBlock{line: i + 2}
		var next int
		b.script, next = fence(i + 1)
		if next < len(lines) && strings.TrimSpace(lines[next]) == "```text" {
			text, _ := fence(next)
			for _, l := range strings.Split(text, "\n") {
				if l = strings.TrimSpace(l); l != "" {
					b.want = append(b.want, l)
				}
			}
		}
		out = append(out, b)
		i = next - 1
	}
	return out
}

// containsLine reports whether some line of out holds the parts of want
// (split at "…") in order, each part's inner runs of spaces matching any
// run of spaces (column alignment).
func containsLine(out, want string) bool {
	parts := strings.Split(want, "…")
	for _, line := range strings.Split(out, "\n") {
		line = strings.Join(strings.Fields(line), " ")
		rest, ok := line, true
		for _, p := range parts {
			p = strings.Join(strings.Fields(p), " ")
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

// TestReadmeCommands runs the README's command blocks (those marked
// readmeMarker, from the Quickstart on) exactly as written, in order, in
// one shell at the repository root, against a fresh all-in-one on the
// default addresses the README uses, and checks each block's output
// against the text block that follows it. The server is the binary of the
// README's first command (go run ./services/cmd/streamline) started with
// no flags in a temporary working directory, so its ./streamline-data is
// not the repository's. GOPATH points at a temporary directory, so the
// README's `go install` and `$(go env GOPATH)/bin` are the test's own
// (the module and build caches are the machine's; HOME is a temporary
// directory too).
func TestReadmeCommands(t *testing.T) {
	for _, tool := range []string{"kcat", "grpcurl", "bash", "seq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed: .ci/run installs it (kcat: apt-get install kcat; grpcurl: make tools)", tool)
			}
			t.Skipf("%s is not installed (kcat: apt-get install kcat; grpcurl: make tools)", tool)
		}
	}
	for _, addr := range []string{"127.0.0.1:9092", "127.0.0.1:9095", "127.0.0.1:2379", "127.0.0.1:9094"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the README's commands use %s, which is taken (%v): stop what listens there", addr, err)
		}
		ln.Close()
	}
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, string(readme))
	if len(blocks) < 5 {
		t.Fatalf("README.md has %d blocks marked %s; the Quickstart alone has more", len(blocks), readmeMarker)
	}

	srv := cluster.Binary(t, "./services/cmd/streamline")
	workdir := t.TempDir()
	server := exec.Command(srv)
	server.Dir = workdir
	logFile, err := os.Create(filepath.Join(workdir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			server.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("server log:\n%s", b)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for {
		b, _ := os.ReadFile(logFile.Name())
		if strings.Contains(string(b), "Streamline is ready") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the server never became ready:\n%s", b)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// One shell runs every block, so a block's exports reach the next; a
	// line before each block marks where its output starts.
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range blocks {
		fmt.Fprintf(&script, "echo '@@block %d@@'\n%s\n", i, b.script)
	}
	script.WriteString("echo '@@end@@'\n")
	gopath := t.TempDir()
	tools := t.TempDir() // grpcurl from the machine's GOPATH/bin, and nothing else from there
	if p, err := exec.LookPath("grpcurl"); err == nil {
		if err := os.Symlink(p, filepath.Join(tools, "grpcurl")); err != nil {
			t.Fatal(err)
		}
	}
	modcache, _ := exec.Command("go", "env", "GOMODCACHE").Output()
	gocache, _ := exec.Command("go", "env", "GOCACHE").Output()
	sh := exec.CommandContext(ctx, "bash", "-c", script.String())
	sh.Dir = root
	sh.Env = append(os.Environ(), "GOPATH="+gopath, "GOMODCACHE="+strings.TrimSpace(string(modcache)), "GOCACHE="+strings.TrimSpace(string(gocache)),
		"PATH="+tools+":"+withoutGoBin(os.Getenv("PATH")), "HOME="+t.TempDir())
	out, runErr := sh.CombinedOutput()

	// Split the output by block.
	outputs := map[int]string{}
	cur, ended := -1, false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		var n int
		if _, err := fmt.Sscanf(line, "@@block %d@@", &n); err == nil {
			cur = n
			continue
		}
		if line == "@@end@@" {
			ended = true
			continue
		}
		if cur >= 0 {
			outputs[cur] += line + "\n"
		}
	}
	if runErr != nil || !ended {
		b := blocks[max(cur, 0)]
		t.Fatalf("README.md:%d: the block failed (%v):\n%s\noutput:\n%s", b.line, runErr, b.script, outputs[cur])
	}
	for i, b := range blocks {
		for _, w := range b.want {
			if !containsLine(outputs[i], w) {
				t.Errorf("README.md:%d: output has no line matching %q\nblock:\n%s\noutput:\n%s", b.line, w, b.script, outputs[i])
			}
		}
	}
	t.Logf("%d README blocks ran, %d output lines checked", len(blocks), countWants(blocks))
}

func countWants(bs []readmeBlock) int {
	n := 0
	for _, b := range bs {
		n += len(b.want)
	}
	return n
}

// withoutGoBin drops the machine's Go bin directories from PATH, so the
// README's own `go install` is what puts streamline-cli there.
func withoutGoBin(path string) string {
	gobin, _ := exec.Command("go", "env", "GOPATH").Output()
	drop := filepath.Join(strings.TrimSpace(string(gobin)), "bin")
	var keep []string
	for _, d := range filepath.SplitList(path) {
		if d != drop {
			keep = append(keep, d)
		}
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}

func TestReadmeContainsLine(t *testing.T) {
	out := "Total Lag:   40\nevents  1          60         100  40   -\n"
	for want, ok := range map[string]bool{
		"Total Lag: … 40":        true,
		"events … 60 … 100 … 40": true,
		"events … 100 … 60":      false,
		"Total Lag: 41":          false,
	} {
		if containsLine(out, want) != ok {
			t.Errorf("containsLine(%q) = %v, want %v", want, !ok, ok)
		}
	}
}

// TestDocLinksResolve checks that every relative link in the project's
// markdown files names a file or directory of the repository, and that no
// document points outside it (to ../ of the repository root).
func TestDocLinksResolve(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	docs, err := filepath.Glob(filepath.Join(root, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join(root, "*", "*.md"))
	docs = append(docs, more...)
	checked := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, doc)
		if strings.Contains(string(b), "../shared/") {
			t.Errorf("%s refers to ../shared/, which is outside the repository", rel)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			checked++
			if _, err := os.Stat(filepath.Join(filepath.Dir(doc), target)); err != nil {
				t.Errorf("%s links to %s, which is not in the repository", rel, m[1])
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found: the pattern is wrong")
	}
	t.Logf("%d relative links in %d markdown files resolve", checked, len(docs))
}
