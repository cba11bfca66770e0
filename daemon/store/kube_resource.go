package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/gateway/pki"
)

// kubeResource is one kind of custom resource in a Kubernetes store,
// generic over the kind like the embedded resource.
type kubeResource[T Object] struct {
	k       *Kubernetes
	plural  string // the REST resource, e.g. "devices"
	kind    string // TypeMeta kind, e.g. "Device"
	noun    string // the kind in errors, e.g. "device"
	newObj  func() T
	newList func() runtime.Object
}

var (
	_ Resource[*v1alpha1.Device]      = (*kubeResource[*v1alpha1.Device])(nil)
	_ Resource[*v1alpha1.Application] = (*kubeResource[*v1alpha1.Application])(nil)
	_ Resource[*v1alpha1.Gateway]     = (*kubeResource[*v1alpha1.Gateway])(nil)
)

func newKubeResource[T Object](k *Kubernetes, plural, kind string, newObj func() T, newList func() runtime.Object) *kubeResource[T] {
	return &kubeResource[T]{
		k:       k,
		plural:  plural,
		kind:    kind,
		noun:    strings.ToLower(kind),
		newObj:  newObj,
		newList: newList,
	}
}

// served checks that the API server serves the kind, with a List of at
// most one object.
func (r *kubeResource[T]) served(ctx context.Context) error {
	err := r.k.client.Get().Namespace(r.k.namespace).Resource(r.plural).
		VersionedParams(&metav1.ListOptions{Limit: 1}, r.k.params).
		Do(ctx).Into(r.newList())
	if err != nil {
		return fmt.Errorf("list %s.%s (is the CRD installed?): %w", r.plural, v1alpha1.Group, err)
	}
	return nil
}

// Get returns the named object.
func (r *kubeResource[T]) Get(ctx context.Context, name string) (T, error) {
	var zero T
	if err := r.check(ctx, "get", name); err != nil {
		return zero, err
	}
	if pki.ValidDeviceName(name) != nil {
		// No such object can exist; and a name like "a/b" must not reach
		// the request path.
		return zero, r.errorf(name, ErrNotFound)
	}
	out := r.newObj()
	err := r.k.client.Get().Namespace(r.k.namespace).Resource(r.plural).Name(name).Do(ctx).Into(out)
	if err != nil {
		return zero, r.mapError("get", name, err)
	}
	return r.typed(out), nil
}

// List returns every object of the kind in the namespace, sorted by name.
func (r *kubeResource[T]) List(ctx context.Context) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %ss: %w", r.noun, err)
	}
	if r.k.closed() {
		return nil, fmt.Errorf("list %ss: %w", r.noun, errClosed)
	}
	objs, _, err := r.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %ss: %w", r.noun, err)
	}
	return objs, nil
}

// list returns every object sorted by name and the list's
// resourceVersion, from which a watch sees every later change.
func (r *kubeResource[T]) list(ctx context.Context) ([]T, string, error) {
	list := r.newList()
	if err := r.k.client.Get().Namespace(r.k.namespace).Resource(r.plural).Do(ctx).Into(list); err != nil {
		return nil, "", err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, "", err
	}
	objs := make([]T, 0, len(items))
	for _, item := range items {
		obj, ok := item.(T)
		if !ok {
			return nil, "", fmt.Errorf("list item is a %T", item)
		}
		objs = append(objs, r.typed(obj))
	}
	slices.SortFunc(objs, func(a, b T) int { return strings.Compare(a.GetName(), b.GetName()) })
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return nil, "", err
	}
	return objs, lm.GetResourceVersion(), nil
}

// Create stores obj as a new object in the store's namespace. The server
// sets uid, resourceVersion, generation 1 and creationTimestamp, and
// drops the status (the status subresource is enabled); whatever obj
// carries in those fields is cleared first, since the server refuses a
// create with a resourceVersion.
func (r *kubeResource[T]) Create(ctx context.Context, obj T) (T, error) {
	var zero T
	name := obj.GetName()
	if err := r.check(ctx, "create", name); err != nil {
		return zero, err
	}
	if err := pki.ValidDeviceName(name); err != nil {
		return zero, fmt.Errorf("%s %q: %w: %w", r.noun, name, ErrInvalidName, err)
	}
	in := obj.DeepCopyObject().(T)
	in.SetNamespace(r.k.namespace)
	in.SetResourceVersion("")
	in.SetUID("")
	in.SetGeneration(0)
	in.SetCreationTimestamp(metav1.Time{})
	in.SetDeletionTimestamp(nil)
	in.SetDeletionGracePeriodSeconds(nil)
	in.SetManagedFields(nil)
	out := r.newObj()
	err := r.k.client.Post().Namespace(r.k.namespace).Resource(r.plural).Body(in).Do(ctx).Into(out)
	if err != nil {
		return zero, r.mapError("create", name, err)
	}
	return r.typed(out), nil
}

