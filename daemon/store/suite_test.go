package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// This file holds the behaviour every Store backend shares, as one suite:
// runStoreSuite(t, open) with open returning a new, empty store. The
// embedded store runs it in TestSuiteEmbedded below, the Kubernetes store
// in TestKubernetes (kube_test.go); `go test -run 'TestSuite|TestKubernetes'`
// runs both. What only one backend promises (consecutive
// resourceVersions, bounded watch buffers, CRD validation) stays in that
// backend's tests.

// TestSuiteEmbedded runs the shared suite against the embedded store.
func TestSuiteEmbedded(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store { return openTest(t) }, suiteLoad{workers: 8, perWorker: 20})
}

// suiteKind is what the suite needs to know about one kind: how to make a
// valid object (valid for the CRD schema too) and read or change one
// spec and one status field. spec values are indexes into specValues,
// which all pass the CRD's validation.
type suiteKind[T Object] struct {
	kind       string
	noun       string
	res        func(Store) Resource[T]
	newObj     func(name string) T
	specValues []string
	setSpec    func(T, string)
	spec       func(T) string
	setStatus  func(T, int32)
	status     func(T) int32
}

var suiteDevice = suiteKind[*v1alpha1.Device]{
	kind: v1alpha1.KindDevice,
	noun: "device",
	res:  func(s Store) Resource[*v1alpha1.Device] { return s.Devices() },
	newObj: func(name string) *v1alpha1.Device {
		d := &v1alpha1.Device{}
		d.Name = name
		d.Spec.Board = "nrf52840-dk"
		return d
	},
	specValues: []string{"mps2-an385", "esp32-devkitc", "frdm-k64f", "stm32f4-disco"},
	setSpec:    func(d *v1alpha1.Device, v string) { d.Spec.Board = v },
	spec:       func(d *v1alpha1.Device) string { return d.Spec.Board },
	setStatus:  func(d *v1alpha1.Device, v int32) { d.Status.AppCount = v },
	status:     func(d *v1alpha1.Device) int32 { return d.Status.AppCount },
}

var suiteApplication = suiteKind[*v1alpha1.Application]{
	kind: v1alpha1.KindApplication,
	noun: "application",
	res:  func(s Store) Resource[*v1alpha1.Application] { return s.Applications() },
	newObj: func(name string) *v1alpha1.Application {
		a := &v1alpha1.Application{}
		a.Name = name
		a.Spec.Version = "1.0.0"
		a.Spec.Module.SHA256 = strings.Repeat("ab", 32)
		a.Spec.Module.Size = 100
		return a
	},
	specValues: []string{"1.1.0", "1.2.0", "2.0.0", "3.0.0"},
	setSpec:    func(a *v1alpha1.Application, v string) { a.Spec.Version = v },
	spec:       func(a *v1alpha1.Application) string { return a.Spec.Version },
	setStatus:  func(a *v1alpha1.Application, v int32) { a.Status.Targeted = v },
	status:     func(a *v1alpha1.Application) int32 { return a.Status.Targeted },
}

var suiteGateway = suiteKind[*v1alpha1.Gateway]{
	kind: v1alpha1.KindGateway,
	noun: "gateway",
	res:  func(s Store) Resource[*v1alpha1.Gateway] { return s.Gateways() },
	newObj: func(name string) *v1alpha1.Gateway {
		g := &v1alpha1.Gateway{}
		g.Name = name
		g.Spec.Endpoint = "127.0.0.1:4423"
		return g
	},
	specValues: []string{"127.0.0.1:5000", "127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5003"},
	setSpec:    func(g *v1alpha1.Gateway, v string) { g.Spec.Endpoint = v },
	spec:       func(g *v1alpha1.Gateway) string { return g.Spec.Endpoint },
	setStatus:  func(g *v1alpha1.Gateway, v int32) { g.Status.ConnectedDevices = v },
	status:     func(g *v1alpha1.Gateway) int32 { return g.Status.ConnectedDevices },
}

