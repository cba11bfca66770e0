package tui

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
)

func TestSparkline(t *testing.T) {
	for _, tc := range []struct {
		in           []int64
		blocks, text string
	}{
		{nil, "", ""},
		{[]int64{500}, "▁", "0"},
		{[]int64{300, 300, 300}, "▁▁▁", "000"},
		{[]int64{100, 200, 300, 400, 500, 600, 700, 800}, "▁▂▃▄▅▆▇█", "01234567"},
		{[]int64{800, 100, 450, 100, 800}, "█▁▅▁█", "70407"},
		{[]int64{1000, 1010, 5000, 1020}, "▁▁█▁", "0070"},
	} {
		if got := sparkline(tc.in, false); got != tc.blocks {
			t.Errorf("sparkline(%v) = %q, want %q", tc.in, got, tc.blocks)
		}
		if got := sparkline(tc.in, true); got != tc.text {
			t.Errorf("sparkline(%v, ascii) = %q, want %q", tc.in, got, tc.text)
		}
	}
	if got, want := rttTrend([]int64{423, 1200, 800}, false), "▁█▄  last 0.80ms"; got != want {
		t.Errorf("rttTrend = %q, want %q", got, want)
	}
	if got, want := rttTrend([]int64{423, 1200, 800}, true), "073  last 0.80ms"; got != want {
		t.Errorf("rttTrend ascii = %q, want %q", got, want)
	}
	if got := rttTrend(nil, true); got != "-" {
		t.Errorf("rttTrend(nil) = %q, want -", got)
	}
}

// TestRTTHistory feeds device updates to the cache: a sample is kept when
// the round trip or the last-seen time changes, and only the last
// rttSamples are.
func TestRTTHistory(t *testing.T) {
	c := newCache()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rv := 0
	update := func(us int64, seen time.Time) {
		t.Helper()
		rv++
		d := v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: "dev-a", ResourceVersion: strconv.Itoa(rv)}}
		d.Status.RTTMicros = us
		lt := metav1.NewTime(seen)
		d.Status.LastSeen = &lt
		obj, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		c.apply(api.Event{Seq: uint64(rv), Type: api.EventResource, Kind: v1alpha1.KindDevice, Action: "MODIFIED", Name: "dev-a", Object: obj})
	}
	update(400, t0)
	update(400, t0)                  // nothing new
	update(0, t0.Add(time.Second))   // no round trip measured
	update(400, t0.Add(time.Second)) // same value, seen again
	update(500, t0.Add(time.Second)) // new value
	if got := c.live["dev-a"].rtt; len(got) != 3 || got[0] != 400 || got[1] != 400 || got[2] != 500 {
		t.Fatalf("rtt history = %v, want [400 400 500]", got)
	}
	for i := range 2 * rttSamples {
		update(int64(1000+i), t0.Add(time.Duration(10+i)*time.Second))
	}
	got := c.live["dev-a"].rtt
	if len(got) != rttSamples || got[0] != int64(1000+rttSamples) || got[len(got)-1] != int64(1000+2*rttSamples-1) {
		t.Fatalf("rtt history after %d updates = %v, want the last %d", 2*rttSamples, got, rttSamples)
	}

	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	d := *c.devices["dev-a"]
	out := renderDevice(newStylesFor(r), &d, c.live["dev-a"], t0, 80)
	if !strings.Contains(out, "RTT trend   000") || !strings.Contains(out, "last 1.08ms") {
		t.Errorf("device detail lacks the RTT trend:\n%s", out)
	}

	// A fresh list samples nobody; a device's history is then its
	// current round trip, and grows from there.
	d.Status.RTTMicros = 700
	c.reset([]v1alpha1.Device{d}, nil, nil, true)
	if len(c.live) != 0 {
		t.Errorf("a fresh list started %d histories, want none", len(c.live))
	}
	if got := rttHistory(c.devices["dev-a"], c.live["dev-a"]); len(got) != 1 || got[0] != 700 {
		t.Errorf("rttHistory after a fresh list = %v, want [700]", got)
	}
	update(800, t0.Add(time.Hour))
	if got := rttHistory(c.devices["dev-a"], c.live["dev-a"]); len(got) != 1 || got[0] != 800 {
		t.Errorf("rttHistory after an update = %v, want [800]", got)
	}
}

// TestRTTTrendStale: a device without a round trip now (its board
// restarted) shows its earlier samples as such, not as the current trend
// under "RTT -".
func TestRTTTrendStale(t *testing.T) {
	st := newStyles()
	dev := load[v1alpha1.Device](t, "device.json")
	now := dev.Status.LastSeen.Add(10 * time.Second)
	l := &deviceLive{rtt: []int64{900, 470, 470}}
	got := renderDevice(st, dev, l, now, 80)
	if !strings.Contains(got, "RTT trend   ") || strings.Contains(got, "RTT earlier") {
		t.Errorf("with a round trip now:\n%s", got)
	}
	dev.Status.RTTMicros = 0
	got = renderDevice(st, dev, l, now, 80)
	for _, want := range []string{"RTT -", "RTT earlier 700  was 0.47ms; none now"} {
		if !strings.Contains(got, want) {
			t.Errorf("without a round trip now, no %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "RTT trend") || strings.Contains(got, "last 0.47ms") {
		t.Errorf("without a round trip now, an RTT trend is shown as current:\n%s", got)
	}
}
