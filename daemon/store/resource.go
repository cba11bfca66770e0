package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/gateway/pki"
)

// resource is one kind of object in an Embedded store: a bbolt bucket
// mapping each name to the object's JSON. It is generic over the kind so
// that Devices, Applications and Gateways share one implementation; spec,
// status and metadata are swapped as top-level JSON fields, which every
// v1alpha1 root type has.
type resource[T Object] struct {
	e      *Embedded
	bucket []byte
	kind   string // TypeMeta kind, e.g. "Device"
	noun   string // the kind in errors, e.g. "device"
	newObj func() T

	watchers map[*watcher[T]]struct{} // guarded by e.mu

	// objs holds every stored object decoded, and names their names in
	// order: the read path. Get, List and a watch's snapshot copy from
	// them instead of decoding JSON from the database. Commits update
	// them while holding e.mu and omu; readers hold omu.
	omu   sync.RWMutex
	objs  map[string]T
	names []string
	// quarantined are the records load could not serve; guarded by omu.
	quarantined []Quarantined
}

var (
	_ Resource[*v1alpha1.Device]      = (*resource[*v1alpha1.Device])(nil)
	_ Resource[*v1alpha1.Application] = (*resource[*v1alpha1.Application])(nil)
	_ Resource[*v1alpha1.Gateway]     = (*resource[*v1alpha1.Gateway])(nil)
)

func newResource[T Object](e *Embedded, bucket, kind string, newObj func() T) *resource[T] {
	return &resource[T]{
		e:        e,
		bucket:   []byte(bucket),
		kind:     kind,
		noun:     strings.ToLower(kind),
		newObj:   newObj,
		watchers: make(map[*watcher[T]]struct{}),
		objs:     make(map[string]T),
	}
}

// load decodes every stored object into the read path; OpenEmbedded calls
// it once. A record that does not decode, or whose name is not its key,
// is quarantined: left in the database, kept out of the read path, and
// reported (Embedded.Quarantined), so that the rest of the fleet is
// served and the record can be deleted through the API.
func (r *resource[T]) load(tx *bolt.Tx) error {
	return tx.Bucket(r.bucket).ForEach(func(k, v []byte) error {
		obj, err := r.decode(v)
		if err == nil && obj.GetName() != string(k) {
			err = fmt.Errorf("the record's name %q is not its key", obj.GetName())
		}
		if err != nil {
			r.quarantined = append(r.quarantined, Quarantined{Kind: r.kind, Name: string(k), Reason: err.Error()})
			return nil
		}
		r.objs[obj.GetName()] = obj
		r.names = append(r.names, obj.GetName())
		return nil
	})
}

// quarantine returns the records load could not serve.
func (r *resource[T]) quarantine() []Quarantined {
	r.omu.RLock()
	defer r.omu.RUnlock()
	return slices.Clone(r.quarantined)
}

// unquarantine forgets a quarantined record once it is deleted.
func (r *resource[T]) unquarantine(name string) {
	r.omu.Lock()
	defer r.omu.Unlock()
	r.quarantined = slices.DeleteFunc(r.quarantined, func(q Quarantined) bool { return q.Name == name })
}

// cacheLocked puts a committed change into the read path. The caller
// holds e.mu, and hands obj over.
func (r *resource[T]) cacheLocked(typ EventType, obj T) {
	r.omu.Lock()
	defer r.omu.Unlock()
	name := obj.GetName()
	i, found := slices.BinarySearch(r.names, name)
	switch {
	case typ == Deleted:
		delete(r.objs, name)
		if found {
			r.names = slices.Delete(r.names, i, i+1)
		}
	default:
		r.objs[name] = obj
		if !found {
			r.names = slices.Insert(r.names, i, name)
		}
	}
}

// copies returns a copy of every object, sorted by name.
func (r *resource[T]) copies() []T {
	r.omu.RLock()
	defer r.omu.RUnlock()
	out := make([]T, len(r.names))
	for i, n := range r.names {
		out[i] = r.objs[n].DeepCopyObject().(T)
	}
	return out
}

// Get returns the named object.
func (r *resource[T]) Get(ctx context.Context, name string) (T, error) {
	var obj T
	if err := ctx.Err(); err != nil {
		return obj, fmt.Errorf("get %s %q: %w", r.noun, name, err)
	}
	r.omu.RLock()
	stored, ok := r.objs[name]
	r.omu.RUnlock()
	if !ok {
		return obj, r.errorf(name, ErrNotFound)
	}
	return stored.DeepCopyObject().(T), nil
}

// List returns every object of the kind, sorted by name.
func (r *resource[T]) List(ctx context.Context) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %ss: %w", r.noun, err)
	}
	return r.copies(), nil
}

