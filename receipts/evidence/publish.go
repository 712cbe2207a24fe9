package evidence

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"certmail/kv"
)

// DefaultCheckpointInterval is how often a server publishes a checkpoint
// while the log grows. Verifiers compare checkpoints to catch a gateway
// that shows parties different histories; the more often they are
// published, the smaller the window in which it could.
const DefaultCheckpointInterval = time.Minute

// Publish returns a signed checkpoint of the log as it is now, signing and
// storing one only if the log grew since the newest stored checkpoint. It
// reads first, so that asking often (every GET of the checkpoint) takes
// the store's write lock only when there is something new to sign.
func (l *Log) Publish(db kv.RecordStore) ([]byte, TreeHead, error) {
	var cp []byte
	err := db.View(func(kv kv.Records) error {
		size, err := Size(kv)
		if err != nil {
			return err
		}
		var found bool
		cp, found, err = CheckpointAt(kv, size)
		if !found {
			cp = nil
		}
		return err
	})
	if err != nil {
		return nil, TreeHead{}, fmt.Errorf("publishing a checkpoint: %w", err)
	}
	if cp == nil {
		if err := db.Update(func(kv kv.Records) error {
			var err error
			cp, err = l.Checkpoint(kv)
			return err
		}); err != nil {
			return nil, TreeHead{}, fmt.Errorf("publishing a checkpoint: %w", err)
		}
	}
	head, err := ParseCheckpoint(cp, l.vkey)
	if err != nil {
		return nil, TreeHead{}, fmt.Errorf("publishing a checkpoint: %w", err)
	}
	return cp, head, nil
}

// RunCheckpoints publishes a checkpoint now and then every interval (when
// the log grew) until ctx ends. A failure is logged and retried at the
// next tick: the log itself is intact, only its publication is late.
func (l *Log) RunCheckpoints(ctx context.Context, db kv.RecordStore, every time.Duration, logger *slog.Logger) {
	if every <= 0 {
		every = DefaultCheckpointInterval
	}
	if logger == nil {
		logger = slog.Default()
	}
	// last starts at a size no log has, so that the first checkpoint is
	// logged too.
	last := ^uint64(0)
	publish := func() {
		_, head, err := l.Publish(db)
		if err != nil {
			logger.Warn("checkpoint not published", "err", err)
			return
		}
		if head.Size != last {
			logger.Info("checkpoint published", "origin", head.Origin, "size", head.Size)
			last = head.Size
		}
	}
	publish()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			publish()
		}
	}
}
