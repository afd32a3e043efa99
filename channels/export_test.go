package channels

// OnLongPollWait makes f run whenever a long-poll on a channel's feed
// starts waiting (after finding no new events), so that a test changes
// the feed only then and the wake-up path is the one that answers. Set it
// before any request.
func (s *Service) OnLongPollWait(f func(channel string)) { s.longPollWaiting = f }

// OnMediaRead makes f run when a media request has read the post and is
// about to read a file's bytes from the store (a test moves the file to
// the object store then). Set it before any request.
func (s *Service) OnMediaRead(f func()) { s.mediaRead = f }
