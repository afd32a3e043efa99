//go:build unix

package video

import (
	"os/exec"
	"syscall"
)

// inOwnProcessGroup starts cmd in a process group of its own and has
// cancelling it kill the whole group (the shell has exec'd, but be sure).
func inOwnProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
}
