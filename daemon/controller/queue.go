// Package controller reconciles desired against reported state for the
// daemon's resources, in the manner of client-go controllers: watches and
// events only enqueue names, workers reconcile one name at a time from a
// rate-limited work queue, and status is written on a copy through the
// store's status path.
package controller

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"

	"wasmbed.io/wasmbed/daemon/store"
)

// reconciler is what a controller does for one object name.
type reconciler func(ctx context.Context, name string) error

// loop runs a reconciler over a rate-limited work queue of names.
type loop struct {
	name  string
	queue workqueue.TypedRateLimitingInterface[string]
	log   *slog.Logger
}

func newLoop(name string, log *slog.Logger) *loop {
	return &loop{
		name: name,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name},
		),
		log: log.With("controller", name),
	}
}

// Enqueue asks for name to be reconciled.
func (l *loop) Enqueue(name string) { l.queue.Add(name) }

// run processes the queue with workers until ctx ends.
func (l *loop) run(ctx context.Context, workers int, r reconciler) {
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l.next(ctx, r) {
			}
		}()
	}
	<-ctx.Done()
	l.queue.ShutDown()
	wg.Wait()
}

func (l *loop) next(ctx context.Context, r reconciler) bool {
	name, quit := l.queue.Get()
	if quit {
		return false
	}
	defer l.queue.Done(name)
	err := r(ctx, name)
	switch {
	case err == nil:
		l.queue.Forget(name)
	case ctx.Err() != nil:
	case errors.Is(err, store.ErrConflict):
		l.queue.AddRateLimited(name) // someone wrote first: retry on a fresh copy
	default:
		l.log.Warn("reconcile failed", "name", name, "err", err)
		l.queue.AddRateLimited(name)
	}
	return true
}

// watch hands every object of a resource that changes to changed, and
// each resync period every object resynced selects (nil: every object),
// until ctx ends. A closed watch is opened again.
func watch[T store.Object](ctx context.Context, res store.Resource[T], resync time.Duration, changed func(T), deleted func(T), resynced func(T) bool) {
	tick := time.NewTicker(resync)
	defer tick.Stop()
	for ctx.Err() == nil {
		ch, err := res.Watch(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
	events:
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-ch:
				if !ok {
					break events
				}
				if e.Type == store.Deleted && deleted != nil {
					deleted(e.Object)
				}
				changed(e.Object)
			case <-tick.C:
				if items, err := res.List(ctx); err == nil {
					for _, o := range items {
						if resynced == nil || resynced(o) {
							changed(o)
						}
					}
				}
			}
		}
	}
}
