//go:build !unix

package video

import "os/exec"

// inOwnProcessGroup leaves cmd as it is: decoding runs on Unix servers
// only; elsewhere (the browser build of the client, which links this
// package through channels' types) ffmpeg is never started.
func inOwnProcessGroup(cmd *exec.Cmd) {}
