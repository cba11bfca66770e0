package apiserver

import (
	"context"
	"errors"
	"net/http"

	"k8s.io/apimachinery/pkg/labels"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
)

// maxUpdateRetries bounds the read-modify-write loops of the action
// routes when other writers keep changing the object.
const maxUpdateRetries = 8

// deleted is the body of a successful DELETE.
type deleted struct {
	Status string `json:"status"`
}

// selectorParam parses the optional ?labelSelector= of a list route.
func selectorParam(r *http.Request) (labels.Selector, error) {
	q := r.URL.Query().Get("labelSelector")
	if q == "" {
		return labels.Everything(), nil
	}
	sel, err := labels.Parse(q)
	if err != nil {
		return nil, badRequestf("labelSelector", "labelSelector %s: %v", quoteShort(q), err)
	}
	return sel, nil
}

// listMatching lists res, keeping the objects sel matches, each stamped
// with its apiVersion and kind.
func listMatching[T store.Object](ctx context.Context, res store.Resource[T], kind string, sel labels.Selector) ([]T, error) {
	all, err := res.List(ctx)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, obj := range all {
		if sel.Matches(labels.Set(obj.GetLabels())) {
			stamp(obj, kind)
			out = append(out, obj)
		}
	}
	return out, nil
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
	for range maxUpdateRetries {
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
