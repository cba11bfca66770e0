package controller

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// health checks the telemetry of this daemon's devices against their
// apps' health gates (Rollout.Health). A breach is marked once per device,
// app and module: the device's status then reports it (DeviceApp.
// Unhealthy), and the rollout controller, wherever it runs, fails the
// device if the breach came within its healthy window. The cost of a
// sample is a map lookup and a comparison; only a breach writes.
type health struct {
	mu    sync.Mutex
	gates map[string]v1alpha1.HealthGate    // by app
	marks map[string]map[string]*healthMark // by device, then app
}

// healthMark is a breach of a gate by one module of an app.
type healthMark struct {
	sha    []byte
	reason string
	at     time.Time
}

// setGate records app's gate, or forgets it (nil). A gate that changes
// forgets the app's breaches of the one before.
func (h *health) setGate(app string, g *v1alpha1.HealthGate) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.gates[app]
	switch {
	case g == nil && !had:
		return
	case g != nil && had && equality.Semantic.DeepEqual(old, *g):
		return
	}
	h.forgetMarksLocked(app)
	if g == nil {
		delete(h.gates, app)
		return
	}
	if h.gates == nil {
		h.gates = map[string]v1alpha1.HealthGate{}
	}
	h.gates[app] = *g
}

// observe checks one telemetry batch of device against its app's gate.
// module is the module the device runs for the app (asked for only on a
// breach). It reports whether it marked a new breach.
func (h *health) observe(device string, t *protocol.Telemetry, at time.Time, module func() []byte) bool {
	h.mu.Lock()
	g, ok := h.gates[t.App]
	h.mu.Unlock()
	if !ok {
		return false
	}
	v, ok := t.Values[g.Metric]
	if !ok {
		return false
	}
	reason := breach(g, v)
	if reason == "" {
		return false
	}
	sha := module()
	h.mu.Lock()
	defer h.mu.Unlock()
	apps := h.marks[device]
	if m := apps[t.App]; m != nil && bytes.Equal(m.sha, sha) {
		return false
	}
	if apps == nil {
		if h.marks == nil {
			h.marks = map[string]map[string]*healthMark{}
		}
		apps = map[string]*healthMark{}
		h.marks[device] = apps
	}
	apps[t.App] = &healthMark{sha: sha, reason: reason, at: at}
	return true
}

// breach says how v breaks g, or "".
func breach(g v1alpha1.HealthGate, v float64) string {
	format := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	switch {
	case g.Max != nil && v > g.Max.AsApproximateFloat64():
		return fmt.Sprintf("health gate: %s = %s, above its max %s", g.Metric, format(v), g.Max)
	case g.Min != nil && v < g.Min.AsApproximateFloat64():
		return fmt.Sprintf("health gate: %s = %s, below its min %s", g.Metric, format(v), g.Min)
	}
	return ""
}

// mark returns the breach marked for device's app running module sha.
func (h *health) mark(device, app string, sha []byte) (reason string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.marks[device][app]; m != nil && bytes.Equal(m.sha, sha) {
		return m.reason, m.at
	}
	return "", time.Time{}
}

// forgetDevice drops the marks of a device that is gone.
func (h *health) forgetDevice(device string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.marks, device)
}

// forgetApp drops an app's gate and marks.
func (h *health) forgetApp(app string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.gates, app)
	h.forgetMarksLocked(app)
}

// forgetMarksLocked drops an app's marks. It walks the marked devices:
// breaches are rare, and so are changes of gates.
func (h *health) forgetMarksLocked(app string) {
	for device, apps := range h.marks {
		delete(apps, app)
		if len(apps) == 0 {
			delete(h.marks, device)
		}
	}
}

// unhealthy reports whether rep broke its health gate within its healthy
// window of gate after it started the version it runs.
func unhealthy(rep *v1alpha1.DeviceApp, gate time.Duration) bool {
	if rep.Unhealthy == "" || rep.UnhealthyAt == nil {
		return false
	}
	if rep.Since == nil {
		return true
	}
	// Since is stored to the second: the window starts at the next one, so
	// that a sample of the version before never counts.
	start := rep.Since.Add(time.Second)
	return !rep.UnhealthyAt.Time.Before(start) && !rep.UnhealthyAt.Time.After(rep.Since.Add(gate))
}

// stampUnhealthy copies the marks of device onto its apps' status.
func (h *health) stampUnhealthy(device string, apps []v1alpha1.DeviceApp, reported []protocol.AppInfo) {
	for i := range apps {
		for _, r := range reported {
			if r.App != apps[i].Name {
				continue
			}
			if reason, at := h.mark(device, r.App, r.SHA256); reason != "" {
				apps[i].Unhealthy, apps[i].UnhealthyAt = reason, &metav1.Time{Time: at.Truncate(time.Second)}
			}
		}
	}
}
