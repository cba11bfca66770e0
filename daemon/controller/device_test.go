package controller

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// TestRefreshAfter: each device refreshes its stored last-seen time at an
// offset of its own in [lastSeenRefresh/2, lastSeenRefresh), so that a
// fleet that came online together spreads its writes over half an hour.
func TestRefreshAfter(t *testing.T) {
	const n = 10000
	buckets := map[time.Duration]int{}
	for i := range n {
		d := refreshAfter(fmt.Sprintf("dev-%05d", i))
		if d < lastSeenRefresh/2 || d >= lastSeenRefresh {
			t.Fatalf("refreshAfter(dev-%05d) = %v, outside [%v, %v)", i, d, lastSeenRefresh/2, lastSeenRefresh)
		}
		buckets[d/time.Minute]++
	}
	// 30 one-minute buckets of about 333 devices each: none empty, none
	// holding more than twice its share.
	for m := lastSeenRefresh / 2 / time.Minute; m < lastSeenRefresh/time.Minute; m++ {
		if c := buckets[m]; c == 0 || c > 2*n/30 {
			t.Errorf("minute %d holds %d of %d devices' refreshes", m, c, n)
		}
	}
}

// TestDeviceApps: a device's stored apps are what it reports, with a
// delivery of another version as the target, a refused delivery as a
// failure, and the time of the last change kept while nothing changes.
func TestDeviceApps(t *testing.T) {
	t0, t1 := time.Unix(1700000000, 0), time.Unix(1700000100, 0)
	reported := []protocol.AppInfo{
		{App: "b", Version: "1", SHA256: []byte{0xaa}, State: protocol.StateRunning},
		{App: "a", Version: "3", SHA256: []byte{0xcc}, State: protocol.StateRunning},
		{App: "e", Version: "1", SHA256: []byte{0xff}, State: protocol.StateRunning, Limits: protocol.Limits{PeriodMS: 10}},
	}
	deliveries := []gateway.Delivery{
		{App: "a", Version: "3", SHA256: []byte{0xcc}},                      // delivered
		{App: "e", Version: "1b", SHA256: []byte{0xff}},                     // relabel on its way
		{App: "b", Version: "2", SHA256: []byte{0xbb}},                      // on its way
		{App: "c", Version: "1", SHA256: []byte{0xdd}, Failed: "too-large"}, // refused, runs nothing
		{App: "d", Version: "1", SHA256: []byte{0xee}},                      // on its way, not reported yet
	}
	got := deviceApps(nil, reported, deliveries, t0, t0)
	want := []v1alpha1.DeviceApp{
		{Name: "a", Version: "3", SHA256: "cc", State: "running"},
		{Name: "b", Version: "1", SHA256: "aa", State: "running", Target: "2"},
		{Name: "c", State: "failed", Reason: "too-large", Target: "1", TargetFailed: "too-large"},
		{Name: "e", Version: "1", SHA256: "ff", State: "running", Limits: &v1alpha1.Limits{PeriodMillis: 10}, Target: "1b"},
	}
	for i := range want {
		want[i].Since = &metav1.Time{Time: t0}
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("deviceApps = %+v\nwant %+v", got, want)
	}
	reported[1].State = protocol.StateFailed
	again := deviceApps(got, reported, deliveries, t1, t0)
	for _, a := range again {
		if changed := a.Name == "a"; a.Since.Time.Equal(t1) != changed {
			t.Errorf("app %s since %v after only a changed at %v", a.Name, a.Since.Time, t1)
		}
	}
	// The device was away and came back at t2: no app is known to have
	// run in between, so each one's clock starts again.
	t2 := t1.Add(time.Minute)
	for _, a := range deviceApps(again, reported, deliveries, t2.Add(time.Second), t2) {
		if !a.Since.Time.Equal(t2) {
			t.Errorf("app %s since %v after a session began at %v", a.Name, a.Since.Time, t2)
		}
	}
}
