package client

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkSendText measures one text message end to end on the sending
// side: profile lock, catch-up fetch, MLS encryption, encrypted state
// write and the server's durable store acknowledgement, over loopback.
func BenchmarkSendText(b *testing.B) {
	srv := startServer(b)
	alice := srv.newUser(b, "alice")
	srv.newUser(b, "bob")
	mustSend(b, alice, "@bob", "warm-up")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := alice.SendText(context.Background(), "@bob", fmt.Sprintf("message %d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSyncReceive measures receiving: fetch, MLS decryption, state
// and history writes, and the read receipt, per message.
func BenchmarkSyncReceive(b *testing.B) {
	srv := startServer(b)
	alice := srv.newUser(b, "alice")
	bob := srv.newUser(b, "bob")
	mustSend(b, alice, "@bob", "warm-up")
	mustSync(b, bob)
	const batch = 50
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for i := range batch {
			mustSend(b, alice, "@bob", fmt.Sprintf("message %d", i))
		}
		b.StartTimer()
		res, err := bob.Sync(context.Background())
		if err != nil || len(res.Messages) != batch {
			b.Fatalf("got %d messages: %v", len(res.Messages), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
}
