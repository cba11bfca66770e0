package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/gateway/pki"
)

// Cached returns a view of the store for controllers: Get, List and
// Watch are served from client-go informers (one list and one watch per
// kind, feeding an in-memory cache), so reconciles cost the API server
// nothing to read; writes go to the API server as before. The informers
// run until ctx ends; Cached returns once they have synced.
//
// Reads lag writes by the time the write takes to come back through the
// watch. That is the usual contract of a controller's cache: a write made
// from a stale read fails with ErrConflict and the controller retries on
// a fresh copy. A Watch of the view is fed by the same informer as its
// reads, so an object read after its event is at least that new. The HTTP
// API reads the store directly, so its callers read their own writes.
func (k *Kubernetes) Cached(ctx context.Context) (Store, error) {
	c := &kubeCached{Kubernetes: k}
	c.devices = newCachedResource(ctx, k.devices)
	c.applications = newCachedResource(ctx, k.applications)
	c.gateways = newCachedResource(ctx, k.gateways)
	if !cache.WaitForCacheSync(ctx.Done(), c.devices.inf.HasSynced, c.applications.inf.HasSynced, c.gateways.inf.HasSynced) {
		return nil, fmt.Errorf("kubernetes store cache: not synced: %w", context.Cause(ctx))
	}
	return c, nil
}

// kubeCached is the view Cached returns.
type kubeCached struct {
	*Kubernetes
	devices      *cachedResource[*v1alpha1.Device]
	applications *cachedResource[*v1alpha1.Application]
	gateways     *cachedResource[*v1alpha1.Gateway]
}

func (c *kubeCached) Devices() Resource[*v1alpha1.Device]           { return c.devices }
func (c *kubeCached) Applications() Resource[*v1alpha1.Application] { return c.applications }
func (c *kubeCached) Gateways() Resource[*v1alpha1.Gateway]         { return c.gateways }

// Close is the underlying store's to call; closing the view does nothing.
func (c *kubeCached) Close() error { return nil }

// cachedResource reads one kind from an informer and writes through the
// kubeResource it wraps.
type cachedResource[T Object] struct {
	*kubeResource[T]
	inf cache.SharedIndexInformer
}

func newCachedResource[T Object](ctx context.Context, r *kubeResource[T]) *cachedResource[T] {
	lw := cache.NewListWatchFromClient(r.k.client, r.plural, r.k.namespace, fields.Everything())
	inf := cache.NewSharedIndexInformer(lw, r.newObj(), 0, cache.Indexers{})
	go inf.RunWithContext(ctx)
	return &cachedResource[T]{kubeResource: r, inf: inf}
}

// copyOf returns the caller's copy of a cached object.
func (r *cachedResource[T]) copyOf(obj any) (T, bool) {
	t, ok := obj.(T)
	if !ok {
		var zero T
		return zero, false
	}
	return r.typed(t.DeepCopyObject().(T)), true
}

// Get returns the cached object.
func (r *cachedResource[T]) Get(ctx context.Context, name string) (T, error) {
	var zero T
	if err := r.check(ctx, "get", name); err != nil {
		return zero, err
	}
	if pki.ValidDeviceName(name) != nil {
		return zero, r.errorf(name, ErrNotFound)
	}
	obj, exists, err := r.inf.GetIndexer().GetByKey(r.k.namespace + "/" + name)
	if err != nil {
		return zero, fmt.Errorf("get %s %q: %w", r.noun, name, err)
	}
	t, ok := r.copyOf(obj)
	if !exists || !ok {
		return zero, r.errorf(name, ErrNotFound)
	}
	return t, nil
}

// List returns every cached object, sorted by name.
func (r *cachedResource[T]) List(ctx context.Context) ([]T, error) {
	if err := r.check(ctx, "list", ""); err != nil {
		return nil, err
	}
	items := r.inf.GetStore().List()
	out := make([]T, 0, len(items))
	for _, item := range items {
		if t, ok := r.copyOf(item); ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

// Watch sends what the informer sees: an Added event for every cached
// object, then every change, until ctx ends. Events wait for a slow
// watcher (the informer buffers them for this watch alone).
func (r *cachedResource[T]) Watch(ctx context.Context) (<-chan Event[T], error) {
	if err := r.check(ctx, "watch", ""); err != nil {
		return nil, err
	}
	ch := make(chan Event[T], defaultWatchBuffer)
	var mu sync.Mutex
	closed := false
	send := func(typ EventType, obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		t, ok := r.copyOf(obj)
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return
		}
		select {
		case ch <- Event[T]{Type: typ, Object: t}:
		case <-ctx.Done():
		case <-r.k.closeCtx.Done():
		}
	}
	reg, err := r.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { send(Added, obj) },
		UpdateFunc: func(_, obj any) { send(Modified, obj) },
		DeleteFunc: func(obj any) { send(Deleted, obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("watch %ss: %w", r.noun, err)
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-r.k.closeCtx.Done():
		}
		// An error means the informer has stopped: it sends nothing more.
		_ = r.inf.RemoveEventHandler(reg)
		mu.Lock()
		closed = true
		close(ch)
		mu.Unlock()
	}()
	return ch, nil
}

// ListPage lists every cached object and cuts the page opts asks for out
// of them.
func (r *cachedResource[T]) ListPage(ctx context.Context, opts ListOptions) (Page[T], error) {
	return listPage(ctx, r, r.noun, opts)
}