// ListPage returns one page of the objects opts selects: it copies only
// the objects on the page.
func (r *resource[T]) ListPage(ctx context.Context, opts ListOptions) (Page[T], error) {
	if err := ctx.Err(); err != nil {
		return Page[T]{}, fmt.Errorf("list %ss: %w", r.noun, err)
	}
	r.omu.RLock()
	p, err := cutPage(len(r.names), func(i int) T { return r.objs[r.names[i]] }, opts)
	for i, o := range p.Items {
		p.Items[i] = o.DeepCopyObject().(T)
	}
	r.omu.RUnlock()
	if err != nil {
		return Page[T]{}, fmt.Errorf("list %ss: %w", r.noun, err)
	}
	return p, nil
}

// Create stores obj under its name as a new object. Server-set metadata
// (uid, resourceVersion, generation 1, creationTimestamp) and TypeMeta are
// filled in; the incoming status is dropped.
func (r *resource[T]) Create(ctx context.Context, obj T) (T, error) {
	var zero T
	name := obj.GetName()
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("create %s %q: %w", r.noun, name, err)
	}
	if err := pki.ValidDeviceName(name); err != nil {
		return zero, fmt.Errorf("%s %q: %w: %w", r.noun, name, ErrInvalidName, err)
	}
	// Go through JSON so that nothing is shared with the caller's object.
	fields, err := toFields(obj)
	if err != nil {
		return zero, fmt.Errorf("create %s %q: %w", r.noun, name, err)
	}
	delete(fields, "status")
	fresh, err := r.fromFields(fields)
	if err != nil {
		return zero, fmt.Errorf("create %s %q: %w", r.noun, name, err)
	}
	fresh.SetUID(newUID())
	fresh.SetGeneration(1)
	fresh.SetCreationTimestamp(metav1.Now())
	fresh.SetDeletionTimestamp(nil)
	fresh.SetDeletionGracePeriodSeconds(nil)
	fresh.GetObjectKind().SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(r.kind))

	return r.commit("create", name, func(b *bolt.Bucket, rev uint64) (EventType, []byte, error) {
		if b.Get([]byte(name)) != nil {
			return "", nil, r.errorf(name, ErrAlreadyExists)
		}
		fresh.SetResourceVersion(strconv.FormatUint(rev, 10))
		data, err := r.put(b, fresh)
		return Added, data, err
	})
}

// Update replaces labels, annotations and spec; see Resource.Update.
func (r *resource[T]) Update(ctx context.Context, obj T) (T, error) {
	return r.replace(ctx, "update", "spec", obj)
}

// UpdateStatus replaces the status; see Resource.UpdateStatus.
func (r *resource[T]) UpdateStatus(ctx context.Context, obj T) (T, error) {
	return r.replace(ctx, "update status", "status", obj)
}

// replace writes obj's part ("spec" or "status") over the stored
// object, when obj's resourceVersion is the stored one. For "spec",
// labels and annotations are taken from obj too, and the generation goes
// up when the spec's JSON differs from the stored one. The parts are
// swapped as struct fields (every v1alpha1 root type has Spec and
// Status), so a status write costs one decode and one encode.
func (r *resource[T]) replace(ctx context.Context, op, part string, obj T) (T, error) {
	var zero T
	name := obj.GetName()
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("%s %s %q: %w", op, r.noun, name, err)
	}
	in := obj.DeepCopyObject().(T) // nothing of the caller's is kept
	field := "Status"
	if part == "spec" {
		field = "Spec"
	}
	inPart := partOf(in, field)
	var inJSON []byte
	if part == "spec" {
		var err error
		if inJSON, err = json.Marshal(inPart.Interface()); err != nil {
			return zero, fmt.Errorf("%s %s %q: encode: %w", op, r.noun, name, err)
		}
	}
	inRV := in.GetResourceVersion()

	return r.commit(op, name, func(b *bolt.Bucket, rev uint64) (EventType, []byte, error) {
		raw := b.Get([]byte(name))
		if raw == nil {
			return "", nil, r.errorf(name, ErrNotFound)
		}
		stored, err := r.decode(raw)
		if err != nil {
			return "", nil, err
		}
		if inRV == "" || inRV != stored.GetResourceVersion() {
			return "", nil, r.errorf(name, ErrConflict)
		}
		if part == "spec" {
			old, err := json.Marshal(partOf(stored, field).Interface())
			if err != nil {
				return "", nil, fmt.Errorf("encode: %w", err)
			}
			if !bytes.Equal(old, inJSON) {
				stored.SetGeneration(stored.GetGeneration() + 1)
			}
			stored.SetLabels(in.GetLabels())
			stored.SetAnnotations(in.GetAnnotations())
		}
		// in is this commit's own copy, but the write may run again:
		// each run takes a fresh copy of the part.
		partOf(stored, field).Set(partOf(in.DeepCopyObject().(T), field))
		stored.SetResourceVersion(strconv.FormatUint(rev, 10))
		data, err := r.put(b, stored)
		return Modified, data, err
	})
}

