package channels

// OnLongPollWait makes f run whenever a long-poll on a channel's feed
// starts waiting (after finding no new events), so that a test changes
// the feed only then and the wake-up path is the one that answers. Set it
// before any request.
func (s *Service) OnLongPollWait(f func(channel string)) { s.longPollWaiting = f }
