package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/daemon/controller"
)

// TestBrokenRolloutsDoNotLoop rolls out two broken versions in a row over
// a good one on sim boards: each is aborted, the devices return to the
// stable version, the spec is never written by the daemon (its generation
// does not move), and once the devices are back nothing more is sent. A
// good version after that rolls out and becomes the stable one.
func TestBrokenRolloutsDoNotLoop(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, t.TempDir())
	c := d.c
	sent := watchTransfers(t, c)
	devices := []string{"loop-a", "loop-b"}
	sensorOn(t, c, devices...)
	waitApp(t, c, "version 1 running, stable", func(a *v1alpha1.Application) bool {
		return a.Status.Phase == v1alpha1.AppRunning && a.Status.StableRevision == "1"
	})

	for _, broken := range []struct{ version, file string }{{"2", "badimport.wasm"}, {"3", "trap.wasm"}} {
		mod, err := c.UploadModule(ctx, bytes.NewReader(readApp(t, broken.file)))
		if err != nil {
			t.Fatal(err)
		}
		written := updateApp(t, c, "sensor", func(app *v1alpha1.Application) {
			app.Spec.Module, app.Spec.Version = v1alpha1.ModuleRef{SHA256: mod.SHA256}, broken.version
			// A module that traps at once runs for a moment first: with no
			// health gate that moment would make it stable.
			app.Spec.Rollout.HealthySeconds = 2
		})
		a := waitApp(t, c, "version "+broken.version+" aborted, back on 1", func(a *v1alpha1.Application) bool {
			ab := a.Status.Aborted
			return ab != nil && ab.Generation == written.Generation && ab.RolledBackTo == "1" &&
				a.Status.Running == int32(len(devices)) && a.Status.CurrentRevision == "1"
		})
		if a.Generation != written.Generation || a.Spec.Version != broken.version {
			t.Fatalf("after the abort the spec is version %s, generation %d; want %s, %d as written",
				a.Spec.Version, a.Generation, broken.version, written.Generation)
		}
		// Several resyncs later nothing more was sent and the spec is as
		// written.
		before := sent.count()
		time.Sleep(4 * time.Second)
		a, err = c.GetApplication(ctx, "sensor")
		if err != nil {
			t.Fatal(err)
		}
		if after := sent.count(); after != before || a.Generation != written.Generation {
			t.Errorf("version %s: %d transfers began after the devices were back on 1 and generation is %d (want %d): the rollout loops",
				broken.version, after-before, a.Generation, written.Generation)
		}
		ready := ""
		for _, cond := range a.Status.Conditions {
			if cond.Type == "Ready" {
				ready = string(cond.Status) + " " + cond.Reason
			}
		}
		if a.Status.Phase != v1alpha1.AppRolledBack || ready != "False RolloutAborted" {
			t.Errorf("version %s: phase %s, Ready %q; want RolledBack, False RolloutAborted", broken.version, a.Status.Phase, ready)
		}
		rows, err := c.ListApplicationDevices(ctx, "sensor", controller.RolloutRunning)
		if err != nil || len(rows.Items) != len(devices) || rows.Items[0].Version != "1" {
			t.Errorf("running rows = %+v, %v; want every device on 1", rows, err)
		}
	}

	good, err := c.UploadModule(ctx, bytes.NewReader(readApp(t, "sensor-v2.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	updateApp(t, c, "sensor", func(app *v1alpha1.Application) {
		app.Spec.Module, app.Spec.Version = v1alpha1.ModuleRef{SHA256: good.SHA256}, "4"
	})
	a := waitApp(t, c, "version 4 running, stable", func(a *v1alpha1.Application) bool {
		return a.Status.Phase == v1alpha1.AppRunning && a.Status.StableRevision == "4" && a.Status.Aborted == nil
	})
	if n := len(a.Status.History); n != 4 || a.Status.History[n-1].Devices != int32(len(devices)) {
		t.Errorf("history %+v, want four revisions, the last on every device", a.Status.History)
	}
}

// transfers counts module transfers begun, from the event stream: each
// begins with a progress event at offset 0.
type transfers struct {
	mu sync.Mutex
	n  int
}

