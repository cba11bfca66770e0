package store

import (
	"context"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// WriteCounter is told of every write a Counted store makes: the object's
// kind ("Device", "Application", "Gateway") and the operation ("create",
// "update", "status", "delete"). It is called after the write, successful
// or not, and must be safe for concurrent use.
type WriteCounter func(kind, op string)

// Counted returns s with every resource write reported to count, so that
// the cost of an event in store writes can be measured the same way on
// every backend. Reads and modules pass through untouched.
func Counted(s Store, count WriteCounter) Store {
	return &countedStore{
		Store:        s,
		devices:      &countedResource[*v1alpha1.Device]{Resource: s.Devices(), kind: v1alpha1.KindDevice, count: count},
		applications: &countedResource[*v1alpha1.Application]{Resource: s.Applications(), kind: v1alpha1.KindApplication, count: count},
		gateways:     &countedResource[*v1alpha1.Gateway]{Resource: s.Gateways(), kind: v1alpha1.KindGateway, count: count},
	}
}

type countedStore struct {
	Store
	devices      Resource[*v1alpha1.Device]
	applications Resource[*v1alpha1.Application]
	gateways     Resource[*v1alpha1.Gateway]
}

func (s *countedStore) Devices() Resource[*v1alpha1.Device]           { return s.devices }
func (s *countedStore) Applications() Resource[*v1alpha1.Application] { return s.applications }
func (s *countedStore) Gateways() Resource[*v1alpha1.Gateway]         { return s.gateways }

type countedResource[T Object] struct {
	Resource[T]
	kind  string
	count WriteCounter
}

func (r *countedResource[T]) Create(ctx context.Context, obj T) (T, error) {
	defer r.count(r.kind, "create")
	return r.Resource.Create(ctx, obj)
}

func (r *countedResource[T]) Update(ctx context.Context, obj T) (T, error) {
	defer r.count(r.kind, "update")
	return r.Resource.Update(ctx, obj)
}

func (r *countedResource[T]) UpdateStatus(ctx context.Context, obj T) (T, error) {
	defer r.count(r.kind, "status")
	return r.Resource.UpdateStatus(ctx, obj)
}

func (r *countedResource[T]) Delete(ctx context.Context, name string) error {
	defer r.count(r.kind, "delete")
	return r.Resource.Delete(ctx, name)
}
