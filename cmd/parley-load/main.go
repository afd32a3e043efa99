// Command parley-load is a load generator for parleyd. It simulates many
// devices speaking the real protocol (register, link, create
// conversations, send, receive pushes, fetch, ack) against a running
// server (--server URL) or one it starts itself (--spawn: the server
// package with a SQLite store in a temporary directory, as a child
// process so its memory and CPU can be measured).
//
// By default payloads are random bytes prepared in advance (well-framed
// protobuf envelopes around opaque "ciphertext"), so the figures measure
// the server, not MLS. With --mls every device holds a real MLS group per
// conversation (RFC 9420, suite 1): messages are encrypted, and counted
// delivered only once the recipient decrypted them, so the figures include
// the clients' MLS work. Each payload (plaintext) carries its send time for
// latency.
//
// Receiving devices ack what they received every --ack-every (100 ms by
// default), as real clients do; --ack-every 0 leaves that out.
//
// --baseline also runs the same 1:1 traffic through a bare WebSocket
// relay on the same library (no storage, no auth) and prints the ratio;
// --baseline-durable through that relay made durable (each frame
// fdatasync'd to a log, group-committed, before forward and ack).
//
// Examples (the figures in docs/benchmarks.md):
//
//	parley-load --spawn --accounts 200 --duration 15s --baseline
//	parley-load --spawn --accounts 200 --inflight 2 --duration 15s --baseline
//	parley-load --spawn --accounts 200 --duration 15s --mls
//	parley-load --spawn --idle 15000 --duration 5s
//	parley-load --spawn --accounts 1000 --groups 1 --group-size 1000 --mix group=1 --rate 5
//	parley-load --spawn --accounts 2 --offline 10000 --duration 5s
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
)

func main() {
	if len(os.Args) >= 3 {
		switch os.Args[1] {
		case "internal-serve", "internal-serve-tls":
			if err := internalServe(os.Args[2], os.Args[1] == "internal-serve-tls"); err != nil {
				fmt.Fprintln(os.Stderr, "parley-load internal-serve:", err)
				os.Exit(1)
			}
			return
		case "internal-nats":
			if err := internalNATS(); err != nil {
				fmt.Fprintln(os.Stderr, "parley-load internal-nats:", err)
				os.Exit(1)
			}
			return
		case "internal-relay", "internal-relay-durable":
			if err := internalRelay(os.Args[2], os.Args[1] == "internal-relay-durable"); err != nil {
				fmt.Fprintln(os.Stderr, "parley-load internal-relay:", err)
				os.Exit(1)
			}
			return
		}
	}
	// PARLEY_LOAD_SELFPROFILE=file profiles the generator itself.
	if path := os.Getenv("PARLEY_LOAD_SELFPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			code := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