// runStoreSuite runs the shared behavioural checks; open returns a new,
// empty store that it closes at the end of the test.
// suiteLoad sizes the concurrent-update check: a backend over the network
// takes a lighter load than the embedded one.
type suiteLoad struct{ workers, perWorker int }

func runStoreSuite(t *testing.T, open func(t *testing.T) Store, load suiteLoad) {
	t.Run("lifecycle/device", func(t *testing.T) { suiteLifecycle(t, open(t), suiteDevice) })
	t.Run("lifecycle/application", func(t *testing.T) { suiteLifecycle(t, open(t), suiteApplication) })
	t.Run("lifecycle/gateway", func(t *testing.T) { suiteLifecycle(t, open(t), suiteGateway) })
	t.Run("invalid-name", func(t *testing.T) { suiteInvalidName(t, open(t)) })
	t.Run("pages", func(t *testing.T) { suitePages(t, open(t)) })
	t.Run("watch-order", func(t *testing.T) { suiteWatchOrder(t, open(t)) })
	t.Run("watch-cancel", func(t *testing.T) { suiteWatchCancel(t, open(t)) })
	t.Run("close", func(t *testing.T) { suiteClose(t, open(t)) })
	t.Run("concurrent-updates", func(t *testing.T) { suiteConcurrentUpdates(t, open(t), load) })
}

// resourceVersion parses obj's resourceVersion; both backends use
// increasing decimal revisions (the embedded counter, etcd's revision).
func resourceVersion(tb testing.TB, obj Object) uint64 {
	tb.Helper()
	n, err := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	if err != nil {
		tb.Fatalf("%s: resourceVersion %q: %v", obj.GetName(), obj.GetResourceVersion(), err)
	}
	return n
}

