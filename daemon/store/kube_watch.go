package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// kubeWatchBuffer is how many events a Kubernetes watch channel holds on
// top of its initial snapshot. A reader that falls behind holds up only
// its own watch: the server buffers for it, and ends the watch if that
// grows too large, which this side recovers from by watching again.
const kubeWatchBuffer = 256

// Watch backoff after a failed request, doubling up to the maximum; it
// restarts from the minimum once events flow again.
const (
	kubeWatchMinBackoff = 100 * time.Millisecond
	kubeWatchMaxBackoff = 10 * time.Second
)

// kubeWatchTimeout asks the server to end each watch request after this
// long; the store then watches again from the last resourceVersion seen,
// so no change is missed.
const kubeWatchTimeout = 5 * time.Minute

// Watch lists the objects and sends an Added event for each, sorted by
// name, then watches from the list's resourceVersion and sends every
// change in the order the server reports it, until ctx ends or the store
// is closed; then it closes the channel. Each event's object is the
// caller's.
//
// A watch request that ends is made again from the last resourceVersion
// seen, and a failed one is retried with backoff. When the server says
// that resourceVersion is too old (410 Gone: it was compacted away), the
// watch lists again and sends the difference from what it had sent:
// Added for new objects, Modified for changed ones, Deleted (with the
// last state sent) for those gone; so the channel's contract holds across
// the gap, though changes inside it are merged.
func (r *kubeResource[T]) Watch(ctx context.Context) (<-chan Event[T], error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("watch %ss: %w", r.noun, err)
	}
	if r.k.closed() {
		return nil, fmt.Errorf("watch %ss: %w", r.noun, errClosed)
	}
	snapshot, rv, err := r.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch %ss: %w", r.noun, err)
	}
	ch := make(chan Event[T], len(snapshot)+kubeWatchBuffer)
	known := make(map[string]T, len(snapshot))
	for _, obj := range snapshot {
		known[obj.GetName()] = obj.DeepCopyObject().(T)
		ch <- Event[T]{Type: Added, Object: obj}
	}
	r.startWatch(ctx, ch, known, rv)
	return ch, nil
}

// startWatch runs watchLoop in a goroutine that Close waits for, and
// closes ch when it returns.
func (r *kubeResource[T]) startWatch(ctx context.Context, ch chan Event[T], known map[string]T, rv string) {
	if !r.k.addWatch() {
		close(ch) // closed meanwhile: end the watch as Close would have
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.k.closeCtx, cancel)
	go func() {
		defer r.k.watches.Done()
		defer close(ch)
		defer stop()
		defer cancel()
		r.watchLoop(wctx, ch, known, rv)
	}()
}

// watchLoop watches from rv until ctx ends. known holds the last state
// sent of every object that exists as far as the reader knows, for the
// difference sent after a re-list.
func (r *kubeResource[T]) watchLoop(ctx context.Context, ch chan<- Event[T], known map[string]T, rv string) {
	backoff := kubeWatchMinBackoff
	// wait sleeps for the backoff and doubles it; false when ctx ended.
	wait := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, kubeWatchMaxBackoff)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	send := func(ev Event[T]) bool {
		select {
		case ch <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	relist := func() bool {
		for {
			objs, newRV, err := r.list(ctx)
			if err == nil {
				rv = newRV
				return r.sendDiff(known, objs, send)
			}
			if ctx.Err() != nil || !wait() {
				return false
			}
		}
	}

	for ctx.Err() == nil {
		timeout := int64(kubeWatchTimeout / time.Second)
		w, err := r.k.client.Get().Namespace(r.k.namespace).Resource(r.plural).
			VersionedParams(&metav1.ListOptions{
				Watch:               true,
				ResourceVersion:     rv,
				AllowWatchBookmarks: true,
				TimeoutSeconds:      &timeout,
			}, r.k.params).
			Watch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if expired(err) {
				if !relist() {
					return
				}
				continue
			}
			if !wait() {
				return
			}
			continue
		}
		end := r.drain(ctx, w, known, &rv, send, func() { backoff = kubeWatchMinBackoff })
		w.Stop()
		switch end {
		case watchCancelled:
			return
		case watchGone:
			if !relist() {
				return
			}
		case watchFailed, watchIdle:
			// Do not spin on a server that fails or ends every watch
			// at once.
			if !wait() {
				return
			}
		}
	}
}

// watchEnd is why drain returned.
type watchEnd int

const (
	watchEnded     watchEnd = iota // the server ended the watch after events
	watchIdle                      // the watch ended before any event
	watchGone                      // the resourceVersion is too old: list again
	watchFailed                    // the server sent another error
	watchCancelled                 // ctx ended
)

// drain forwards w's events until w ends. It advances *rv to each event's
// resourceVersion (bookmarks included), keeps known up to date and calls
// progress for each event.
func (r *kubeResource[T]) drain(ctx context.Context, w watch.Interface, known map[string]T, rv *string, send func(Event[T]) bool, progress func()) watchEnd {
	seen := false
	for {
		var (
			ev   watch.Event
			open bool
		)
		select {
		case <-ctx.Done():
			return watchCancelled
		case ev, open = <-w.ResultChan():
		}
		switch {
		case !open && ctx.Err() != nil:
			return watchCancelled
		case !open && seen:
			return watchEnded
		case !open:
			return watchIdle
		case ev.Type == watch.Error && expired(apierrors.FromObject(ev.Object)):
			return watchGone
		case ev.Type == watch.Error:
			return watchFailed
		}
		obj, isT := ev.Object.(T)
		if !isT {
			continue // not one of ours; unreachable with this scheme
		}
		seen = true
		*rv = obj.GetResourceVersion()
		progress()
		var typ EventType
		switch ev.Type {
		case watch.Bookmark:
			continue
		case watch.Added:
			typ = Added
		case watch.Modified:
			typ = Modified
		case watch.Deleted:
			typ = Deleted
		default:
			continue
		}
		r.typed(obj)
		if typ == Deleted {
			delete(known, obj.GetName())
		} else {
			known[obj.GetName()] = obj.DeepCopyObject().(T)
		}
		if !send(Event[T]{Type: typ, Object: obj}) {
			return watchCancelled
		}
	}
}

// sendDiff sends what changed between known (the objects last sent) and
// objs (a fresh list sorted by name), and makes known match objs. It
// returns false when send does (ctx ended).
func (r *kubeResource[T]) sendDiff(known map[string]T, objs []T, send func(Event[T]) bool) bool {
	present := make(map[string]bool, len(objs))
	for _, obj := range objs {
		name := obj.GetName()
		present[name] = true
		old, had := known[name]
		if had && old.GetResourceVersion() == obj.GetResourceVersion() {
			continue
		}
		typ := Modified
		if !had {
			typ = Added
		}
		known[name] = obj.DeepCopyObject().(T)
		if !send(Event[T]{Type: typ, Object: obj}) {
			return false
		}
	}
	var gone []string
	for name := range known {
		if !present[name] {
			gone = append(gone, name)
		}
	}
	// Sorted, so that the order does not depend on map iteration.
	slices.Sort(gone)
	for _, name := range gone {
		last := known[name]
		delete(known, name)
		if !send(Event[T]{Type: Deleted, Object: last}) {
			return false
		}
	}
	return true
}

// expired reports whether err says a watch's resourceVersion is too old.
func expired(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}