func (s *transfers) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func watchTransfers(t *testing.T, c *client.Client) *transfers {
	t.Helper()
	events, err := c.Events(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { events.Close() })
	s := &transfers{}
	go func() {
		for {
			e, err := events.Next()
			if err != nil {
				return
			}
			if e.Type == api.EventProgress && e.App.Sent == 0 {
				s.mu.Lock()
				s.n++
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// waitApp waits until the sensor app satisfies ok and returns it.
func waitApp(t *testing.T, c *client.Client, what string, ok func(*v1alpha1.Application) bool) *v1alpha1.Application {
	t.Helper()
	var a *v1alpha1.Application
	eventually(t, what, func() (bool, error) {
		var err error
		if a, err = c.GetApplication(context.Background(), "sensor"); err != nil {
			return false, err
		}
		return ok(a), fmt.Errorf("phase %s, %d running, %d failed, aborted %+v", a.Status.Phase, a.Status.Running, a.Status.Failed, a.Status.Aborted)
	})
	return a
}

// TestHealthGate rolls out a version whose telemetry breaks the rollout's
// health gate (sensor-v2 reports humidity 41.5, the gate's max is 40): the
// devices fail it with the gate as the reason and return to the stable
// version. The same version under a gate it keeps then rolls out.
func TestHealthGate(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	c := d.c
	devices := []string{"hg-a", "hg-b"}
	sensorOn(t, c, devices...)
	waitApp(t, c, "version 1 running, stable", func(a *v1alpha1.Application) bool {
		return a.Status.Phase == v1alpha1.AppRunning && a.Status.StableRevision == "1"
	})
	sha := uploadApp(t, c, "sensor-v2.wasm")
	max := resource.MustParse("40")
	written := updateApp(t, c, "sensor", func(app *v1alpha1.Application) {
		app.Spec.Module, app.Spec.Version = v1alpha1.ModuleRef{SHA256: sha}, "2"
		app.Spec.Rollout.HealthySeconds = 5
		app.Spec.Rollout.Health = &v1alpha1.HealthGate{Metric: "humidity", Max: &max}
	})
	a := waitApp(t, c, "version 2 aborted on its health gate, back on 1", func(a *v1alpha1.Application) bool {
		ab := a.Status.Aborted
		return ab != nil && ab.Generation == written.Generation && ab.RolledBackTo == "1" &&
			a.Status.Running == int32(len(devices)) && a.Status.CurrentRevision == "1"
	})
	if !strings.Contains(a.Status.Aborted.Reason, "health gate: humidity = 41.5, above its max 40") {
		t.Errorf("abort reason %q, want the health gate's", a.Status.Aborted.Reason)
	}

	max = resource.MustParse("50")
	updateApp(t, c, "sensor", func(app *v1alpha1.Application) {
		app.Spec.Rollout.Health = &v1alpha1.HealthGate{Metric: "humidity", Max: &max}
	})
	waitApp(t, c, "version 2 running under a gate it keeps, stable", func(a *v1alpha1.Application) bool {
		return a.Status.Phase == v1alpha1.AppRunning && a.Status.StableRevision == "2" && a.Status.Aborted == nil
	})
}

// TestBatchOfOne rolls an update out to four devices with batchSize 1: on
// the event stream, no transfer begins while another device is still
// receiving its module or has not reported it running, however the
// reconciles of the app and the devices' events interleave.
func TestBatchOfOne(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, t.TempDir())
	c := d.c
	devices := []string{"b1-a", "b1-b", "b1-c", "b1-d"}
	sensorOn(t, c, devices...)
	waitApp(t, c, "version 1 running, stable", func(a *v1alpha1.Application) bool {
		return a.Status.Phase == v1alpha1.AppRunning && a.Status.StableRevision == "1"
	})
	events, err := c.Events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	sha := uploadApp(t, c, "sensor-v2.wasm")
	updateApp(t, c, "sensor", func(app *v1alpha1.Application) {
		app.Spec.Module, app.Spec.Version = v1alpha1.ModuleRef{SHA256: sha}, "2"
		app.Spec.Rollout.BatchSize = 1
	})
	open := map[string]bool{} // devices sent version 2 that do not report it running yet
	done := map[string]bool{}
	for len(done) < len(devices) {
		e, err := events.Next()
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		if e.App == nil || e.App.Name != "sensor" || e.App.Version != "2" {
			continue
		}
		switch {
		case e.Type == api.EventProgress && e.App.Sent == 0:
			if len(open) > 0 {
				t.Errorf("a transfer to %s began while %v had not finished theirs (batchSize 1)", e.Device, open)
			}
			open[e.Device] = true
		case e.Type == api.EventApp && e.App.State == "running":
			delete(open, e.Device)
			done[e.Device] = true
		}
	}
}