// Update replaces labels, annotations and spec; see Resource.Update.
func (r *kubeResource[T]) Update(ctx context.Context, obj T) (T, error) {
	return r.put(ctx, "update", "", obj)
}

// UpdateStatus replaces the status through the status subresource; see
// Resource.UpdateStatus.
func (r *kubeResource[T]) UpdateStatus(ctx context.Context, obj T) (T, error) {
	return r.put(ctx, "update status", "status", obj)
}

// put sends obj to the object's endpoint or to its subresource. An empty
// resourceVersion is a conflict here, as in the embedded store: the
// server would otherwise refuse it as invalid (custom resources allow no
// unconditional update).
func (r *kubeResource[T]) put(ctx context.Context, op, subresource string, obj T) (T, error) {
	var zero T
	name := obj.GetName()
	if err := r.check(ctx, op, name); err != nil {
		return zero, err
	}
	if pki.ValidDeviceName(name) != nil {
		return zero, r.errorf(name, ErrNotFound)
	}
	if obj.GetResourceVersion() == "" {
		return zero, r.errorf(name, ErrConflict)
	}
	in := obj.DeepCopyObject().(T)
	in.SetNamespace(r.k.namespace)
	req := r.k.client.Put().Namespace(r.k.namespace).Resource(r.plural).Name(name)
	if subresource != "" {
		req = req.SubResource(subresource)
	}
	out := r.newObj()
	if err := req.Body(in).Do(ctx).Into(out); err != nil {
		return zero, r.mapError(op, name, err)
	}
	return r.typed(out), nil
}

// Delete removes the named object (ErrNotFound when absent).
func (r *kubeResource[T]) Delete(ctx context.Context, name string) error {
	if err := r.check(ctx, "delete", name); err != nil {
		return err
	}
	if pki.ValidDeviceName(name) != nil {
		return r.errorf(name, ErrNotFound)
	}
	err := r.k.client.Delete().Namespace(r.k.namespace).Resource(r.plural).Name(name).Do(ctx).Error()
	if err != nil {
		return r.mapError("delete", name, err)
	}
	return nil
}

// check fails when ctx has ended or the store is closed.
func (r *kubeResource[T]) check(ctx context.Context, op, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s %q: %w", op, r.noun, name, err)
	}
	if r.k.closed() {
		return fmt.Errorf("%s %s %q: %w", op, r.noun, name, errClosed)
	}
	return nil
}

// typed sets obj's TypeMeta, which the client's decoder leaves empty, so
// that objects look the same as the embedded store's.
func (r *kubeResource[T]) typed(obj T) T {
	obj.GetObjectKind().SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(r.kind))
	return obj
}

// errorf names the object in a sentinel error: `device "dev-1": not found`.
func (r *kubeResource[T]) errorf(name string, sentinel error) error {
	return &objectError{noun: r.noun, name: name, err: sentinel}
}

// mapError turns an API server error about the named object into the
// store's errors: NotFound (of this object, not of the resource type),
// AlreadyExists, Conflict and an Invalid name become the sentinels, named
// like the embedded store's; anything else is wrapped with op, kind and
// name.
func (r *kubeResource[T]) mapError(op, name string, err error) error {
	switch {
	case apierrors.IsNotFound(err) && statusNames(err, name):
		return r.errorf(name, ErrNotFound)
	case apierrors.IsAlreadyExists(err):
		return r.errorf(name, ErrAlreadyExists)
	case apierrors.IsConflict(err):
		return r.errorf(name, ErrConflict)
	case apierrors.IsInvalid(err) && invalidName(err):
		return r.errorf(name, fmt.Errorf("%w: %s", ErrInvalidName, statusMessage(err)))
	}
	return fmt.Errorf("%s %s %q: %w", op, r.noun, name, err)
}

// statusNames reports whether err's details name the object: a missing
// object's NotFound does, a NotFound for the whole resource (no CRD) does
// not.
func statusNames(err error, name string) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return false
	}
	d := st.Status().Details
	return d != nil && d.Name == name
}

// invalidName reports whether an Invalid error is about metadata.name.
func invalidName(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Details == nil {
		return false
	}
	for _, c := range st.Status().Details.Causes {
		if c.Field == "metadata.name" {
			return true
		}
	}
	return false
}

// statusMessage is the server's message in err.
func statusMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Message != "" {
		return st.Status().Message
	}
	return err.Error()
}

// ListPage lists every object and cuts the page opts asks for out of
// them.
func (r *kubeResource[T]) ListPage(ctx context.Context, opts ListOptions) (Page[T], error) {
	return listPage(ctx, r, r.noun, opts)
}
