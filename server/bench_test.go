package server_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/parleychat/parley/client/transport"
)

// BenchmarkSend measures durable sends (stored once, pushed to every other
// online member) into one conversation. A connection's requests are
// handled in order, so one connection is bound by one fsync per send;
// several connections share fsyncs through group commit.
func BenchmarkSend(b *testing.B) {
	for _, senders := range []int{1, 8} {
		b.Run(fmt.Sprintf("connections=%d", senders), func(b *testing.B) {
			ts := newServer(b)
			var devs []*device
			for i := range senders + 2 {
				devs = append(devs, register(b, ts, fmt.Sprintf("user%d", i)))
			}
			conv := group(b, "g", devs[0], devs[1:]...)
			for _, d := range devs {
				go func() {
					for range d.conn.Events() {
					}
				}()
			}
			payload := make([]byte, 256)
			next := make(chan struct{})
			b.ResetTimer()
			go func() {
				for range b.N {
					next <- struct{}{}
				}
				close(next)
			}()
			var wg sync.WaitGroup
			for _, d := range devs[:senders] {
				wg.Go(func() {
					for range next {
						if _, err := d.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
