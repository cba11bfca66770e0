package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/events"
	"wasmbed.io/wasmbed/daemon/store"
)

// rewatchDelay is the pause before watching a kind again after its watch
// ended early (the watcher fell behind).
const rewatchDelay = 100 * time.Millisecond

// ResourcePublisher puts every change the store makes to Devices,
// Applications and Gateways on the event bus, as api.EventResource events
// with the kind, the action (ADDED, MODIFIED, DELETED), the name and the
// object as JSON. The daemon runs exactly one, so that each change is
// published once, whoever made it.
//
// On start each watch reports every stored object as ADDED, so a client
// reading the stream from the start learns the current state. When a watch
// falls behind and is opened again, objects unchanged since they were last
// published are not published again; deletions made while no watch was
// open are not seen.
//
// Set the fields, then call Run once; the fields must not change after.
type ResourcePublisher struct {
	Store  store.Store
	Bus    *events.Bus
	Live   LiveSessions // merged into published devices; nil publishes them as stored
	Logger *slog.Logger // nil discards
}

// Run publishes until ctx ends, then returns nil. It returns an error when
// a watch cannot be opened, for instance because the store is closed.
func (p *ResourcePublisher) Run(ctx context.Context) error {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "resource-events")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kinds := []func() error{
		func() error {
			return publishKind(ctx, p.Store.Devices(), v1alpha1.KindDevice, p.Bus, log, func(d *v1alpha1.Device) { withLive(p.Live, d) })
		},
		func() error {
			return publishKind(ctx, p.Store.Applications(), v1alpha1.KindApplication, p.Bus, log, nil)
		},
		func() error { return publishKind(ctx, p.Store.Gateways(), v1alpha1.KindGateway, p.Bus, log, nil) },
	}
	errs := make([]error, len(kinds))
	var wg sync.WaitGroup
	for i, run := range kinds {
		wg.Go(func() {
			if errs[i] = run(); errs[i] != nil {
				cancel() // one kind failing stops them all
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func publishKind[T store.Object](ctx context.Context, res store.Resource[T], kind string, bus *events.Bus, log *slog.Logger, fill func(T)) error {
	// published is the resourceVersion last published per name, to skip
	// the unchanged objects of a new watch's snapshot.
	published := map[string]string{}
	for {
		ch, err := res.Watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("publish %s events: %w", kind, err)
		}
		for ev := range ch {
			name, rv := ev.Object.GetName(), ev.Object.GetResourceVersion()
			action := string(ev.Type)
			switch ev.Type {
			case store.Deleted:
				delete(published, name)
			case store.Added:
				if last, ok := published[name]; ok {
					if last == rv {
						continue
					}
					action = string(store.Modified)
				}
				published[name] = rv
			default:
				published[name] = rv
			}
			stamp(ev.Object, kind)
			if fill != nil && ev.Type != store.Deleted {
				fill(ev.Object)
			}
			obj, err := json.Marshal(ev.Object)
			if err != nil {
				log.Warn("resource event not published", "kind", kind, "name", name, "err", err)
				continue
			}
			bus.Publish(api.Event{Type: api.EventResource, Kind: kind, Action: action, Name: name, Object: obj})
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("watch ended early; watching again", "kind", kind)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(rewatchDelay):
		}
	}
}
