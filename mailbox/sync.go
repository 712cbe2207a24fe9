package mailbox

import "sync"

// groupSyncer coalesces concurrent Sync calls: a caller waits for a sync
// that started after it called, and one fsync serves everyone waiting.
type groupSyncer struct {
	fn func() error

	mu      sync.Mutex
	running bool
	// gen counts syncs started; waiters record the generation that must
	// complete before they return.
	started, finished uint64
	lastErr           error
	cond              *sync.Cond
}

func newGroupSyncer(fn func() error) *groupSyncer {
	g := &groupSyncer{fn: fn}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *groupSyncer) sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	// The sync we need is the first to start after now.
	need := g.started + 1
	for g.finished < need {
		if !g.running {
			g.running = true
			g.started++
			gen := g.started
			g.mu.Unlock()
			err := g.fn()
			g.mu.Lock()
			g.running = false
			g.finished = gen
			g.lastErr = err
			g.cond.Broadcast()
			continue
		}
		g.cond.Wait()
	}
	return g.lastErr
}
