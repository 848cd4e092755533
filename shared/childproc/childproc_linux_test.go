package childproc

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestChildDiesWithParent re-runs this test binary as a parent that starts
// a long sleep with DieWithParent, prints the sleep's pid and exits
// without stopping it: the kernel then kills the sleep. Without the death
// signal the sleep outlives its parent (checked by the second case).
func TestChildDiesWithParent(t *testing.T) {
	if os.Getenv("CHILDPROC_PARENT") != "" {
		cmd := exec.Command("sleep", "600")
		if os.Getenv("CHILDPROC_PARENT") == "tie" {
			DieWithParent(cmd)
		}
		if err := cmd.Start(); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(strconv.Itoa(cmd.Process.Pid) + "\n")
		os.Exit(0) // no Wait, no Kill: the parent just goes
	}
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep binary")
	}
	for _, tie := range []bool{true, false} {
		mode := map[bool]string{true: "tie", false: "none"}[tie]
		parent := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithParent$")
		parent.Env = append(os.Environ(), "CHILDPROC_PARENT="+mode)
		out, err := parent.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := parent.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			t.Fatalf("%s: reading the child's pid: %v", mode, err)
		}
		pid, err := strconv.Atoi(line[:len(line)-1])
		if err != nil {
			t.Fatalf("%s: pid %q: %v", mode, line, err)
		}
		if err := parent.Wait(); err != nil {
			t.Fatalf("%s: parent: %v", mode, err)
		}
		// The orphan is reparented to init (or a subreaper), which reaps
		// it once killed: gone means kill(pid, 0) fails.
		gone := false
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if syscall.Kill(pid, 0) != nil || zombie(pid) {
				gone = true
				break
			}
			if !tie && time.Now().After(deadline.Add(-9*time.Second)) {
				break // a second is plenty to see it survive
			}
		}
		if gone != tie {
			t.Errorf("%s: child gone after its parent exited: %v, want %v", mode, gone, tie)
		}
		if !gone {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// zombie reports whether pid has died but not been reaped yet (state Z).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] == 'Z'
		}
	}
	return false
}