func suiteLifecycle[T Object](t *testing.T, s Store, c suiteKind[T]) {
	ctx := t.Context()
	res := c.res(s)
	var lastRV uint64
	// later checks that obj's resourceVersion went up.
	later := func(op string, obj T) {
		t.Helper()
		got := resourceVersion(t, obj)
		if got <= lastRV {
			t.Fatalf("%s: resourceVersion %d, want more than %d", op, got, lastRV)
		}
		lastRV = got
	}
	s1, s2, s3 := c.specValues[0], c.specValues[1], c.specValues[2]

	// Create fills in server-set fields and drops the status.
	in := c.newObj("a-1")
	c.setSpec(in, s1)
	c.setStatus(in, 7)
	in.SetLabels(map[string]string{"k": "v"})
	in.SetResourceVersion("999")
	in.SetUID("bogus")
	in.SetGeneration(5)
	created, err := res.Create(ctx, in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	later("Create", created)
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
	if got := c.spec(created); got != s1 {
		t.Errorf("Create: spec field = %q, want %s", got, s1)
	}
	if in.GetResourceVersion() != "999" || in.GetUID() != "bogus" || c.status(in) != 7 {
		t.Error("Create changed the caller's object")
	}

	// Get returns the same object; returned objects are the caller's.
	got, err := res.Get(ctx, "a-1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got, created) {
		t.Errorf("Get = %+v, want %+v", got, created)
	}
	got.SetLabels(map[string]string{"changed": "yes"})
	c.setSpec(got, "changed")
	in.SetLabels(map[string]string{"changed": "too"})
	again, err := res.Get(ctx, "a-1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(again.GetLabels(), map[string]string{"k": "v"}) || c.spec(again) != s1 {
		t.Errorf("changing returned or passed objects changed the store: labels %v spec %q", again.GetLabels(), c.spec(again))
	}
	if !reflect.DeepEqual(created.GetLabels(), map[string]string{"k": "v"}) {
		t.Errorf("changing a Get result changed the Create result: labels %v", created.GetLabels())
	}

	// List is sorted by name.
	for _, name := range []string{"c-3", "b-2"} {
		obj, err := res.Create(ctx, c.newObj(name))
		if err != nil {
			t.Fatalf("Create(%s): %v", name, err)
		}
		later("Create", obj)
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
	c.setSpec(cur, s2)
	c.setStatus(cur, 99)
	cur.SetLabels(map[string]string{"k": "w"})
	updated, err := res.Update(ctx, cur)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	later("Update", updated)
	createdAt, updatedAt := created.GetCreationTimestamp(), updated.GetCreationTimestamp()
	if c.spec(updated) != s2 || c.status(updated) != 0 || updated.GetGeneration() != 2 ||
		updated.GetLabels()["k"] != "w" || updated.GetUID() != created.GetUID() || !updatedAt.Equal(&createdAt) {
		t.Errorf("Update = spec %q status %d generation %d labels %v uid %s, want %s 0 2 map[k:w] %s",
			c.spec(updated), c.status(updated), updated.GetGeneration(), updated.GetLabels(), updated.GetUID(), s2, created.GetUID())
	}

	// A metadata-only update keeps the generation.
	updated.SetAnnotations(map[string]string{"note": "x"})
	updated, err = res.Update(ctx, updated)
	if err != nil {
		t.Fatalf("Update annotations: %v", err)
	}
	later("Update annotations", updated)
	if updated.GetGeneration() != 2 || updated.GetAnnotations()["note"] != "x" {
		t.Errorf("Update annotations: generation %d annotations %v, want 2 map[note:x]", updated.GetGeneration(), updated.GetAnnotations())
	}

	// UpdateStatus replaces the status only.
	stale := updated.DeepCopyObject().(T)
	c.setStatus(updated, 5)
	c.setSpec(updated, c.specValues[3])
	updated.SetLabels(nil)
	withStatus, err := res.UpdateStatus(ctx, updated)
	if err != nil {
		t.Fatalf("UpdateStatus: %v", err)
	}
	later("UpdateStatus", withStatus)
	if c.status(withStatus) != 5 || c.spec(withStatus) != s2 || withStatus.GetGeneration() != 2 || withStatus.GetLabels()["k"] != "w" {
		t.Errorf("UpdateStatus = status %d spec %q generation %d labels %v, want 5 %s 2 map[k:w]",
			c.status(withStatus), c.spec(withStatus), withStatus.GetGeneration(), withStatus.GetLabels(), s2)
	}

	// Update keeps the stored status.
	c.setStatus(withStatus, 0)
	c.setSpec(withStatus, s3)
	kept, err := res.Update(ctx, withStatus)
	if err != nil {
		t.Fatalf("Update after UpdateStatus: %v", err)
	}
	later("Update after UpdateStatus", kept)
	if c.status(kept) != 5 || kept.GetGeneration() != 3 || c.spec(kept) != s3 {
		t.Errorf("Update after UpdateStatus = status %d generation %d spec %q, want 5 3 %s", c.status(kept), kept.GetGeneration(), c.spec(kept), s3)
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
			c.setSpec(tc.obj, c.specValues[3])
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
	// The name is free again, for a new object.
	recreated, err := res.Create(ctx, c.newObj("a-1"))
	if err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
	later("Create after Delete", recreated)
	if recreated.GetUID() == created.GetUID() || recreated.GetGeneration() != 1 {
		t.Errorf("Create after Delete: uid %s generation %d, want a new uid and 1", recreated.GetUID(), recreated.GetGeneration())
	}
}

func suiteInvalidName(t *testing.T, s Store) {
	ctx := t.Context()
	for _, name := range []string{"", "Dev-1", "dev_1", "-dev", "dev-", "../x", "a/b", "a.b", "dév", strings.Repeat("a", 64)} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			_, err := s.Devices().Create(ctx, suiteDevice.newObj(name))
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("Devices().Create(%q) error = %v, want ErrInvalidName", name, err)
			}
			if want := fmt.Sprintf("device %q: invalid name: ", name); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Devices().Create(%q) error = %q, want prefix %q", name, err, want)
			}
			if _, err := s.Gateways().Create(ctx, suiteGateway.newObj(name)); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Gateways().Create(%q) error = %v, want ErrInvalidName", name, err)
			}
			// No object can have the name: reads and deletes say so.
			if _, err := s.Devices().Get(ctx, name); !errors.Is(err, ErrNotFound) {
				t.Errorf("Devices().Get(%q) error = %v, want ErrNotFound", name, err)
			}
			if err := s.Devices().Delete(ctx, name); !errors.Is(err, ErrNotFound) {
				t.Errorf("Devices().Delete(%q) error = %v, want ErrNotFound", name, err)
			}
		})
	}
	if list, err := s.Devices().List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List after invalid creates = %v, %v, want empty", objectNames(list), err)
	}
	if _, err := s.Devices().Create(ctx, suiteDevice.newObj(strings.Repeat("a", 63))); err != nil {
		t.Errorf("Create(63-character name): %v", err)
	}
}

