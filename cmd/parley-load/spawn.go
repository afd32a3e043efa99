package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/parleychat/parley/internal/selfsigned"
	"github.com/parleychat/parley/server"

	"github.com/parleychat/parley/server/natsbus"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/store/pgstore"
	"github.com/parleychat/parley/store/sqlitestore"
)

// raiseFileLimit sets the soft RLIMIT_NOFILE to the hard limit.
func raiseFileLimit() uint64 {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return 0
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return l.Cur
}

// child is a server started by the generator as a separate process, so
// that its memory and CPU can be read from /proc without the generator's.
type child struct {
	cmd *exec.Cmd
	url string
	dir string
	tls *tls.Config // for a server started with TLS: trusts its certificate
}

// spawn re-executes this binary as "parley-load internal-serve DIR" (the
// real server package with a SQLite store in DIR) or "internal-relay"
// (the echo relay baseline) and waits for its address.
func spawn(mode string, env []string) (*child, error) {
	dir, err := os.MkdirTemp("", "parley-load-")
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, mode, dir)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s: no address: %w", mode, err)
	}
	go io.Copy(io.Discard, out)
	ch := &child{cmd: cmd, url: "http://" + strings.TrimSpace(line), dir: dir}
	if mode == "internal-serve-tls" {
		// The child wrote its throwaway certificate before its address.
		pem, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
		if err != nil {
			ch.stop()
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			ch.stop()
			return nil, fmt.Errorf("%s: bad certificate", mode)
		}
		ch.url = "https://" + strings.TrimSpace(line)
		ch.tls = &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	}
	return ch, nil
}

// selfSignedTLS makes a throwaway certificate for "localhost" and writes
// it (the certificate only) to certFile for the generator.
func selfSignedTLS(certFile string) (*tls.Config, error) {
	c, err := selfsigned.New("localhost")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(certFile, c.CertPEM, 0o600); err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}, MinVersion: tls.VersionTLS13}, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// Environment of a spawned server: the PostgreSQL database and NATS
// server of a cluster (--db, --nodes).
const (
	envDB   = "PARLEY_LOAD_DB"
	envNATS = "PARLEY_LOAD_NATS"
)

// readProcs sums the memory and CPU of several processes.
func readProcs(pids []int) procStats {
	var sum procStats
	for _, pid := range pids {
		p, _ := readProc(pid)
		sum.RSSKiB += p.RSSKiB
		sum.HWMKiB += p.HWMKiB
		sum.CPU += p.CPU
	}
	return sum
}

// internalNATS runs an embedded NATS server on 127.0.0.1:0 for the
// nodes of a cluster, printing its address.
func internalNATS() error {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoSigs: true, NoLog: true, MaxPayload: 8 << 20})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("the NATS server did not start")
	}
	fmt.Println(ns.Addr().String())
	stopOnSignal(func(context.Context) { ns.Shutdown() })
	return nil
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(c.dir)
}

// procStats reads a process's resident memory and CPU time from /proc.
type procStats struct {
	RSSKiB, HWMKiB int64
	CPU            time.Duration
}

func readProc(pid int) (procStats, error) {
	var p procStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			p.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
		if len(f) >= 2 && f[0] == "VmHWM:" {
			p.HWMKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 (proc(5)), in clock ticks of 1/100 s on Linux.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 13 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			p.CPU = time.Duration(u+st) * 10 * time.Millisecond
		}
	}
	return p, nil
}

// internalServe runs parleyd's server package on 127.0.0.1:0 with its data
// in dir, as parleyd would (SQLite WAL, synchronous=FULL, group commit),
// except that rate limits are lifted: the generator is one client
// address sending on behalf of thousands of accounts.
func internalServe(dir string, useTLS bool) error {
	raiseFileLimit()
	ctx := context.Background()
	var tlsConfig *tls.Config
	if useTLS {
		var err error
		if tlsConfig, err = selfSignedTLS(filepath.Join(dir, "cert.pem")); err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
	}
	var st store.Store
	var err error
	// Group commits and the appends they carried, printed when the server
	// stops: how well the SQLite writer batches under this load.
	var commits, batched atomic.Int64
	if db := os.Getenv(envDB); db != "" {
		// As parleyd serve --db: a pool of 16 unless the URL says.
		opts := &pgstore.Options{}
		if !strings.Contains(db, "pool_max_conns") {
			opts.MaxConns = 16
		}
		st, err = pgstore.Open(ctx, db, opts)
	} else {
		st, err = sqlitestore.Open(ctx, filepath.Join(dir, "parley.db"), &sqlitestore.Options{OnBatch: func(n int) {
			commits.Add(1)
			batched.Add(int64(n))
		}})
		defer func() {
			if n := commits.Load(); n > 0 {
				fmt.Fprintf(os.Stderr, "server: %d group commits with appends, %.1f appends each\n", n, float64(batched.Load())/float64(n))
			}
		}()
	}
	if err != nil {
		return err
	}
	var bus server.Bus
	if url := os.Getenv(envNATS); url != "" {
		b, err := natsbus.Connect(url, slog.Default())
		if err != nil {
			return err
		}
		defer b.Close()
		bus = b
	}
	blobs, err := blobstore.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		return err
	}
	// The key transparency directory as parleyd serve runs it (an epoch
	// at most every 2 s, --kt-interval), not at the 20 ms tests use: its
	// look for changed device lists is a query on the accounts table.
	kt, err := server.EphemeralTransparency("parley.invalid/kt")
	if err != nil {
		return err
	}
	kt.Interval = 2 * time.Second
	unl := server.Unlimited
	srv, err := server.New(server.Config{
		Store: st, Blobs: blobs, Transparency: kt,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		// Every simulated device comes from 127.0.0.1: limits per address
		// and per account would measure the limits, not the server.
		Limits: server.Limits{RegisterPerAddr: unl, SendPerAccount: unl, SendPerAddr: unl,
			KeyPackageFetchPerDev: unl, KeyPackageFetchPerAcct: unl, KeyPackageFetchPerAddr: unl,
			LinkRequestPerAddr: unl, LinkRequestPerAccount: unl, WritesPerAccount: unl, WritesPerAddr: unl, RequestsPerAccount: unl},
		MaxUnauthenticatedPerAddr: 10_000,
		// --idle spreads its connections over 200 accounts (about 95
		// each at 19 000), above the default of 64 per account.
		MaxConnsPerAccount: 1_000_000,
		TLSConfig:          tlsConfig,
		Bus:                bus,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	// PARLEY_LOAD_CPUPROFILE=file profiles the spawned server until it
	// stops (go tool pprof file).
	if path := os.Getenv("PARLEY_LOAD_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	// PARLEY_LOAD_PPROF=127.0.0.1:6060 serves net/http/pprof from the
	// spawned server (heap and goroutine profiles during a run).
	if addr := os.Getenv("PARLEY_LOAD_PPROF"); addr != "" {
		go http.ListenAndServe(addr, pprofMux())
	}
	shutDown := make(chan struct{})
	go stopOnSignal(func(ctx context.Context) {
		srv.Shutdown(ctx)
		close(shutDown)
	})
	err = srv.Serve(ln)
	if err == http.ErrServerClosed {
		// Serve returns as Shutdown begins; the store closes only once
		// the connections have ended and given back what they hold in it
		// (their places under the per-account connection cap), as
		// parleyd serve does.
		err = nil
		<-shutDown
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}

func stopOnSignal(stop func(context.Context)) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop(ctx)
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	return mux
}
