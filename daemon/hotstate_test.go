package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/client"
)

// storeWrites sums wasmbed_store_writes_total for kind ("" for every
// kind) from the daemon's metrics.
func storeWrites(t *testing.T, c *client.Client, kind string) float64 {
	t.Helper()
	label := ""
	if kind != "" {
		label = `kind="` + kind + `"`
	}
	return metricSum(t, c, "wasmbed_store_writes_total", label)
}

// metricSum sums the samples of the metric name whose labels contain
// label ("" for all) from the daemon's metrics.
func metricSum(t *testing.T, c *client.Client, name, label string) float64 {
	t.Helper()
	text, err := c.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (!strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, " ")) || !strings.Contains(rest, label) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// TestHeartbeatsWriteNothing holds devices online, running an app, through
// many heartbeats and controller resyncs: round trips and last-seen times
// move in what the API serves, and the store is not written at all.
func TestHeartbeatsWriteNothing(t *testing.T) {
	ctx := context.Background()
	in := startDaemon(t, t.TempDir(), func(cfg *daemon.Config) {
		cfg.HeartbeatInterval = 100 * time.Millisecond
		cfg.Resync = 200 * time.Millisecond
	})
	c := in.c
	sensorOn(t, c, "hb-a", "hb-b")
	eventually(t, "sensor runs on both devices", func() (bool, error) {
		a, err := c.GetApplication(ctx, "sensor")
		return err == nil && a.Status.Phase == v1alpha1.AppRunning, err
	})

	before := map[string]float64{}
	for _, k := range []string{v1alpha1.KindDevice, v1alpha1.KindApplication} {
		before[k] = storeWrites(t, c, k)
	}
	var first *v1alpha1.Device
	eventually(t, "hb-a's served status has the session's round trip", func() (bool, error) {
		var err error
		first, err = c.GetDevice(ctx, "hb-a")
		return err == nil && first.Status.LastSeen != nil && first.Status.RTTMicros > 0, err
	})
	// Two seconds of last-seen time are twenty heartbeats a device and
	// ten resyncs.
	eventually(t, "hb-a's served last-seen time moves on by 2s", func() (bool, error) {
		d, err := c.GetDevice(ctx, "hb-a")
		return err == nil && d.Status.LastSeen.Sub(first.Status.LastSeen.Time) >= 2*time.Second, err
	})
	for k, n := range before {
		if got := storeWrites(t, c, k); got != n {
			t.Errorf("%s store writes went from %v to %v over heartbeats alone, want none", k, n, got)
		}
	}
}
