//go:build !unix

package video

import "os/exec"

// inOwnProcessGroup leaves cmd as it is: without Unix process groups,
// cancelling kills the shell only (the server runs on Unix; this keeps
// the package building elsewhere).
func inOwnProcessGroup(cmd *exec.Cmd) {}
