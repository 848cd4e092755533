package objstoretest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the child if the test binary dies
// (panic, timeout), so no server outlives its test holding a port.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
