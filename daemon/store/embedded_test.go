package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// openTest opens an embedded store in a fresh directory (one level below
// t.TempDir, so that OpenEmbedded creates it) and closes it at the end.
func openTest(tb testing.TB) *Embedded {
	tb.Helper()
	s, err := OpenEmbedded(filepath.Join(tb.TempDir(), "store"))
	if err != nil {
		tb.Fatalf("OpenEmbedded: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// kindCase is what the generic tests need to know about one kind: how to
// make an object and read or change one spec and one status field.
type kindCase[T Object] struct {
	kind      string
	noun      string
	res       func(*Embedded) Resource[T]
	newObj    func(name string) T
	setSpec   func(T, string)
	spec      func(T) string
	setStatus func(T, int32)
	status    func(T) int32
}

var deviceCase = kindCase[*v1alpha1.Device]{
	kind: v1alpha1.KindDevice,
	noun: "device",
	res:  func(s *Embedded) Resource[*v1alpha1.Device] { return s.Devices() },
	newObj: func(name string) *v1alpha1.Device {
		d := &v1alpha1.Device{}
		d.Name = name
		d.Spec.Board = "nrf52840"
		return d
	},
	setSpec:   func(d *v1alpha1.Device, v string) { d.Spec.Board = v },
	spec:      func(d *v1alpha1.Device) string { return d.Spec.Board },
	setStatus: func(d *v1alpha1.Device, v int32) { d.Status.AppCount = v },
	status:    func(d *v1alpha1.Device) int32 { return d.Status.AppCount },
}

var applicationCase = kindCase[*v1alpha1.Application]{
	kind: v1alpha1.KindApplication,
	noun: "application",
	res:  func(s *Embedded) Resource[*v1alpha1.Application] { return s.Applications() },
	newObj: func(name string) *v1alpha1.Application {
		a := &v1alpha1.Application{}
		a.Name = name
		a.Spec.Version = "1.0.0"
		a.Spec.Module.SHA256 = strings.Repeat("ab", 32)
		return a
	},
	setSpec:   func(a *v1alpha1.Application, v string) { a.Spec.Version = v },
	spec:      func(a *v1alpha1.Application) string { return a.Spec.Version },
	setStatus: func(a *v1alpha1.Application, v int32) { a.Status.Targeted = v },
	status:    func(a *v1alpha1.Application) int32 { return a.Status.Targeted },
}

var gatewayCase = kindCase[*v1alpha1.Gateway]{
	kind: v1alpha1.KindGateway,
	noun: "gateway",
	res:  func(s *Embedded) Resource[*v1alpha1.Gateway] { return s.Gateways() },
	newObj: func(name string) *v1alpha1.Gateway {
		g := &v1alpha1.Gateway{}
		g.Name = name
		g.Spec.Endpoint = "127.0.0.1:4423"
		return g
	},
	setSpec:   func(g *v1alpha1.Gateway, v string) { g.Spec.Endpoint = v },
	spec:      func(g *v1alpha1.Gateway) string { return g.Spec.Endpoint },
	setStatus: func(g *v1alpha1.Gateway, v int32) { g.Status.ConnectedDevices = v },
	status:    func(g *v1alpha1.Gateway) int32 { return g.Status.ConnectedDevices },
}

func TestResourceLifecycle(t *testing.T) {
	t.Run("device", func(t *testing.T) { testLifecycle(t, deviceCase) })
	t.Run("application", func(t *testing.T) { testLifecycle(t, applicationCase) })
	t.Run("gateway", func(t *testing.T) { testLifecycle(t, gatewayCase) })
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// rv parses a resourceVersion.
func rv(tb testing.TB, obj Object) uint64 {
	tb.Helper()
	n, err := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	if err != nil {
		tb.Fatalf("%s: resourceVersion %q: %v", obj.GetName(), obj.GetResourceVersion(), err)
	}
	return n
}

func testLifecycle[T Object](t *testing.T, c kindCase[T]) {
	ctx := t.Context()
	s := openTest(t)
	res := c.res(s)
	var lastRV uint64
	// bump checks that obj took the next store revision.
	bump := func(op string, obj T) {
		t.Helper()
		if got := rv(t, obj); got != lastRV+1 {
			t.Fatalf("%s: resourceVersion %d, want %d", op, got, lastRV+1)
		}
		lastRV++
	}

	// Create fills in server-set fields and drops the status.
	in := c.newObj("a-1")
	c.setSpec(in, "s1")
	c.setStatus(in, 7)
	in.SetLabels(map[string]string{"k": "v"})
	in.SetResourceVersion("999")
	in.SetUID("bogus")
	in.SetGeneration(5)
	created, err := res.Create(ctx, in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	bump("Create", created)
	if uid := string(created.GetUID()); !uuidPattern.MatchString(uid) {
		t.Errorf("Create: uid %q, want a random UUID", uid)
	}
	if g := created.GetGeneration(); g != 1 {
		t.Errorf("Create: generation %d, want 1", g)
	}
	if ts := created.GetCreationTimestamp(); ts.IsZero() {
		t.Error("Create: creationTimestamp not set")
	}
	gvk := created.GetObjectKind().GroupVersionKind()
	if gvk.GroupVersion().String() != "wasmbed.io/v1alpha1" || gvk.Kind != c.kind {
		t.Errorf("Create: TypeMeta %v, want wasmbed.io/v1alpha1 %s", gvk, c.kind)
	}
	if got := c.status(created); got != 0 {
		t.Errorf("Create: status field = %d, want 0 (status ignored)", got)
	}
	if got := c.spec(created); got != "s1" {
		t.Errorf("Create: spec field = %q, want s1", got)
	}
	if in.GetResourceVersion() != "999" || c.status(in) != 7 {
		t.Error("Create changed the caller's object")
	}

	// Get returns the same object, as a copy.
	got, err := res.Get(ctx, "a-1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got, created) {
		t.Errorf("Get = %+v, want %+v", got, created)
	}
	got.SetLabels(map[string]string{"changed": "yes"})
	if again, _ := res.Get(ctx, "a-1"); !reflect.DeepEqual(again.GetLabels(), map[string]string{"k": "v"}) {
		t.Errorf("changing a returned object changed the store: labels %v", again.GetLabels())
	}

	// List is sorted by name.
	for _, name := range []string{"c-3", "b-2"} {
		obj, err := res.Create(ctx, c.newObj(name))
		if err != nil {
			t.Fatalf("Create(%s): %v", name, err)
		}
		bump("Create", obj)
	}
	list, err := res.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if names := objectNames(list); !slices.Equal(names, []string{"a-1", "b-2", "c-3"}) {
		t.Errorf("List names = %v, want [a-1 b-2 c-3]", names)
	}

	// Update replaces spec and labels, ignores status, bumps generation.
	cur := created
	c.setSpec(cur, "s2")
	c.setStatus(cur, 99)
	cur.SetLabels(map[string]string{"k": "w"})
	updated, err := res.Update(ctx, cur)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	bump("Update", updated)
	createdAt, updatedAt := created.GetCreationTimestamp(), updated.GetCreationTimestamp()
	if c.spec(updated) != "s2" || c.status(updated) != 0 || updated.GetGeneration() != 2 ||
		updated.GetLabels()["k"] != "w" || updated.GetUID() != created.GetUID() || !updatedAt.Equal(&createdAt) {
		t.Errorf("Update = spec %q status %d generation %d labels %v uid %s, want s2 0 2 map[k:w] %s",
			c.spec(updated), c.status(updated), updated.GetGeneration(), updated.GetLabels(), updated.GetUID(), created.GetUID())
	}

	// A metadata-only update keeps the generation.
	updated.SetAnnotations(map[string]string{"note": "x"})
	updated, err = res.Update(ctx, updated)
	if err != nil {
		t.Fatalf("Update annotations: %v", err)
	}
	bump("Update annotations", updated)
	if updated.GetGeneration() != 2 || updated.GetAnnotations()["note"] != "x" {
		t.Errorf("Update annotations: generation %d annotations %v, want 2 map[note:x]", updated.GetGeneration(), updated.GetAnnotations())
	}

	// UpdateStatus replaces the status only.
	stale := updated.DeepCopyObject().(T)
	c.setStatus(updated, 5)
	c.setSpec(updated, "ignored")
	updated.SetLabels(nil)
	withStatus, err := res.UpdateStatus(ctx, updated)
	if err != nil {
		t.Fatalf("UpdateStatus: %v", err)
	}
	bump("UpdateStatus", withStatus)
	if c.status(withStatus) != 5 || c.spec(withStatus) != "s2" || withStatus.GetGeneration() != 2 || withStatus.GetLabels()["k"] != "w" {
		t.Errorf("UpdateStatus = status %d spec %q generation %d labels %v, want 5 s2 2 map[k:w]",
			c.status(withStatus), c.spec(withStatus), withStatus.GetGeneration(), withStatus.GetLabels())
	}

	// Update keeps the stored status.
	c.setStatus(withStatus, 0)
	c.setSpec(withStatus, "s3")
	kept, err := res.Update(ctx, withStatus)
	if err != nil {
		t.Fatalf("Update after UpdateStatus: %v", err)
	}
	bump("Update after UpdateStatus", kept)
	if c.status(kept) != 5 || kept.GetGeneration() != 3 {
		t.Errorf("Update after UpdateStatus = status %d generation %d, want 5 3", c.status(kept), kept.GetGeneration())
	}

	// A stale or missing resourceVersion is a conflict and changes nothing.
	noRV := kept.DeepCopyObject().(T)
	noRV.SetResourceVersion("")
	for _, tc := range []struct {
		name string
		obj  T
	}{
		{"stale", stale},
		{"empty", noRV},
	} {
		t.Run("conflict/"+tc.name, func(t *testing.T) {
			c.setSpec(tc.obj, "never")
			c.setStatus(tc.obj, 42)
			if _, err := res.Update(ctx, tc.obj); !errors.Is(err, ErrConflict) {
				t.Errorf("Update(%s resourceVersion) error = %v, want ErrConflict", tc.name, err)
			}
			if _, err := res.UpdateStatus(ctx, tc.obj); !errors.Is(err, ErrConflict) {
				t.Errorf("UpdateStatus(%s resourceVersion) error = %v, want ErrConflict", tc.name, err)
			}
			now, err := res.Get(ctx, "a-1")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !reflect.DeepEqual(now, kept) {
				t.Errorf("after a conflict Get = %+v, want %+v", now, kept)
			}
		})
	}
	wantConflict := fmt.Sprintf("%s %q: %v", c.noun, "a-1", ErrConflict)
	if _, err := res.Update(ctx, stale); err == nil || err.Error() != wantConflict {
		t.Errorf("Update(stale) error = %v, want %q", err, wantConflict)
	}

	// Errors name the kind and the object.
	if _, err := res.Create(ctx, c.newObj("a-1")); !errors.Is(err, ErrAlreadyExists) || err.Error() != c.noun+` "a-1": already exists` {
		t.Errorf("Create(duplicate) error = %v, want %s %q: already exists", err, c.noun, "a-1")
	}
	if _, err := res.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) || err.Error() != c.noun+` "nope": not found` {
		t.Errorf("Get(nope) error = %v, want %s %q: not found", err, c.noun, "nope")
	}
	missing := c.newObj("nope")
	missing.SetResourceVersion("1")
	if _, err := res.Update(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update(nope) error = %v, want ErrNotFound", err)
	}
	if _, err := res.UpdateStatus(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateStatus(nope) error = %v, want ErrNotFound", err)
	}

	// Delete removes, once.
	if err := res.Delete(ctx, "a-1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	lastRV++
	if _, err := res.Get(ctx, "a-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete error = %v, want ErrNotFound", err)
	}
	if err := res.Delete(ctx, "a-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete error = %v, want ErrNotFound", err)
	}
	list, err = res.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if names := objectNames(list); !slices.Equal(names, []string{"b-2", "c-3"}) {
		t.Errorf("List after Delete = %v, want [b-2 c-3]", names)
	}
	// Failed writes took no revision.
	obj, err := res.Create(ctx, c.newObj("d-4"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	bump("Create after Delete", obj)
}

func objectNames[T Object](objs []T) []string {
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.GetName()
	}
	return names
}

func TestRevisionIsStoreWide(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	d, err := s.Devices().Create(ctx, deviceCase.newObj("d"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.Gateways().Create(ctx, gatewayCase.newObj("g"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Applications().Create(ctx, applicationCase.newObj("a"))
	if err != nil {
		t.Fatal(err)
	}
	if got := []uint64{rv(t, d), rv(t, g), rv(t, a)}; !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("resourceVersions across kinds = %v, want [1 2 3]", got)
	}
}

func TestCreateInvalidName(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	for _, name := range []string{"", "Dev-1", "dev_1", "-dev", "dev-", "../x", "a/b", "dév", strings.Repeat("a", 64)} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			_, err := s.Devices().Create(ctx, deviceCase.newObj(name))
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("Devices().Create(%q) error = %v, want ErrInvalidName", name, err)
			}
			if want := fmt.Sprintf("device %q: invalid name: ", name); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Devices().Create(%q) error = %q, want prefix %q", name, err, want)
			}
			if _, err := s.Gateways().Create(ctx, gatewayCase.newObj(name)); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Gateways().Create(%q) error = %v, want ErrInvalidName", name, err)
			}
		})
	}
	if list, err := s.Devices().List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List after invalid creates = %v, %v, want empty", objectNames(list), err)
	}
	if _, err := s.Devices().Create(ctx, deviceCase.newObj(strings.Repeat("a", 63))); err != nil {
		t.Errorf("Create(63-character name): %v", err)
	}
}

