package controller

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/gateway/protocol"
)

func TestHealthMarks(t *testing.T) {
	max, min := resource.MustParse("40"), resource.MustParse("500m")
	var h health
	h.setGate("sensor", &v1alpha1.HealthGate{Metric: "humidity", Max: &max, Min: &min})
	at := time.Unix(1700000000, 0)
	sha := []byte{1}
	module := func() []byte { return sha }
	sample := func(app string, v float64) *protocol.Telemetry {
		return &protocol.Telemetry{App: app, Values: map[string]float64{"humidity": v, "other": 1e9}}
	}
	for _, tt := range []struct {
		name   string
		t      *protocol.Telemetry
		marked bool
	}{
		{"within bounds", sample("sensor", 40), false},
		{"another app", sample("other", 99), false},
		{"no such value", &protocol.Telemetry{App: "sensor", Values: map[string]float64{"temp": 99}}, false},
		{"above max", sample("sensor", 41.5), true},
		{"above max again, same module", sample("sensor", 42), false},
		{"below min, same module", sample("sensor", 0.25), false},
	} {
		if got := h.observe("d", tt.t, at, module); got != tt.marked {
			t.Errorf("%s: observe = %v, want %v", tt.name, got, tt.marked)
		}
	}
	if reason, when := h.mark("d", "sensor", sha); reason != "health gate: humidity = 41.5, above its max 40" || !when.Equal(at) {
		t.Errorf("mark = %q at %v", reason, when)
	}
	if reason, _ := h.mark("d", "sensor", []byte{2}); reason != "" {
		t.Errorf("mark of another module = %q, want none", reason)
	}
	sha = []byte{2}
	if !h.observe("d", sample("sensor", 0.25), at, module) {
		t.Error("a breach by a new module was not marked")
	}
	if reason, _ := h.mark("d", "sensor", sha); reason != "health gate: humidity = 0.25, below its min 500m" {
		t.Errorf("mark = %q", reason)
	}
	// The same gate again keeps the marks; another gate forgets them.
	h.setGate("sensor", &v1alpha1.HealthGate{Metric: "humidity", Max: &max, Min: &min})
	if reason, _ := h.mark("d", "sensor", sha); reason == "" {
		t.Error("the same gate set again forgot the marks")
	}
	h.setGate("sensor", &v1alpha1.HealthGate{Metric: "humidity", Max: &max})
	if reason, _ := h.mark("d", "sensor", sha); reason != "" {
		t.Errorf("a new gate kept the mark %q", reason)
	}
	h.setGate("sensor", nil)
	if h.observe("d", sample("sensor", 99), at, module) {
		t.Error("a sample was marked with no gate")
	}
}

func TestUnhealthyWindow(t *testing.T) {
	since := time.Unix(1700000000, 0)
	at := func(d time.Duration) v1alpha1.DeviceApp {
		return v1alpha1.DeviceApp{Unhealthy: "health gate: x", UnhealthyAt: &metav1.Time{Time: since.Add(d)}, Since: &metav1.Time{Time: since}}
	}
	for _, tt := range []struct {
		d    time.Duration
		want bool
	}{
		{0, false}, // the second the version started: maybe a sample of the one before
		{time.Second, true},
		{5 * time.Second, true},
		{6 * time.Second, false}, // after the window: healthy already
	} {
		rep := at(tt.d)
		if got := unhealthy(&rep, 5*time.Second); got != tt.want {
			t.Errorf("breach %v after the start, window 5s: unhealthy = %v, want %v", tt.d, got, tt.want)
		}
	}
	if healthy := (v1alpha1.DeviceApp{Since: &metav1.Time{Time: since}}); unhealthy(&healthy, time.Hour) {
		t.Error("an app with no breach is unhealthy")
	}
}
