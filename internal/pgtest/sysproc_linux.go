package pgtest

import "syscall"

// sysProcAttr runs the child as cred and has it killed if the test binary
// dies first, so that no server outlives a killed test run.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