// next returns the next event, failing if the channel is closed or stays
// empty for long (a hang guard, not a timing assertion).
func next[T Object](tb testing.TB, ch <-chan Event[T]) Event[T] {
	tb.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			tb.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		tb.Fatal("no watch event after 10s")
	}
	panic("unreachable")
}

// drainClosed reads ch until it is closed and returns the events read.
func drainClosed[T Object](tb testing.TB, ch <-chan Event[T]) []Event[T] {
	tb.Helper()
	var evs []Event[T]
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		case <-timeout:
			tb.Fatalf("watch channel still open after 10s (%d events read)", len(evs))
		}
	}
}

func watcherCount[T Object](s *Embedded, r *resource[T]) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(r.watchers)
}

func TestWatchOrder(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	devs := s.Devices()
	for _, name := range []string{"x-2", "x-1"} {
		if _, err := devs.Create(ctx, deviceCase.newObj(name)); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := devs.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	other, err := devs.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	gws, err := s.Gateways().Watch(ctx)
	if err != nil {
		t.Fatalf("Watch gateways: %v", err)
	}

	for _, want := range []string{"x-1", "x-2"} {
		ev := next(t, ch)
		if ev.Type != Added || ev.Object.Name != want {
			t.Errorf("snapshot event = %s %s, want ADDED %s", ev.Type, ev.Object.Name, want)
		}
		next(t, other)
	}

	type step struct {
		typ  EventType
		name string
		rv   uint64 // 0: check only that it increases
	}
	var want []step
	x3, err := devs.Create(ctx, deviceCase.newObj("x-3"))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, step{Added, "x-3", rv(t, x3)})
	x1, err := devs.Get(ctx, "x-1")
	if err != nil {
		t.Fatal(err)
	}
	x1.Spec.Board = "stm32"
	if x1, err = devs.Update(ctx, x1); err != nil {
		t.Fatal(err)
	}
	want = append(want, step{Modified, "x-1", rv(t, x1)})
	x1.Status.Phase = v1alpha1.DeviceOnline
	if x1, err = devs.UpdateStatus(ctx, x1); err != nil {
		t.Fatal(err)
	}
	want = append(want, step{Modified, "x-1", rv(t, x1)})
	if err := devs.Delete(ctx, "x-2"); err != nil {
		t.Fatal(err)
	}
	want = append(want, step{Deleted, "x-2", rv(t, x1) + 1})
	if _, err := s.Gateways().Create(ctx, gatewayCase.newObj("g-1")); err != nil {
		t.Fatal(err)
	}

	for i, w := range want {
		ev := next(t, ch)
		if ev.Type != w.typ || ev.Object.Name != w.name || rv(t, ev.Object) != w.rv {
			t.Errorf("event %d = %s %s rv %s, want %s %s rv %d", i, ev.Type, ev.Object.Name, ev.Object.ResourceVersion, w.typ, w.name, w.rv)
		}
		if ev.Object == x1 || ev.Object == x3 {
			t.Errorf("event %d shares its object with the writer", i)
		}
		if o := next(t, other); o.Object == ev.Object {
			t.Errorf("event %d: two watchers share one object", i)
		}
	}
	// Events are queued before the write returns, and the last write was a
	// gateway: the device watch has nothing more.
	select {
	case extra := <-ch:
		t.Errorf("device watch got %s %s, want nothing more", extra.Type, extra.Object.Name)
	default:
	}
	if ev := next(t, gws); ev.Type != Added || ev.Object.Name != "g-1" {
		t.Errorf("gateway watch first event = %s %s, want ADDED g-1", ev.Type, ev.Object.Name)
	}
}