func suiteWatchOrder(t *testing.T, s Store) {
	ctx := t.Context()
	devs := s.Devices()
	for _, name := range []string{"x-2", "x-1"} {
		if _, err := devs.Create(ctx, suiteDevice.newObj(name)); err != nil {
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
		rv   string // "": a deletion's, checked only to increase
	}
	var want []step
	x3, err := devs.Create(ctx, suiteDevice.newObj("x-3"))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, step{Added, "x-3", x3.ResourceVersion})
	x1, err := devs.Get(ctx, "x-1")
	if err != nil {
		t.Fatal(err)
	}
	x1.Spec.Board = "stm32f746g-disco"
	if x1, err = devs.Update(ctx, x1); err != nil {
		t.Fatal(err)
	}
	want = append(want, step{Modified, "x-1", x1.ResourceVersion})
	x1.Status.Phase = v1alpha1.DeviceOnline
	if x1, err = devs.UpdateStatus(ctx, x1); err != nil {
		t.Fatal(err)
	}
	want = append(want, step{Modified, "x-1", x1.ResourceVersion})
	if err := devs.Delete(ctx, "x-2"); err != nil {
		t.Fatal(err)
	}
	want = append(want, step{Deleted, "x-2", ""})
	if _, err := s.Gateways().Create(ctx, suiteGateway.newObj("g-1")); err != nil {
		t.Fatal(err)
	}

	var prevRV uint64
	for i, w := range want {
		ev := next(t, ch)
		if ev.Type != w.typ || ev.Object.Name != w.name || (w.rv != "" && ev.Object.ResourceVersion != w.rv) {
			t.Errorf("event %d = %s %s rv %s, want %s %s rv %q", i, ev.Type, ev.Object.Name, ev.Object.ResourceVersion, w.typ, w.name, w.rv)
		}
		if got := resourceVersion(t, ev.Object); got <= prevRV {
			t.Errorf("event %d: resourceVersion %d, want more than %d", i, got, prevRV)
		} else {
			prevRV = got
		}
		if ev.Object == x1 || ev.Object == x3 {
			t.Errorf("event %d shares its object with the writer", i)
		}
		if o := next(t, other); o.Object == ev.Object {
			t.Errorf("event %d: two watchers share one object", i)
		}
	}
	if ev := next(t, gws); ev.Type != Added || ev.Object.Name != "g-1" {
		t.Errorf("gateway watch first event = %s %s, want ADDED g-1", ev.Type, ev.Object.Name)
	}
}

