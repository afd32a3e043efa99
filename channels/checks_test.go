package channels_test

import (
	"errors"
	"testing"

	"github.com/parleychat/parley/channels"
)

// The argument checks both stores make before they write (chantest runs
// them through each store; this pins each case).
func TestChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		bad  bool
	}{
		{"channel ok", channels.CheckChannel(channels.Channel{ID: "news", Owner: "alice"}), false},
		{"channel bad id", channels.CheckChannel(channels.Channel{ID: "News!", Owner: "alice"}), true},
		{"channel no owner", channels.CheckChannel(channels.Channel{ID: "news"}), true},
		{"status ok", channels.CheckStatus(channels.Held), false},
		{"status unknown", channels.CheckStatus("lost"), true},
		{"post ok", channels.CheckPost(channels.Post{Status: channels.Published, Media: make([]channels.Media, 2)}, 2), false},
		{"post media count", channels.CheckPost(channels.Post{Status: channels.Published, Media: make([]channels.Media, 1)}, 2), true},
		{"post status", channels.CheckPost(channels.Post{Status: ""}, 0), true},
	} {
		if got := errors.Is(tc.err, channels.ErrInvalid); got != tc.bad || (!tc.bad && tc.err != nil) {
			t.Errorf("%s: err = %v, want ErrInvalid %v", tc.name, tc.err, tc.bad)
		}
	}
	for _, tc := range []struct{ limit, def, want int }{{0, 100, 100}, {-1, 100, 100}, {5, 100, 5}} {
		if got := channels.PageLimit(tc.limit, tc.def); got != tc.want {
			t.Errorf("PageLimit(%d, %d) = %d, want %d", tc.limit, tc.def, got, tc.want)
		}
	}
}
