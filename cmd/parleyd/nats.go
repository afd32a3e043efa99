package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// runNATS runs "parleyd nats": an embedded NATS server
// (github.com/nats-io/nats-server/v2), so that one binary can run a
// several-node deployment or its tests. A production deployment may run
// its own NATS cluster instead.
func runNATS(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("parleyd nats", "Run an embedded NATS server for parleyd nodes (parleyd serve --nats nats://ADDR).", stderr)
	listen := fs.String("listen", "127.0.0.1:4222", "`address` to listen on")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := envFlags(fs); err != nil {
		fmt.Fprintf(stderr, "parleyd nats: %v\n", err)
		return 2
	}
	ns, url, err := startNATS(*listen)
	if err != nil {
		fmt.Fprintf(stderr, "parleyd nats: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "NATS listening at %s\n", url)
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return 0
}

// startNATS starts an embedded NATS server on addr and returns it with
// its client URL.
func startNATS(addr string) (*natsserver.Server, string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", fmt.Errorf("--listen %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, "", fmt.Errorf("--listen %q: port: %w", addr, err)
	}
	if p == 0 {
		p = natsserver.RANDOM_PORT
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: host, Port: p, NoSigs: true, NoLog: true, MaxPayload: 8 << 20})
	if err != nil {
		return nil, "", err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, "", errors.New("the NATS server did not start")
	}
	return ns, ns.ClientURL(), nil
}
