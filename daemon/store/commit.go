package store

import (
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs the writes of many goroutines in shared bbolt
// transactions, so that concurrent writers share one disk sync instead of
// queueing for one each: whatever arrives while a transaction commits
// goes into the next one. A lone writer waits for nothing but its own
// commit (bbolt's Batch would hold it for a timer first).
//
// Each write may run more than once (a transaction that fails is retried
// write by write, so that one refused write does not fail its
// neighbours), and must therefore derive everything from the transaction
// it is given.
type groupCommit struct {
	db *bolt.DB

	mu      sync.Mutex
	pending []*commitCall
	running bool // a goroutine is committing, and hands over to a pending one

	transactions atomic.Int64 // committed, for tests and benchmarks
}

type commitCall struct {
	write func(*bolt.Tx) error
	err   error
	done  chan struct{} // closed once its transaction committed or failed
	lead  chan struct{} // closed when this call's goroutine is to commit the next group
}

// update runs write in a transaction that has committed, or failed, when
// it returns.
func (g *groupCommit) update(write func(*bolt.Tx) error) error {
	c := &commitCall{write: write, done: make(chan struct{}), lead: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if !g.running {
		g.running = true
		g.mu.Unlock()
		g.lead()
	} else {
		g.mu.Unlock()
		select {
		case <-c.done:
		case <-c.lead:
			g.lead()
		}
	}
	<-c.done
	return c.err
}

// lead commits what is pending as one group, then passes the lead to the
// oldest writer that arrived meanwhile, or ends the run: each goroutine
// commits at most one group, its own among them.
func (g *groupCommit) lead() {
	g.mu.Lock()
	group := g.pending
	g.pending = nil
	g.mu.Unlock()
	g.commit(group)
	g.mu.Lock()
	if len(g.pending) == 0 {
		g.running = false
	} else {
		close(g.pending[0].lead)
	}
	g.mu.Unlock()
}

// commit runs group's writes in one transaction. When it fails, each
// write runs again in a transaction of its own, so that its error is its
// own.
func (g *groupCommit) commit(group []*commitCall) {
	if len(group) > 1 {
		err := g.db.Update(func(tx *bolt.Tx) error {
			for _, c := range group {
				if err := c.write(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			g.transactions.Add(1)
			for _, c := range group {
				close(c.done)
			}
			return
		}
	}
	for _, c := range group {
		if c.err = g.db.Update(c.write); c.err == nil {
			g.transactions.Add(1)
		}
		close(c.done)
	}
}