// partOf is obj's Spec or Status field, settable.
func partOf(obj any, field string) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName(field)
}

// put stores obj's JSON under its name and returns it.
func (r *resource[T]) put(b *bolt.Bucket, obj T) ([]byte, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return data, b.Put([]byte(obj.GetName()), data)
}

// Delete removes the named object. Watchers get its last stored state
// with the deletion's revision as resourceVersion.
func (r *resource[T]) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s %q: %w", r.noun, name, err)
	}
	_, err := r.commit("delete", name, func(b *bolt.Bucket, rev uint64) (EventType, []byte, error) {
		raw := b.Get([]byte(name))
		if raw == nil {
			return "", nil, r.errorf(name, ErrNotFound)
		}
		last, err := r.decode(raw)
		if err != nil || last.GetName() != name {
			// A quarantined record: it goes, and its event names it.
			last = r.newObj()
			last.SetName(name)
		}
		last.SetResourceVersion(strconv.FormatUint(rev, 10))
		data, err := json.Marshal(last)
		if err != nil {
			return "", nil, fmt.Errorf("encode: %w", err)
		}
		return Deleted, data, b.Delete([]byte(name))
	})
	if err == nil {
		r.unquarantine(name)
	}
	return err
}

// commit runs write in a bbolt transaction with the next revision and,
// once it has committed, publishes the event write returns (its type and
// the object's new JSON) and returns the object. Concurrent commits share
// transactions (groupCommit) and are published in revision order. write
// returns errors that wrap a sentinel already named for the object (see
// errorf); other errors are wrapped here with op, kind and name. write may
// run more than once and must derive everything from its transaction.
func (r *resource[T]) commit(op, name string, write func(b *bolt.Bucket, rev uint64) (EventType, []byte, error)) (T, error) {
	var zero T
	e := r.e
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return zero, fmt.Errorf("%s %s %q: %w", op, r.noun, name, errClosed)
	}
	var (
		rev  uint64
		typ  EventType
		data []byte
	)
	err := e.commits.update(func(tx *bolt.Tx) error {
		last, err := readRevision(tx)
		if err != nil {
			return err
		}
		rev = last + 1
		typ, data, err = write(tx.Bucket(r.bucket), rev)
		if err != nil {
			return err
		}
		return writeRevision(tx, rev)
	})
	if err != nil {
		if errors.Is(err, bolt.ErrDatabaseNotOpen) {
			err = errClosed
		}
		return zero, r.wrap(op, name, err)
	}
	// What is returned, published and read is what was stored, as JSON
	// has it (times to the second).
	obj, decodeErr := r.decode(data)
	e.mu.Lock()
	defer e.mu.Unlock()
	// Publish in revision order: wait for the commits before this one.
	for e.rev != rev-1 {
		e.turn.Wait()
	}
	e.rev = rev
	e.turn.Broadcast()
	if decodeErr != nil {
		// Unreachable: data was just encoded from a T.
		return zero, fmt.Errorf("%s %s %q: %w", op, r.noun, name, decodeErr)
	}
	// The cache first: a watcher that reads the object back on the event
	// must find it as the event has it (a deleted object gone).
	r.cacheLocked(typ, obj.DeepCopyObject().(T))
	r.publishLocked(typ, obj)
	return obj, nil
}

// errorf names the object in a sentinel error: `device "dev-1": not found`.
func (r *resource[T]) errorf(name string, sentinel error) error {
	return &objectError{noun: r.noun, name: name, err: sentinel}
}

// wrap adds the operation, kind and name to err, unless err already names
// the object (it came from errorf).
func (r *resource[T]) wrap(op, name string, err error) error {
	var named *objectError
	if errors.As(err, &named) {
		return err
	}
	return fmt.Errorf("%s %s %q: %w", op, r.noun, name, err)
}

// objectError is a sentinel error about one named object.
type objectError struct {
	noun, name string
	err        error
}

func (e *objectError) Error() string { return fmt.Sprintf("%s %q: %v", e.noun, e.name, e.err) }
func (e *objectError) Unwrap() error { return e.err }

// decode returns a new T decoded from data.
func (r *resource[T]) decode(data []byte) (T, error) {
	obj := r.newObj()
	if err := json.Unmarshal(data, obj); err != nil {
		var zero T
		return zero, fmt.Errorf("decode %s: %w", r.noun, err)
	}
	return obj, nil
}

// fromFields returns a new T decoded from top-level JSON fields.
func (r *resource[T]) fromFields(fields map[string]json.RawMessage) (T, error) {
	data, err := json.Marshal(fields)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("encode %s: %w", r.noun, err)
	}
	return r.decode(data)
}

// toFields returns obj's JSON split into its top-level fields (apiVersion,
// kind, metadata, spec, status).
func toFields(obj any) (map[string]json.RawMessage, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("decode fields: %w", err)
	}
	return fields, nil
}
