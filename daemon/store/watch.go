package store

import (
	"context"
	"fmt"
)

// watcher is one open Watch. Its channel holds the initial snapshot plus
// up to Embedded.watchBuffer events; a commit that finds it full closes
// it instead of waiting, so a slow reader never holds up writers.
type watcher[T Object] struct {
	ch chan Event[T]
	// done is closed together with ch, to end the goroutine that waits
	// for the watch's context.
	done   chan struct{}
	closed bool // guarded by Embedded.mu
}

// Watch sends an Added event for every stored object, sorted by name,
// then every committed change in commit order, until ctx ends, the
// watcher falls more than the buffer (4096 events) behind, or the store is
// closed; then the channel is closed. Each event carries its own copy of
// the object.
func (r *resource[T]) Watch(ctx context.Context) (<-chan Event[T], error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("watch %ss: %w", r.noun, err)
	}
	e := r.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("watch %ss: %w", r.noun, errClosed)
	}
	snapshot := r.copies()
	// The snapshot fits in the channel whatever its size, so it is never
	// dropped, and the watcher still has the full buffer for what follows.
	w := &watcher[T]{
		ch:   make(chan Event[T], len(snapshot)+e.watchBuffer),
		done: make(chan struct{}),
	}
	for _, obj := range snapshot {
		w.ch <- Event[T]{Type: Added, Object: obj}
	}
	r.watchers[w] = struct{}{}
	go func() {
		select {
		case <-ctx.Done():
			e.mu.Lock()
			r.stopLocked(w)
			e.mu.Unlock()
		case <-w.done:
		}
	}()
	return w.ch, nil
}

// publishLocked sends one committed change to every watcher, each with its
// own copy of obj, closing those whose buffer is full. The caller holds
// e.mu and keeps obj.
func (r *resource[T]) publishLocked(typ EventType, obj T) {
	for w := range r.watchers {
		ev := Event[T]{Type: typ, Object: obj.DeepCopyObject().(T)}
		select {
		case w.ch <- ev:
		default:
			r.stopLocked(w)
		}
	}
}

// stopLocked unregisters w and closes its channel, once. The caller holds
// e.mu.
func (r *resource[T]) stopLocked(w *watcher[T]) {
	if w.closed {
		return
	}
	w.closed = true
	delete(r.watchers, w)
	close(w.ch)
	close(w.done)
}

// stopAllLocked closes every watcher of the kind. The caller holds e.mu.
func (r *resource[T]) stopAllLocked() {
	for w := range r.watchers {
		r.stopLocked(w)
	}
}
