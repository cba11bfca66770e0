package controller

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
)

// events collects what a Recorder is given.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) Eventf(obj runtime.Object, typ, reason, format string, args ...any) {
	name := obj.(metav1.Object).GetName()
	e.mu.Lock()
	e.got = append(e.got, fmt.Sprintf("%s %s %s", name, typ, reason))
	e.mu.Unlock()
}

// TestPlacement runs placement on a real (embedded) store with a clock
// of its own: a gateway that stops heartbeating is marked offline and its
// devices move to the healthy gateway with the fewest devices, a device
// goes back to the gateway it asks for once that one is healthy, and
// devices that name no gateway and are not placed yet are left alone.
func TestPlacement(t *testing.T) {
	ctx := t.Context()
	st, err := store.OpenEmbedded(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	rec := &events{}
	p := &Placement{Store: st, Interval: time.Second, Recorder: rec, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }}

	heartbeat := func(name string, at time.Time) {
		t.Helper()
		gw, err := st.Gateways().Get(ctx, name)
		if err != nil {
			gw, err = st.Gateways().Create(ctx, &v1alpha1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.GatewaySpec{Endpoint: name + ":8081"}})
		}
		if err != nil {
			t.Fatal(err)
		}
		gw.Status.Online, gw.Status.LastHeartbeat = true, &metav1.Time{Time: at}
		if _, err := st.Gateways().UpdateStatus(ctx, gw); err != nil {
			t.Fatal(err)
		}
	}
	device := func(name, asked, placed string) {
		t.Helper()
		d, err := st.Devices().Create(ctx, &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.DeviceSpec{Board: "mps2-an385", Gateway: asked}})
		if err != nil {
			t.Fatal(err)
		}
		if placed != "" {
			d.Status.Gateway = placed
			if _, err := st.Devices().UpdateStatus(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	placement := func() map[string]string {
		t.Helper()
		if err := p.Reconcile(ctx); err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
		devs, err := st.Devices().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, d := range devs {
			out[d.Name] = d.Status.Gateway
		}
		return out
	}

	heartbeat("gw-a", now)
	heartbeat("gw-b", now)
	heartbeat("gw-c", now)
	device("d-1", "", "gw-a")
	device("d-2", "gw-a", "gw-a")
	device("d-3", "", "gw-b")
	device("d-4", "", "")     // new, no gateway asked: the leader's Devices claims it
	device("d-5", "gw-x", "") // asks for a gateway that does not exist
	if got := placement(); got["d-1"] != "gw-a" || got["d-2"] != "gw-a" || got["d-3"] != "gw-b" || got["d-4"] != "" || got["d-5"] != "gw-c" {
		t.Fatalf("with every gateway healthy, placement = %v", got)
	}

	// gw-a falls silent: after three intervals it is offline and its two
	// devices move, one each to the least loaded of gw-b and gw-c; d-1,
	// online there, is Unknown until its new gateway has its session.
	d1, _ := st.Devices().Get(ctx, "d-1")
	d1.Status.Phase = v1alpha1.DeviceOnline
	if _, err := st.Devices().UpdateStatus(ctx, d1); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	heartbeat("gw-b", now)
	heartbeat("gw-c", now)
	if got := placement(); got["d-1"] != "gw-a" {
		t.Fatalf("after two silent intervals gw-a lost its devices: %v", got)
	}
	now = now.Add(3 * time.Second)
	heartbeat("gw-b", now)
	heartbeat("gw-c", now)
	got := placement()
	// gw-b and gw-c hold one device each: d-1 goes to gw-b (the first by
	// name), d-2 then to gw-c (fewer devices).
	if got["d-1"] != "gw-b" || got["d-2"] != "gw-c" {
		t.Errorf("after gw-a fell silent, placement = %v; want d-1 on gw-b and d-2 on gw-c", got)
	}
	if gw, _ := st.Gateways().Get(ctx, "gw-a"); gw.Status.Online || !meta.IsStatusConditionFalse(gw.Status.Conditions, "Ready") {
		t.Errorf("a silent gateway is %+v, want offline and not Ready", gw.Status)
	}
	if d, _ := st.Devices().Get(ctx, "d-1"); d.Status.Phase != v1alpha1.DeviceUnknown {
		t.Errorf("d-1, online on the silent gateway, is %s; want Unknown", d.Status.Phase)
	}

	// gw-a is back: d-2, which asks for it, goes back; d-1 stays.
	moved := got["d-1"]
	heartbeat("gw-a", now)
	if got := placement(); got["d-2"] != "gw-a" || got["d-1"] != moved {
		t.Errorf("with gw-a back, placement = %v; want d-2 on gw-a and d-1 on %s", got, moved)
	}
	// New emulated devices go to the least loaded healthy gateway: gw-a
	// and gw-c hold one device each, gw-b two.
	var picks []string
	for range 3 {
		picks = append(picks, p.Pick())
	}
	if fmt.Sprint(picks) != "[gw-a gw-c gw-a]" {
		t.Errorf("picks %v, want [gw-a gw-c gw-a]", picks)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []string{"gw-a Warning GatewayOffline", "d-1 Normal Reassigned", "d-2 Normal Reassigned"}
	for _, w := range want {
		found := false
		for _, g := range rec.got {
			found = found || g == w
		}
		if !found {
			t.Errorf("events %v lack %q", rec.got, w)
		}
	}
}
