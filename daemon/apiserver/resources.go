package apiserver

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
)

// maxUpdateRetries bounds the read-modify-write loops of the action
// routes when other writers keep changing the object.
const maxUpdateRetries = 10

// deleted is the body of a successful DELETE.
type deleted struct {
	Status string `json:"status"`
}

// maxPageLimit is the largest ?limit= a list route takes.
const maxPageLimit = 10000

// listParams parses a list route's ?labelSelector=, ?limit= (0 or absent:
// every object) and ?continue= (the continue of the page before).
func listParams(r *http.Request) (store.ListOptions, error) {
	q := r.URL.Query()
	var opts store.ListOptions
	if sel := q.Get("labelSelector"); sel != "" {
		var err error
		if opts.Selector, err = labels.Parse(sel); err != nil {
			return opts, badRequestf("labelSelector", "labelSelector %s: %v", quoteShort(sel), err)
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 || n > maxPageLimit {
			return opts, badRequestf("limit", "limit %s is not a number from 0 to %d", quoteShort(l), maxPageLimit)
		}
		opts.Limit = n
	}
	opts.Continue = q.Get("continue")
	return opts, nil
}

// listPage lists the page of res the request asks for, each object
// stamped with its apiVersion and kind.
func listPage[T store.Object](r *http.Request, res store.Resource[T], kind string) (store.Page[T], error) {
	opts, err := listParams(r)
	if err != nil {
		return store.Page[T]{}, err
	}
	p, err := res.ListPage(r.Context(), opts)
	if errors.Is(err, store.ErrInvalidContinue) {
		return p, badRequestf("continue", "continue %s was not given by a list: start the list again without it", quoteShort(opts.Continue))
	}
	for _, obj := range p.Items {
		stamp(obj, kind)
	}
	return p, err
}

// stamp sets obj's apiVersion and kind, which the wire always carries.
func stamp[T store.Object](obj T, kind string) T {
	obj.GetObjectKind().SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
	return obj
}

// modify applies change to a fresh copy of the named object and updates
// it, starting again from a fresh copy when another writer got there
// first. change reports whether it changed anything; when it did not, the
// object is returned without a write. An *api.Error from change is
// returned as it is.
func modify[T store.Object](ctx context.Context, res store.Resource[T], kind, noun, name string, change func(T) (bool, error)) (T, error) {
	var zero T
	for attempt := range maxUpdateRetries {
		if attempt > 0 {
			// Writers that met are spread apart, so that they do not meet
			// again at once (a read may not see a write that has committed
			// but is not published yet).
			// The spread doubles with each attempt (up to 128 ms): a
			// commit synced to a slow disk keeps others waiting long.
			time.Sleep(rand.N(time.Millisecond << min(attempt, 7)))
		}
		obj, err := res.Get(ctx, name)
		if err != nil {
			return zero, storeError(noun, name, err)
		}
		changed, err := change(obj)
		if err != nil {
			return zero, err
		}
		if !changed {
			return stamp(obj, kind), nil
		}
		out, err := res.Update(ctx, obj)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return zero, storeError(noun, name, err)
		}
		return stamp(out, kind), nil
	}
	return zero, conflictf("%s %q kept changing while it was being updated; retry", noun, name)
}
