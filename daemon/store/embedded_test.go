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
	"sync/atomic"
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

// kindCase is what the embedded store's own tests need to know about one kind: how to
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

// BenchmarkUpdateStatusParallel writes the statuses of 64 devices from
// 64 goroutines at once: the writes share transactions and syncs.
func BenchmarkUpdateStatusParallel(b *testing.B) {
	s := openTest(b)
	ctx := b.Context()
	var next atomic.Int64
	b.SetParallelism(32) // 64 writers on 2 cores
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		cur, err := s.Devices().Create(ctx, deviceCase.newObj(fmt.Sprintf("dev-%d", next.Add(1))))
		if err != nil {
			b.Fatal(err)
		}
		for pb.Next() {
			cur.Status.AppCount++
			if cur, err = s.Devices().UpdateStatus(ctx, cur); err != nil {
				b.Fatal(err)
			}
		}
	})
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

// TestWatchEventsReadBack: a watcher that reads an object back on its event
// finds it as the event has it or newer, and a deleted one gone. A
// controller reconciling a deletion must see the object missing, or it
// would never clean up after it.
func TestWatchEventsReadBack(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	ch, err := s.Devices().Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	go func() {
		for i := range n {
			name := fmt.Sprintf("rb-%03d", i)
			if _, err := s.Devices().Create(ctx, deviceCase.newObj(name)); err != nil {
				t.Error(err)
				return
			}
			if err := s.Devices().Delete(ctx, name); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 2 * n {
		ev := next(t, ch)
		got, err := s.Devices().Get(ctx, ev.Object.Name)
		switch {
		case ev.Type == Deleted && !errors.Is(err, ErrNotFound):
			t.Fatalf("Get on the deletion of %s = %v, %v; want not found", ev.Object.Name, got, err)
		case ev.Type == Added && err != nil:
			// Deleted meanwhile: the deletion event follows.
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get on the creation of %s: %v", ev.Object.Name, err)
			}
		}
	}
}
