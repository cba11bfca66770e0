package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
)

// TestApplicationSizeFlat: an Application's stored size does not grow
// with its fleet. The controller reconciles one app over 10 and over
// 10,000 devices in the embedded store, a third of them failing it and
// the rest running it or offline; the two statuses differ by at most
// 1 KB, and count every device.
func TestApplicationSizeFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000 devices")
	}
	small := appSize(t, 10)
	large := appSize(t, 10000)
	t.Logf("application JSON: %d bytes for 10 devices, %d for 10,000", small, large)
	if large-small > 1024 {
		t.Errorf("the application grew by %d bytes from 10 to 10,000 devices, want at most 1024", large-small)
	}
}

// appSize stores n devices, an app targeting them all, runs the
// controller until the status counts them, and returns the app's JSON
// size.
func appSize(t *testing.T, n int) int {
	t.Helper()
	_, got := rolloutOver(t, n)
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// BenchmarkReconcile10k is one reconcile of an app over 10,000 devices
// whose status is settled: the work each device report costs the rollout
// controller.
func BenchmarkReconcile10k(b *testing.B) {
	c, _ := rolloutOver(b, 10000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.reconcile(ctx, "sensor"); err != nil {
			b.Fatal(err)
		}
	}
}

// rolloutOver stores n devices and an app targeting them all, runs the
// controller until the status counts them, and returns the controller
// (running until tb ends) and the app.
func rolloutOver(t testing.TB, n int) (*Applications, *v1alpha1.Application) {
	t.Helper()
	st, err := store.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	const sha = "5f0c0a7e1b6d4c3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a"
	// Writers in parallel share the store's commits.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				errs <- putDevice(ctx, st, i, sha)
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	app := &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: "sensor"}, Spec: v1alpha1.ApplicationSpec{
		Module: v1alpha1.ModuleRef{SHA256: sha, Size: 1000}, Version: "1",
		Target:  v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "size"}}},
		Rollout: v1alpha1.Rollout{MaxFailures: int32(n)}, // no abort: the test weighs a rollout under way
	}}
	if _, err := st.Applications().Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	c := &Applications{Store: st, Logger: slog.New(slog.DiscardHandler), Resync: time.Hour}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	for {
		got, err := st.Applications().Get(ctx, "sensor")
		if err != nil {
			t.Fatal(err)
		}
		s := got.Status
		if int(s.Targeted) == n {
			if want := int32((n + 2) / 3); s.Failed != want || s.Running+s.Waiting+s.Failed != s.Targeted {
				t.Errorf("%d devices: status counts %d failed, %d running, %d waiting; want %d failed, every device counted", n, s.Failed, s.Running, s.Waiting, want)
			}
			if len(s.FailedDevices) != min(int(s.Failed), failedLimit) {
				t.Errorf("%d devices: %d failed devices listed, want %d", n, len(s.FailedDevices), min(int(s.Failed), failedLimit))
			}
			return c, got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// putDevice stores device i: every third fails the app, every other
// third runs it, the rest are offline.
func putDevice(ctx context.Context, st store.Store, i int, sha string) error {
	d := device(fmt.Sprintf("dev-%05d", i), map[string]string{"fleet": "size"})
	d.Spec.Board = "mps2-an385"
	d, err := st.Devices().Create(ctx, d)
	if err != nil {
		return err
	}
	since := &metav1.Time{Time: time.Now().Add(-time.Hour).Truncate(time.Second)}
	switch i % 3 {
	case 0:
		d.Status.Phase = v1alpha1.DeviceOnline
		d.Status.Apps = []v1alpha1.DeviceApp{{Name: "sensor", Version: "1", SHA256: sha, State: "failed", Reason: "trap: unreachable", Since: since}}
	case 1:
		d.Status.Phase = v1alpha1.DeviceOnline
		d.Status.Apps = []v1alpha1.DeviceApp{{Name: "sensor", Version: "1", SHA256: sha, State: "running", Since: since}}
	default:
		d.Status.Phase = v1alpha1.DeviceOffline
	}
	_, err = st.Devices().UpdateStatus(ctx, d)
	return err
}