func TestWatchSnapshotLargerThanBuffer(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	n := s.watchBuffer + 100
	fillDevices(t, s, n)

	ch, err := s.Devices().Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// A write before the snapshot is read must not close the watch.
	if _, err := s.Devices().Create(ctx, deviceCase.newObj("zz-last")); err != nil {
		t.Fatal(err)
	}
	prev := ""
	for i := range n {
		ev := next(t, ch)
		if ev.Type != Added || ev.Object.Name <= prev {
			t.Fatalf("snapshot event %d = %s %s, want ADDED after %q", i, ev.Type, ev.Object.Name, prev)
		}
		prev = ev.Object.Name
	}
	if ev := next(t, ch); ev.Type != Added || ev.Object.Name != "zz-last" {
		t.Errorf("event after snapshot = %s %s, want ADDED zz-last", ev.Type, ev.Object.Name)
	}
}

// fillDevices creates n devices dev-00000, dev-00001, ... without syncing
// each commit to disk, to keep large setups quick.
func fillDevices(tb testing.TB, s *Embedded, n int) {
	tb.Helper()
	s.db.NoSync = true
	defer func() { s.db.NoSync = false }()
	for i := range n {
		if _, err := s.Devices().Create(tb.Context(), deviceCase.newObj(fmt.Sprintf("dev-%05d", i))); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.db.Sync(); err != nil {
		tb.Fatal(err)
	}
}

func TestWatchSlowWatcherIsClosed(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	s.watchBuffer = 4
	if _, err := s.Devices().Create(ctx, deviceCase.newObj("first")); err != nil {
		t.Fatal(err)
	}
	slow, err := s.Devices().Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// Nobody reads slow: writers must go on regardless.
	for i := range 10 {
		if _, err := s.Devices().Create(ctx, deviceCase.newObj(fmt.Sprintf("d-%d", i))); err != nil {
			t.Fatalf("Create %d with a stalled watcher: %v", i, err)
		}
	}
	evs := drainClosed(t, slow)
	// The snapshot (1) and the buffer (4) were delivered, then the channel closed.
	if len(evs) != 1+s.watchBuffer {
		t.Errorf("slow watcher got %d events before closing, want %d", len(evs), 1+s.watchBuffer)
	}
	for i, ev := range evs {
		want := "first"
		if i > 0 {
			want = fmt.Sprintf("d-%d", i-1)
		}
		if ev.Object.Name != want {
			t.Errorf("slow watcher event %d = %s, want %s", i, ev.Object.Name, want)
		}
	}
	if n := watcherCount(s, s.devices); n != 0 {
		t.Errorf("%d watchers registered after the slow one was closed, want 0", n)
	}
}

func TestWatchContextCancel(t *testing.T) {
	s := openTest(t)
	if _, err := s.Devices().Create(t.Context(), deviceCase.newObj("d")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := s.Devices().Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	cancel()
	drainClosed(t, ch)
	if n := watcherCount(s, s.devices); n != 0 {
		t.Errorf("%d watchers registered after cancel, want 0", n)
	}
	if _, err := s.Devices().Create(t.Context(), deviceCase.newObj("e")); err != nil {
		t.Errorf("Create after cancelled watch: %v", err)
	}
	if _, err := s.Devices().Watch(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch(cancelled ctx) error = %v, want context.Canceled", err)
	}
}

func TestCloseClosesWatches(t *testing.T) {
	s := openTest(t)
	ch, err := s.Applications().Watch(t.Context())
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	drainClosed(t, ch)
	if _, err := s.Applications().Watch(t.Context()); err == nil {
		t.Error("Watch after Close succeeded")
	}
	if _, err := s.Applications().Create(t.Context(), applicationCase.newObj("a")); err == nil {
		t.Error("Create after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d-1", "d-2", "d-3"} {
		if _, err := s.Devices().Create(ctx, deviceCase.newObj(name)); err != nil {
			t.Fatal(err)
		}
	}
	d1, _ := s.Devices().Get(ctx, "d-1")
	d1.Spec.Board = "esp32"
	if _, err := s.Devices().Update(ctx, d1); err != nil {
		t.Fatal(err)
	}
	if err := s.Devices().Delete(ctx, "d-3"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Gateways().Create(ctx, gatewayCase.newObj("g-1")); err != nil {
		t.Fatal(err)
	}
	devices, _ := s.Devices().List(ctx)
	gateways, _ := s.Gateways().List(ctx)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenEmbedded(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	gotDevices, err := s.Devices().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gotGateways, err := s.Gateways().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotDevices, devices) || !reflect.DeepEqual(gotGateways, gateways) {
		t.Errorf("after reopen devices %v gateways %v, want %v %v",
			objectNames(gotDevices), objectNames(gotGateways), objectNames(devices), objectNames(gateways))
	}
	// Six writes before: create x3, update, delete, create gateway.
	a, err := s.Applications().Create(ctx, applicationCase.newObj("a"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rv(t, a); got != 7 {
		t.Errorf("first write after reopen has resourceVersion %d, want 7", got)
	}
}

func TestDirectoryModes(t *testing.T) {
	s := openTest(t)
	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{
		{s.dir, 0o700 | os.ModeDir},
		{filepath.Join(s.dir, dbFileName), 0o600},
		{filepath.Join(s.dir, modulesDirName), 0o700 | os.ModeDir},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tc.mode {
			t.Errorf("mode of %s = %v, want %v", tc.path, fi.Mode(), tc.mode)
		}
	}
}

func BenchmarkCreate(b *testing.B) {
	s := openTest(b)
	ctx := b.Context()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Devices().Create(ctx, deviceCase.newObj(fmt.Sprintf("dev-%d", i))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateStatus(b *testing.B) {
	s := openTest(b)
	ctx := b.Context()
	cur, err := s.Devices().Create(ctx, deviceCase.newObj("dev"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		cur.Status.AppCount++
		if cur, err = s.Devices().UpdateStatus(ctx, cur); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	s := openTest(b)
	ctx := b.Context()
	fillDevices(b, s, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Devices().Get(ctx, "dev-00500"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkList(b *testing.B) {
	s := openTest(b)
	ctx := b.Context()
	fillDevices(b, s, 1000)
	b.ReportAllocs()
	for b.Loop() {
		list, err := s.Devices().List(ctx)
		if err != nil || len(list) != 1000 {
			b.Fatalf("List = %d devices, %v; want 1000", len(list), err)
		}
	}
}

// BenchmarkWatchFanout measures a status update delivered to 10 watchers
// that read as they go.
func BenchmarkWatchFanout(b *testing.B) {
	s := openTest(b)
	ctx := b.Context()
	cur, err := s.Devices().Create(ctx, deviceCase.newObj("dev"))
	if err != nil {
		b.Fatal(err)
	}
	const watchers = 10
	counts := make([]int, watchers)
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	for i := range watchers {
		ch, err := s.Devices().Watch(wctx)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for range ch {
				counts[i]++
			}
		})
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		cur.Status.AppCount++
		if cur, err = s.Devices().UpdateStatus(ctx, cur); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.StopTimer()
	stop()
	wg.Wait()
	for i, c := range counts {
		// A watcher closed for falling behind would have fewer.
		if c != 1+n {
			b.Fatalf("watcher %d got %d events, want %d", i, c, 1+n)
		}
	}
}
