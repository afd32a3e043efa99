package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// relayClient speaks the baseline relay's framing (see relay.go).
type relayClient struct {
	ws      *websocket.Conn
	ready   chan struct{} // closed when the relay has registered it
	mu      sync.Mutex
	pending map[[16]byte]chan struct{}
}

// runRelay drives the same 1:1 pattern as the real run (client i sends
// to client i^1, cfg.inflight outstanding, cfg.rate, cfg.size) through
// a spawned bare relay.
// With durable, the relay appends every frame to a log file and
// fdatasyncs it (group commit) before forwarding and acknowledging it.
func runRelay(ctx context.Context, cfg config, progress io.Writer, durable bool) (*Report, error) {
	mode, what := "internal-relay", "bare relay frames"
	if durable {
		mode, what = "internal-relay-durable", "bare relay frames, each appended to a log file and fdatasync'd (group commit) before forwarding and ack"
	}
	ch, err := spawn(mode, nil)
	if err != nil {
		return nil, err
	}
	defer ch.stop()
	fmt.Fprintf(progress, "baseline: %s (pid %d) at %s\n", mode, ch.pid(), ch.url)
	n := cfg.accounts &^ 1
	st := &stats{}
	dl := newDialers(cfg.addrs, nil)
	clients := make([]*relayClient, n)
	err = parallel(n, 32, func(i int) error {
		u := strings.Replace(ch.url, "http://", "ws://", 1) + fmt.Sprintf("/relay?id=%d", i)
		ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: dl.pick()})
		if err != nil {
			return err
		}
		ws.SetReadLimit(64 << 20)
		rc := &relayClient{ws: ws, ready: make(chan struct{}), pending: map[[16]byte]chan struct{}{}}
		clients[i] = rc
		seen := map[[16]byte]bool{}
		go func() {
			for {
				_, data, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				if len(data) == 1 && data[0] == 'R' {
					close(rc.ready)
					continue
				}
				if len(data) == 17 && data[0] == 'A' {
					rc.mu.Lock()
					c := rc.pending[[16]byte(data[1:])]
					delete(rc.pending, [16]byte(data[1:]))
					rc.mu.Unlock()
					if c != nil {
						close(c)
					}
					continue
				}
				if len(data) < 28 {
					continue
				}
				id := [16]byte(data[4:20])
				if seen[id] {
					st.dups.Add(1)
					continue
				}
				seen[id] = true
				st.delivered.Add(1)
				lat := sinceStamp(data[20:])
				st.mu.Lock()
				st.lat = append(st.lat, lat)
				st.mu.Unlock()
			}
		}()
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.ws.CloseNow()
			}
		}
	}()
	for _, rc := range clients {
		select {
		case <-rc.ready:
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("relay: a client was not registered within 30s")
		}
	}
	procBefore, _ := readProc(ch.pid())
	genBefore := selfCPU()
	deadline := time.Now().Add(cfg.duration)
	start := time.Now()
	var lastAck atomic.Int64
	var wg sync.WaitGroup
	for i, rc := range clients {
		var interval time.Duration
		if cfg.rate > 0 {
			interval = time.Duration(float64(n) / cfg.rate * float64(time.Second))
		}
		for lane := range cfg.inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := time.Now().Add(time.Duration(i+lane*7) * interval / time.Duration(n+1))
				for time.Now().Before(deadline) {
					if interval > 0 {
						if next.After(deadline) {
							return
						}
						if wait := time.Until(next); wait > 0 {
							time.Sleep(wait)
						}
						next = next.Add(interval * time.Duration(cfg.inflight))
						if time.Now().After(deadline) {
							return
						}
					}
					frame := make([]byte, 20+cfg.size)
					binary.BigEndian.PutUint32(frame, uint32(i^1))
					id := randBytes(16)
					copy(frame[4:], id)
					copy(frame[20:], bytes.Repeat([]byte{0xa5}, cfg.size))
					stamp(frame[20:])
					done := make(chan struct{})
					rc.mu.Lock()
					rc.pending[[16]byte(id)] = done
					rc.mu.Unlock()
					st.sent.Add(1)
					if err := rc.ws.Write(ctx, websocket.MessageBinary, frame); err != nil {
						st.err(err)
						return
					}
					select {
					case <-done:
						st.acked.Add(1)
						st.expected.Add(1)
						lastAck.Store(time.Now().UnixNano())
					case <-time.After(30 * time.Second):
						st.err(fmt.Errorf("relay: no ack in 30s"))
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	genCPU := selfCPU() - genBefore
	procAfter, _ := readProc(ch.pid())
	time.Sleep(time.Second)
	end := time.Unix(0, lastAck.Load())
	if end.Before(start) {
		end = time.Now()
	}
	rep := &Report{Payloads: what, Accounts: n, Devices: n, Connections: n}
	elapsed := end.Sub(start)
	st.fill(rep, elapsed)
	cpu := procAfter.CPU - procBefore.CPU
	rep.GeneratorCPUPerMessageUs = perMessageUs(genCPU, rep)
	rep.Server = &ServerStats{PID: ch.pid(), RSSMiB: float64(procAfter.RSSKiB) / 1024, PeakRSSMiB: float64(procAfter.HWMKiB) / 1024,
		CPUSeconds: cpu.Seconds(), CPUPercent: 100 * cpu.Seconds() / elapsed.Seconds(), CPUPerMessageUs: perMessageUs(cpu, rep)}
	return rep, nil
}
