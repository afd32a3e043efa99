package server_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/wire"
)

// BenchmarkSendUnderAttack measures what a well-behaved user sees while
// attackers mount the attacks of docs/abuse.md against the same server
// (default limits): b.N sends by alice to bob, one every 2 ms, with nothing
// else going on,
// then b.N sends while four attacker connections loop key-package drains
// with duplicate ids and whole-account fetches, invitations with large
// Welcomes, link-request floods and direct-conversation probes, ignoring
// every retry-after and reconnecting whenever they are disconnected. It
// reports both p50 and p99 send latencies and their ratio (attack/quiet).
// The attack loops stop when the measurement ends.
//
//	go test -run '^$' -bench SendUnderAttack -benchtime 2000x ./server/
func BenchmarkSendUnderAttack(b *testing.B) {
	for _, attack := range []string{"all", "kp-duplicates", "kp-fetch", "invitations", "link-requests", "probes"} {
		b.Run(attack, func(b *testing.B) { benchSendUnderAttack(b, attack) })
	}
}

func benchSendUnderAttack(b *testing.B, attack string) {
	kinds := map[string]int{"kp-duplicates": 0, "kp-fetch": 1, "invitations": 2, "link-requests": 3, "probes": 4}
	ts := newServer(b)
	alice, bob := register(b, ts, "alice"), register(b, ts, "bob")
	conv := group(b, "g", alice, bob)
	var kps []transport.KeyPackage
	for i := range 200 {
		kps = append(kps, transport.KeyPackage{Ref: fmt.Appendf(nil, "r%d", i), Data: make([]byte, 300)})
	}
	if _, err := bob.conn.UploadKeyPackages(bg, kps, &transport.KeyPackage{Ref: []byte("last"), Data: make([]byte, 300)}); err != nil {
		b.Fatal(err)
	}
	for _, d := range []*device{alice, bob} {
		go func() {
			for range d.conn.Events() {
			}
		}()
	}
	payload := make([]byte, 256)
	measure := func() []time.Duration {
		lat := make([]time.Duration, 0, b.N)
		tick := time.NewTicker(2 * time.Millisecond) // a busy person, well under the per-account send limit
		defer tick.Stop()
		for range b.N {
			<-tick.C
			start := time.Now()
			if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, payload); err != nil {
				b.Fatalf("well-behaved send: %v", err)
			}
			lat = append(lat, time.Since(start))
		}
		// bob keeps up, as a real recipient would.
		for {
			ms, more, err := bob.conn.Fetch(bg, conv, 1000)
			if err != nil {
				b.Fatalf("well-behaved fetch: %v", err)
			}
			if len(ms) > 0 {
				if err := bob.conn.Ack(bg, conv, ms[len(ms)-1].Seq); err != nil {
					b.Fatal(err)
				}
			}
			if !more {
				break
			}
		}
		return lat
	}

	b.ResetTimer()
	quiet := measure()

	ctx, stop := context.WithCancel(bg)
	var attacks atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 {
		mallory := register(b, ts, fmt.Sprintf("mallory%d", i))
		wg.Go(func() {
			dup := slices.Repeat([]string{bob.id}, 500)
			for n := 0; ctx.Err() == nil; n++ {
				if mallory.conn.Err() != nil {
					// Disconnected for ignoring retry-after: come back.
					attacks.Add(1)
					if c, err := transport.Dial(ctx, ts.url, nil); err == nil {
						if _, err := c.Authenticate(ctx, mallory.key); err == nil {
							mallory.conn = c
						} else {
							c.Close()
						}
					}
					continue
				}
				kind := n % 5
				if attack != "all" {
					kind = kinds[attack]
				}
				switch kind {
				case 0: // duplicate ids: refused before the store
					mallory.conn.FetchKeyPackages(ctx, "bob", dup...)
				case 1: // whole-account fetches until rate limited
					mallory.conn.FetchKeyPackages(ctx, "bob")
				case 2: // 400 KiB invitations until INBOX_FULL
					id := fmt.Appendf(nil, "m%d-%d", i, n)
					if mallory.conn.CreateConversation(ctx, id) == nil {
						mallory.conn.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: id,
							Payload: []byte("c"), Added: []string{alice.id}, Welcome: make([]byte, 400<<10)})
					}
				case 3: // link requests for alice until rate limited
					mallory.conn.RequestLink(ctx, "alice", newKey())
				case 4: // direct-conversation probes
					mallory.conn.SendApplication(ctx, transport.NewMessageID(), wire.DirectConversationID("alice", "bob"), 1, payload)
				}
				attacks.Add(1)
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // let the attack get going
	attacked := measure()
	stop()
	wg.Wait()
	b.StopTimer()

	// alice can still sync through the invitations mallory left her.
	if _, _, err := alice.conn.FetchInbox(bg, 0); err != nil {
		b.Fatalf("alice's inbox after the attack: %v", err)
	}
	pct := func(lat []time.Duration, p float64) time.Duration {
		s := slices.Clone(lat)
		slices.Sort(s)
		return s[min(len(s)-1, int(float64(len(s))*p))]
	}
	q50, q99 := pct(quiet, 0.50), pct(quiet, 0.99)
	a50, a99 := pct(attacked, 0.50), pct(attacked, 0.99)
	b.ReportMetric(float64(q50.Microseconds())/1000, "quiet-p50-ms")
	b.ReportMetric(float64(q99.Microseconds())/1000, "quiet-p99-ms")
	b.ReportMetric(float64(a50.Microseconds())/1000, "attack-p50-ms")
	b.ReportMetric(float64(a99.Microseconds())/1000, "attack-p99-ms")
	b.ReportMetric(float64(a99)/float64(q99), "p99-ratio")
	b.ReportMetric(float64(attacks.Load()), "attack-requests")
}
