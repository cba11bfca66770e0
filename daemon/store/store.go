// Package store defines where the daemon keeps its resources (Devices,
// Applications, Gateways) and uploaded modules, and implements the default
// embedded store. Controllers and the HTTP API use only the Store
// interface, so a Kubernetes backend can replace the embedded one without
// changing them.
package store

import (
	"context"
	"errors"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// Errors callers branch on (errors.Is). Returned errors wrap them with the
// resource kind and name.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the object's resourceVersion is not the stored one; read
	// it again and retry on the fresh copy.
	ErrConflict = errors.New("conflict: the object was changed since it was read")
	// ErrInvalidName: a name that is not a DNS label.
	ErrInvalidName = errors.New("invalid name")
	// ErrTooLarge: a module over the size limit.
	ErrTooLarge = errors.New("too large")
)

// Object is a resource the store keeps: one of the v1alpha1 root types.
type Object interface {
	metav1.Object
	runtime.Object
}

// Store is the daemon's resource store. Implementations are safe for
// concurrent use.
type Store interface {
	Devices() Resource[*v1alpha1.Device]
	Applications() Resource[*v1alpha1.Application]
	Gateways() Resource[*v1alpha1.Gateway]
	Modules() Modules
	// Backend names the implementation, e.g. "embedded" or "kubernetes".
	Backend() string
	Close() error
}

// Resource stores one kind of object, in the manner of a client-go typed
// client. Objects passed in are not retained; objects returned are the
// caller's.
type Resource[T Object] interface {
	Get(ctx context.Context, name string) (T, error)
	// List returns every object sorted by name.
	List(ctx context.Context) ([]T, error)
	// ListPage returns one page of the objects opts selects, sorted by
	// name (ErrInvalidContinue for a token no page gave).
	ListPage(ctx context.Context, opts ListOptions) (Page[T], error)
	// Create stores a new object: it sets uid, resourceVersion, generation 1
	// and creationTimestamp, and ignores any status (ErrAlreadyExists when
	// the name is taken).
	Create(ctx context.Context, obj T) (T, error)
	// Update replaces metadata (labels, annotations) and spec, keeping the
	// stored status. obj's resourceVersion must be the stored one
	// (ErrConflict). The generation goes up when the spec changed.
	Update(ctx context.Context, obj T) (T, error)
	// UpdateStatus replaces the status only, with the same resourceVersion
	// rule as Update.
	UpdateStatus(ctx context.Context, obj T) (T, error)
	// Delete removes the object (ErrNotFound when absent).
	Delete(ctx context.Context, name string) error
	// Watch first sends an Added event for every stored object, then every
	// change after that snapshot, in commit order, until ctx ends; then it
	// closes the channel. A watcher that falls too far behind has its
	// channel closed early and must watch again.
	Watch(ctx context.Context) (<-chan Event[T], error)
}

// EventType is what happened to an object.
type EventType string

// Event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// Event is one change seen by a watch. For Deleted, Object is the last
// stored state.
type Event[T Object] struct {
	Type   EventType
	Object T
}

// Modules stores uploaded WebAssembly modules, content-addressed by the
// lowercase hex sha256 of their bytes.
type Modules interface {
	// Put stores the bytes read from r, refusing more than max bytes
	// (ErrTooLarge, nothing stored). Storing the same bytes twice is one
	// module.
	Put(ctx context.Context, r io.Reader, max int64) (ModuleInfo, error)
	Get(ctx context.Context, sha256 string) ([]byte, error)
	Stat(ctx context.Context, sha256 string) (ModuleInfo, error)
	List(ctx context.Context) ([]ModuleInfo, error)
	Delete(ctx context.Context, sha256 string) error
}

// ModuleInfo describes one stored module.
type ModuleInfo struct {
	SHA256 string      `json:"sha256"`
	Size   int64       `json:"size"`
	Added  metav1.Time `json:"added"`
}
