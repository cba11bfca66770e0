// Package events is the daemon's event bus: what the store and the gateway
// report is numbered, kept in a bounded history and fanned out to
// subscribers (the API's event stream, the controllers' logs).
package events

import (
	"context"
	"sync"
	"time"

	"wasmbed.io/wasmbed/daemon/api"
)

// Bus fans events out to subscribers. It is safe for concurrent use.
// Publishing never blocks: a subscriber that falls more than its buffer
// behind is dropped (its channel closed) and must subscribe again.
type Bus struct {
	mu      sync.Mutex
	seq     uint64
	history []api.Event // ring of the last cap(history) events
	next    int
	subs    map[chan api.Event]struct{}
}

// New returns a bus that keeps the last history events for late
// subscribers.
func New(history int) *Bus {
	return &Bus{history: make([]api.Event, 0, history), subs: make(map[chan api.Event]struct{})}
}

// Publish numbers e, stamps its time if unset, and delivers it.
func (b *Bus) Publish(e api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Seq = b.seq
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if len(b.history) < cap(b.history) {
		b.history = append(b.history, e)
	} else if cap(b.history) > 0 {
		b.history[b.next] = e
		b.next = (b.next + 1) % cap(b.history)
	}
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// Subscribe returns the kept events with a sequence number above after,
// and a channel of every later event, closed when ctx ends or the
// subscriber falls behind.
func (b *Bus) Subscribe(ctx context.Context, after uint64) ([]api.Event, <-chan api.Event) {
	ch := make(chan api.Event, 1024)
	b.mu.Lock()
	var past []api.Event
	n := len(b.history)
	for i := 0; i < n; i++ {
		e := b.history[(b.next+i)%n]
		if e.Seq > after {
			past = append(past, e)
		}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	})
	return past, ch
}