func suiteWatchCancel(t *testing.T, s Store) {
	if _, err := s.Devices().Create(t.Context(), suiteDevice.newObj("d")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := s.Devices().Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if ev := next(t, ch); ev.Type != Added || ev.Object.Name != "d" {
		t.Errorf("snapshot event = %s %s, want ADDED d", ev.Type, ev.Object.Name)
	}
	cancel()
	drainClosed(t, ch)
	if _, err := s.Devices().Create(t.Context(), suiteDevice.newObj("e")); err != nil {
		t.Errorf("Create after cancelled watch: %v", err)
	}
	if _, err := s.Devices().Watch(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch(cancelled ctx) error = %v, want context.Canceled", err)
	}
}

func suiteClose(t *testing.T, s Store) {
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
	if _, err := s.Applications().Create(t.Context(), suiteApplication.newObj("a")); err == nil {
		t.Error("Create after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func suiteConcurrentUpdates(t *testing.T, s Store, load suiteLoad) {
	ctx := t.Context()
	gws := s.Gateways()
	if _, err := gws.Create(ctx, suiteGateway.newObj("gw")); err != nil {
		t.Fatal(err)
	}
	workers, perWorker := int32(load.workers), int32(load.perWorker)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		conflicts int
	)
	for range workers {
		wg.Go(func() {
			for range perWorker {
				for {
					cur, err := gws.Get(ctx, "gw")
					if err != nil {
						t.Errorf("Get: %v", err)
						return
					}
					cur.Spec.Capacity++
					_, err = gws.Update(ctx, cur)
					if errors.Is(err, ErrConflict) {
						mu.Lock()
						conflicts++
						mu.Unlock()
						continue
					}
					if err != nil {
						t.Errorf("Update: %v", err)
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	got, err := gws.Get(ctx, "gw")
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Capacity != workers*perWorker || got.Generation != int64(workers*perWorker)+1 {
		t.Errorf("after %d updates capacity %d generation %d, want %d %d",
			workers*perWorker, got.Spec.Capacity, got.Generation, workers*perWorker, workers*perWorker+1)
	}
	t.Logf("%d conflicts retried", conflicts)
}

// suitePages lists devices a page at a time, with and without a label
// selector: every device once, in name order, the last page without a
// continue token; a token from elsewhere is refused.
func suitePages(t *testing.T, s Store) {
	ctx := context.Background()
	res := s.Devices()
	var all, even []string
	for i := range 7 {
		name := fmt.Sprintf("p-%d", i)
		d := suiteDevice.newObj(name)
		d.Labels = map[string]string{"parity": []string{"even", "odd"}[i%2]}
		if _, err := res.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		all = append(all, name)
		if i%2 == 0 {
			even = append(even, name)
		}
	}
	pages := func(opts ListOptions) (names []string, n int) {
		t.Helper()
		for {
			p, err := res.ListPage(ctx, opts)
			if err != nil {
				t.Fatalf("ListPage(%+v) = %v", opts, err)
			}
			n++
			if len(p.Items) > opts.Limit {
				t.Errorf("a page of %d items under limit %d", len(p.Items), opts.Limit)
			}
			names = append(names, objectNames(p.Items)...)
			if p.Continue == "" {
				return names, n
			}
			opts.Continue = p.Continue
		}
	}
	if got, n := pages(ListOptions{Limit: 3}); !slices.Equal(got, all) || n != 3 {
		t.Errorf("pages of 3 = %v in %d pages, want %v in 3", got, n, all)
	}
	sel, _ := labels.Parse("parity=even")
	if got, n := pages(ListOptions{Limit: 2, Selector: sel}); !slices.Equal(got, even) || n != 2 {
		t.Errorf("pages of 2 of parity=even = %v in %d pages, want %v in 2", got, n, even)
	}
	if p, err := res.ListPage(ctx, ListOptions{}); err != nil || len(p.Items) != len(all) || p.Continue != "" {
		t.Errorf("ListPage without a limit = %d items, continue %q, %v; want all %d, none", len(p.Items), p.Continue, err, len(all))
	}
	if _, err := res.ListPage(ctx, ListOptions{Limit: 2, Continue: "!not a token!"}); !errors.Is(err, ErrInvalidContinue) {
		t.Errorf("ListPage with a bad continue token = %v, want ErrInvalidContinue", err)
	}
}
