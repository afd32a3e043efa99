package channels

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// mediaCounters count the Service's object store requests, for metrics.
type mediaCounters struct {
	put, removed, failed, orphans atomic.Int64
}

// MediaStats are counts since the Service started (parleyd exports them
// as parleyd_channel_media_*).
type MediaStats struct {
	Put     int64 // objects put (files of posts)
	Removed int64 // objects of erased media removed
	Failed  int64 // puts and removals that failed (retried, or swept)
	Orphans int64 // objects no post names, removed by the orphan sweep
}

// MediaStats returns the media objects' counts.
func (s *Service) MediaStats() MediaStats {
	return MediaStats{Put: s.media.put.Load(), Removed: s.media.removed.Load(), Failed: s.media.failed.Load(), Orphans: s.media.orphans.Load()}
}

// Media bytes in an object store (Config.MediaObjects). A post's files
// are put before the post is committed and removed after it is erased:
// the Store records the objects of every file it erases in the erasing
// transaction (Store.DroppedObjects), and they are removed from there, at
// once by the node that erased them and every MediaSweep by any node, so
// that an erasure holds even if the node dies before removing them, or
// was made by another process. Objects put for a post that was never
// committed (a node that died in between) are found by the orphan sweep.

// droppedBatch is how many dropped objects are removed at a time.
const droppedBatch = 500

// mediaOrphanGrace is how old an object no post names must be before
// the orphan sweep removes it: longer than a post's files take to be put
// and the post committed.
const mediaOrphanGrace = time.Hour

// removeDropped removes the objects of erased media and forgets them.
// When a batch fails, its objects are tried one at a time and those
// removed are forgotten, so that one object the store will not remove
// does not hold back every erasure after it.
func (s *Service) removeDropped(ctx context.Context) error {
	for {
		objects, err := s.store.DroppedObjects(ctx, droppedBatch)
		if err != nil || len(objects) == 0 {
			return err
		}
		if err := s.cfg.MediaObjects.RemoveMedia(ctx, objects); err != nil {
			s.media.failed.Add(1)
			var removed []string
			for _, o := range objects {
				if ctx.Err() != nil {
					break
				}
				if s.cfg.MediaObjects.RemoveMedia(ctx, []string{o}) == nil {
					removed = append(removed, o)
				}
			}
			if len(removed) > 0 {
				s.media.removed.Add(int64(len(removed)))
				if ferr := s.store.ForgetDroppedObjects(ctx, removed); ferr != nil {
					return errors.Join(err, ferr)
				}
			}
			return err
		}
		s.media.removed.Add(int64(len(objects)))
		if err := s.store.ForgetDroppedObjects(ctx, objects); err != nil {
			return err
		}
		if len(objects) < droppedBatch {
			return nil
		}
	}
}

// erasedWait bounds how long a request that erased media waits for their
// objects to go: with the object store away, the sweep does it later.
const erasedWait = 10 * time.Second

// erased is called after the Store erased media: their objects go now.
// A failure is logged; the next sweep removes them.
func (s *Service) erased(ctx context.Context) {
	if s.cfg.MediaObjects == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), erasedWait)
	defer cancel()
	if err := s.removeDropped(ctx); err != nil {
		s.log.Warn("channels: the objects of erased media were not removed yet; the next media sweep retries", "err", err)
	}
}

// sweepMedia runs until ctx ends: dropped objects every MediaSweep, and
// orphans every MediaOrphanSweep.
func (s *Service) sweepMedia(ctx context.Context) {
	t := time.NewTicker(s.cfg.MediaSweep)
	defer t.Stop()
	var lastOrphans time.Time
	for {
		if err := s.removeDropped(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("channels: removing the objects of erased media failed; retried at the next sweep", "err", err)
		}
		if s.cfg.MediaOrphanSweep > 0 && time.Since(lastOrphans) >= s.cfg.MediaOrphanSweep {
			lastOrphans = time.Now()
			n, err := s.cfg.MediaObjects.SweepMedia(ctx, time.Now().Add(-mediaOrphanGrace), func(o string) (bool, error) {
				return s.store.ObjectInUse(ctx, o)
			})
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("channels: the media orphan sweep failed; it runs again after the next interval", "err", err)
			case n > 0:
				s.media.orphans.Add(int64(n))
				s.log.Info("channels: removed media objects of posts that were never stored", "objects", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
