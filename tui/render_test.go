package tui

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
)

// load reads a resource a real daemon answered, kept in testdata.
func load[T any](t testing.TB, file string) *T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

func mtime(t time.Time) *metav1.Time { return &metav1.Time{Time: t} }

func TestShortDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{59 * time.Second, "59s"},
		{time.Minute, "1m"},
		{59*time.Minute + 59*time.Second, "59m"},
		{time.Hour, "1h"},
		{47 * time.Hour, "47h"},
		{48 * time.Hour, "2d"},
		{364 * 24 * time.Hour, "364d"},
		{3 * 365 * 24 * time.Hour, "3y"},
	} {
		if got := shortDuration(tc.d); got != tc.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestRTT(t *testing.T) {
	for _, tc := range []struct {
		micros int64
		want   string
	}{
		{0, "-"}, {-5, "-"}, {423, "423µs"}, {1000, "1.0ms"}, {1250, "1.2ms"},
		{35_400, "35ms"}, {1_500_000, "1.5s"},
	} {
		if got := rtt(tc.micros); got != tc.want {
			t.Errorf("rtt(%d) = %q, want %q", tc.micros, got, tc.want)
		}
	}
}

func TestExpiry(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		at    *metav1.Time
		want  string
		state expiryState
	}{
		{nil, "-", expiryNone},
		{mtime(now.Add(30 * 24 * time.Hour)), "30d", expiryOK},
		{mtime(now.Add(3 * 24 * time.Hour)), "3d", expirySoon},
		{mtime(now.Add(-time.Second)), "expired", expiryExpired},
	} {
		got, state := expiry(tc.at, now)
		if got != tc.want || state != tc.state {
			t.Errorf("expiry(%v) = %q, %v; want %q, %v", tc.at, got, state, tc.want, tc.state)
		}
	}
}

func TestFit(t *testing.T) {
	st := newStyles()
	for _, tc := range []struct {
		s     string
		width int
		want  string
	}{
		{"abc", 5, "abc  "},
		{"abcdef", 4, "abc…"},
		{"", 2, "  "},
		{"µs", 3, "µs "},
		{st.ok.Render("Online"), 8, "Online  "},
		{"abc", 0, ""},
	} {
		if got := fit(tc.s, tc.width); got != tc.want {
			t.Errorf("fit(%q, %d) = %q, want %q", tc.s, tc.width, got, tc.want)
		}
	}
	if got := fitRight("7", 3); got != "  7" {
		t.Errorf("fitRight(7, 3) = %q", got)
	}
}

func TestLayoutColumns(t *testing.T) {
	titles := func(cols []column) string {
		var s []string
		for _, c := range cols {
			s = append(s, c.title)
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		width     int
		want      string
		nameWidth int
	}{
		{80, "NAME BOARD GATEWAY PHASE SEEN RTT APPS CERT", 13},
		{120, "NAME BOARD GATEWAY PHASE SEEN RTT APPS CERT", 53},
		{72, "NAME BOARD GATEWAY PHASE SEEN RTT APPS", 13},
		{60, "NAME BOARD GATEWAY PHASE SEEN APPS", 8},
		{30, "NAME PHASE", 15},
		{10, "NAME PHASE", 8}, // nothing more to drop: the row overflows and is cut
	} {
		cols := layoutColumns(deviceColumns, tc.width)
		if got := titles(cols); got != tc.want {
			t.Errorf("layoutColumns(devices, %d) = %s, want %s", tc.width, got, tc.want)
		}
		if cols[0].width != tc.nameWidth {
			t.Errorf("layoutColumns(devices, %d): NAME is %d wide, want %d", tc.width, cols[0].width, tc.nameWidth)
		}
	}
}

func TestDeviceRow(t *testing.T) {
	st := newStyles()
	dev := load[v1alpha1.Device](t, "device.json")
	now := dev.Status.LastSeen.Add(75 * time.Second)
	cols := layoutColumns(deviceColumns, 80)

	got := tableHeader(st, cols, colName, false) + "\n" + withGutter(st, deviceRow(st, dev, cols, now), true, 80)
	want := "" +
		"  NAME↑         BOARD            GATEWAY  PHASE         SEEN    RTT APPS    CERT\n" +
		"> dev-a         mps2-an385       gw-test  Online          1m  423µs    1     29d"
	if got != want {
		t.Errorf("device row:\n%s\nwant:\n%s", got, want)
	}

	// A device the daemon has only heard of: no status at all.
	bare := &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: "a-very-long-device-name"}, Spec: v1alpha1.DeviceSpec{Board: "nrf52840-dk"}}
	got = deviceRow(st, bare, cols, now)
	want = "a-very-long-… nrf52840-dk      -        Pending          -      -    0       -"
	if got != want {
		t.Errorf("bare device row:\n%q\nwant:\n%q", got, want)
	}

	// A failed app and a certificate about to expire.
	sick := dev.DeepCopy()
	sick.Status.Apps[0].State = "failed"
	sick.Status.CertificateExpiry = mtime(now.Add(2 * 24 * time.Hour))
	sick.Status.Phase = v1alpha1.DeviceOffline
	got = deviceRow(st, sick, cols, now)
	want = "dev-a         mps2-an385       gw-test  Offline         1m  423µs   1!      2d"
	if got != want {
		t.Errorf("sick device row:\n%q\nwant:\n%q", got, want)
	}
}

func TestCompareDevices(t *testing.T) {
	base := load[v1alpha1.Device](t, "device.json")
	mk := func(name string, seen time.Duration, rttMicros int64) *v1alpha1.Device {
		d := base.DeepCopy()
		d.Name = name
		d.Status.RTTMicros = rttMicros
		if seen < 0 {
			d.Status.LastSeen = nil
		} else {
			d.Status.LastSeen = mtime(base.Status.LastSeen.Add(-seen))
		}
		return d
	}
	devs := []*v1alpha1.Device{mk("c", time.Minute, 0), mk("a", -1, 900), mk("b", 0, 100)}
	order := func(by string) string {
		s := append([]*v1alpha1.Device(nil), devs...)
		cmp := compareDevices(by)
		for i := range s {
			for j := i + 1; j < len(s); j++ {
				if cmp(s[j], s[i]) < 0 {
					s[i], s[j] = s[j], s[i]
				}
			}
		}
		var names []string
		for _, d := range s {
			names = append(names, d.Name)
		}
		return strings.Join(names, "")
	}
	for _, tc := range []struct{ by, want string }{
		{colName, "abc"},
		{colSeen, "bca"}, // most recent first, never seen last
		{colRTT, "bac"},  // unknown round trip last
	} {
		if got := order(tc.by); got != tc.want {
			t.Errorf("sort by %s = %s, want %s", tc.by, got, tc.want)
		}
	}
}

func TestBarSegments(t *testing.T) {
	for _, tc := range []struct {
		running, transferring, failed, targeted, width int
		r, t, f                                        int
	}{
		{0, 0, 0, 0, 20, 0, 0, 0},
		{2, 0, 0, 2, 20, 20, 0, 0},
		{1, 0, 0, 2, 20, 10, 0, 0},
		{1, 1, 0, 4, 20, 5, 5, 0},
		{1, 0, 0, 1000, 20, 1, 0, 0}, // a small count still shows
		{998, 1, 1, 1000, 20, 18, 1, 1},
		{1, 1, 1, 3, 20, 8, 6, 6},
		{5, 5, 5, 3, 20, 20, 0, 0}, // counts beyond the target are clamped
		{1, 1, 1, 3, 2, 0, 1, 1},   // too narrow: the largest segments give way
	} {
		r, tr, f := barSegments(tc.running, tc.transferring, tc.failed, tc.targeted, tc.width)
		if r != tc.r || tr != tc.t || f != tc.f {
			t.Errorf("barSegments(%d, %d, %d, %d, %d) = %d, %d, %d; want %d, %d, %d",
				tc.running, tc.transferring, tc.failed, tc.targeted, tc.width, r, tr, f, tc.r, tc.t, tc.f)
		}
		if r+tr+f > max(tc.width, 0) {
			t.Errorf("barSegments(...) = %d cells, more than %d", r+tr+f, tc.width)
		}
	}
}

func TestAppRow(t *testing.T) {
	st := newStyles()
	app := load[v1alpha1.Application](t, "application.json")
	cols := layoutColumns(appColumns, 80)
	got := tableHeader(st, cols, "", false) + "\n" + withGutter(st, appRow(st, app, cols), false, 80)
	want := "" +
		"  NAME               VERSION   PHASE      ROLLOUT              RUNNING XFER FAIL\n" +
		"  sensor             1         Running    ████████████████████     2/2    0    0"
	if got != want {
		t.Errorf("app row:\n%s\nwant:\n%s", got, want)
	}

	mid := app.DeepCopy()
	mid.Status.Phase = v1alpha1.AppRollingOut
	mid.Status.Targeted, mid.Status.Running, mid.Status.Transferring, mid.Status.Failed = 4, 1, 1, 1
	got = appRow(st, mid, cols)
	want = "sensor             1         RollingOut █████▒▒▒▒▒xxxxx·····     1/4    1    1"
	if got != want {
		t.Errorf("rolling app row:\n%q\nwant:\n%q", got, want)
	}
}

// TestRolloutRow renders the rows the daemon serves for an application's
// devices, and one completed by a transfer the event stream reports.
func TestRolloutRow(t *testing.T) {
	st := newStyles()
	rows := load[v1alpha1.DeviceRolloutList](t, "application-devices.json").Items
	now := rows[0].Since.Add(90 * time.Second)
	cols := layoutColumns(rolloutColumns, 80)
	got := tableHeader(st, cols, "", false) + "\n" + withGutter(st, rolloutRow(st, rolloutLineOf(rows[0], nil, "sensor"), cols, now), false, 80)
	want := "" +
		"  DEVICE      VERSION  TARGET   STATE        PROGRESS SINCE REASON              \n" +
		"  dev-a       1        1        Running             -    1m                     "
	if got != want {
		t.Errorf("rollout row:\n%s\nwant:\n%s", got, want)
	}

	// Version 2 on its way to a device that runs 1 and, as stored, waits
	// for its batch: half of it is sent.
	r := rows[0]
	r.Target, r.State, r.Since = "2", "Pending", nil
	live := &deviceLive{apps: map[string]api.AppEvent{"sensor": {Name: "sensor", Version: "2", State: "transferring", Sent: 309, Total: 618}}}
	got = rolloutRow(st, rolloutLineOf(r, live, "sensor"), cols, now)
	want = "dev-a       1        2        Transferring      50%     -                     "
	if got != want {
		t.Errorf("transferring row:\n%q\nwant:\n%q", got, want)
	}
	// A transfer of another version, or of another app, is not this one.
	for _, ev := range []api.AppEvent{
		{Name: "sensor", Version: "3", Sent: 309, Total: 618},
		{Name: "sensor", Version: "2", State: "running"}, // the device's report ends it
	} {
		live.apps["sensor"] = ev
		if line := rolloutLineOf(r, live, "sensor"); line.State != "Pending" || line.progress != "" {
			t.Errorf("with event %+v the row is %s %q, want Pending without progress", ev, line.State, line.progress)
		}
	}
	if line := rolloutLineOf(r, live, "other"); line.State != "Pending" {
		t.Errorf("another app's row is %s", line.State)
	}

	// A device that runs nothing of the app yet.
	r = rows[1]
	r.Version, r.State, r.Reason, r.Since = "", "Waiting", "device is offline", nil
	got = rolloutRow(st, rolloutLineOf(r, nil, "sensor"), cols, now)
	want = "dev-b       -        1        Waiting             -     - device is offline   "
	if got != want {
		t.Errorf("waiting row:\n%q\nwant:\n%q", got, want)
	}
}

// TestAppHead renders the head of the application detail: a settled
// rollout as the daemon answered it, then an upgrade aborted back to the
// stable revision, and one with no stable revision to go back to.
func TestAppHead(t *testing.T) {
	st := newStyles()
	app := load[v1alpha1.Application](t, "application.json")
	now := app.Status.History[0].Time.Add(5 * time.Minute)
	got := renderAppHead(st, app, now, 80)
	want := "" +
		"  Phase     Running                                                             \n" +
		"  Ready     yes RolledOut: version 1 runs on all 2 devices                      \n" +
		"  Version   1  module 4240f31b250f 618B                                         \n" +
		"  Revision  current 1, stable 1                                                 \n" +
		"  Rollout   ██████████████████████████████ 2/2 running, 0 transferring, 0 failed\n" +
		"  Target    selector fleet=test                                                 \n" +
		"  Strategy  1 at a time, max failures 0, healthy after 1s                       \n" +
		"  History   1 on 2 devices (newest first)                                       \n"
	if got != want {
		t.Errorf("head:\n%s\nwant:\n%s", got, want)
	}

	aborted := app.DeepCopy()
	s := &aborted.Status
	aborted.Spec.Version = "2"
	s.Phase, s.CurrentRevision = v1alpha1.AppRolledBack, "1"
	s.Targeted, s.Running, s.Failed, s.Pending, s.Waiting = 4, 1, 1, 1, 1
	s.History = append(s.History, v1alpha1.Revision{Version: "2", Time: metav1.Time{Time: now.Add(-time.Minute)}, Devices: 1})
	s.History[0].Devices = 2
	reason := "1 of 4 devices failed version 2 (limit 0): dev-a: trap"
	s.Aborted = &v1alpha1.Abort{Generation: 2, Version: "2", RolledBackTo: "1", Reason: reason, Time: metav1.Time{Time: now.Add(-30 * time.Second)}}
	s.Conditions[1].Status, s.Conditions[1].Reason, s.Conditions[1].Message = metav1.ConditionFalse, "RollingBack", reason+"; returning to the stable version 1"
	got = renderAppHead(st, aborted, now, 80)
	for _, line := range []string{
		"  Ready     no RollingBack: 1 of 4 devices failed version 2 (limit 0): dev-a: t…",
		"  Revision  current 1, stable 1",
		"  Rollout   ███████xxxxxxx················ 1/4 running, 0 transferring, 1 failed",
		"            1 pending, 1 waiting (offline)",
		"  Aborted   v2 30s ago; back on v1",
		"            " + reason,
		"  History   2 on 1 device, 1 on 2 devices (newest first)",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("aborted head has no line %q:\n%s", line, got)
		}
	}

	s.Aborted.RolledBackTo, s.CurrentRevision, s.StableRevision = "", "", ""
	got = renderAppHead(st, aborted, now, 80)
	for _, line := range []string{"  Revision  current none, stable none yet", "  Aborted   v2 30s ago; no stable revision: stopped"} {
		if !strings.Contains(got, line) {
			t.Errorf("head aborted with no stable revision has no line %q:\n%s", line, got)
		}
	}
}

// TestFilterRollout filters an application's devices on their fields,
// the target version among them.
func TestFilterRollout(t *testing.T) {
	r := v1alpha1.DeviceRollout{Device: "dev-a", Version: "1", Target: "2", State: "Failed", Reason: "trap"}
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"dev-a", true},
		{"trap", true},
		{"version:1", true},
		{"version:2", false},
		{"target:2", true},
		{"target:1", false},
		{"state:failed", true},
		{"state:running", false},
		{"device:dev", false},
	} {
		if got := parseFilter(tc.filter).matchRollout(r); got != tc.want {
			t.Errorf("filter %q on %+v = %v, want %v", tc.filter, r, got, tc.want)
		}
	}
}

func TestGatewayRow(t *testing.T) {
	st := newStyles()
	gw := load[v1alpha1.Gateway](t, "gateway.json")
	now := gw.Status.LastHeartbeat.Add(3 * time.Second)
	cols := layoutColumns(gatewayColumns, 80)
	got := gatewayRow(st, gw, cols, now)
	want := "gw-test                127.0.0.1:36479       up           0        -        3s"
	if got != want {
		t.Errorf("gateway row:\n%q\nwant:\n%q", got, want)
	}
	gw.Status.Online = false
	if got := gatewayRow(st, gw, cols, now); !strings.Contains(got, " down ") {
		t.Errorf("offline gateway row %q does not say down", got)
	}
}

func TestFilter(t *testing.T) {
	dev := load[v1alpha1.Device](t, "device.json") // dev-a, mps2-an385, gw-test, Online, fleet=test room=lab
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"dev-a", true},
		{"DEV", true},
		{"mps2", true},
		{"gw-test", true},
		{"online", true},
		{"dev-b", false},
		{"room=lab", true},
		{"room=office", false},
		{"room==lab", true},
		{"room!=office", true},
		{"room!=lab", false},
		{"!tier", true},
		{"!room", false},
		{"room=lab mps2", true},
		{"room=lab nrf", false},
		{"fleet=", false},
		{"gateway:gw-test", true},
		{"gateway:GW-TEST", true},
		{"gateway:gw", false},
		{"Gateway:gw-test room=lab", true},
		{"name:dev", false},
		{"name:dev-a", true},
		{"board:mps2-an385", true},
		{"endpoint:x", false}, // no such field on a device
		{"online:", false},    // no field name: text
	} {
		if got := parseFilter(tc.filter).matchDevice(dev); got != tc.want {
			t.Errorf("filter %q on %s = %v, want %v", tc.filter, dev.Name, got, tc.want)
		}
	}
}

// resourceEvent makes the event the daemon publishes for obj.
func resourceEvent(t *testing.T, seq uint64, kind, action string, obj interface{ GetName() string }) api.Event {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return api.Event{Seq: seq, Type: api.EventResource, Kind: kind, Action: action, Name: obj.GetName(), Object: b}
}

func TestCacheApply(t *testing.T) {
	dev := load[v1alpha1.Device](t, "device.json") // resourceVersion 19
	app := load[v1alpha1.Application](t, "application.json")
	c := newCache()
	c.reset([]v1alpha1.Device{*dev}, []v1alpha1.Application{*app}, nil, true)

	// A replayed event older than the list does not undo it.
	old := dev.DeepCopy()
	old.ResourceVersion, old.Status.Phase = "7", v1alpha1.DeviceEnrolled
	if !c.apply(resourceEvent(t, 1, v1alpha1.KindDevice, "MODIFIED", old)) {
		t.Fatal("apply(event 1) reported no change")
	}
	if got := c.devices["dev-a"].Status.Phase; got != v1alpha1.DeviceOnline {
		t.Errorf("after a stale event phase = %s, want Online", got)
	}

	// A newer one does.
	newer := dev.DeepCopy()
	newer.ResourceVersion, newer.Status.Phase = "25", v1alpha1.DeviceOffline
	c.apply(resourceEvent(t, 2, v1alpha1.KindDevice, "MODIFIED", newer))
	if got := c.devices["dev-a"].Status.Phase; got != v1alpha1.DeviceOffline {
		t.Errorf("after a newer event phase = %s, want Offline", got)
	}

	// The same stored version with older session facts (an event
	// published before the heartbeats a later read saw) keeps the newer
	// facts; anything else of it still applies.
	fresh := newer.DeepCopy()
	fresh.Status.LastSeen = &metav1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	fresh.Status.RTTMicros = 900
	c.putDevice(fresh)
	replay := newer.DeepCopy()
	replay.Status.LastSeen = &metav1.Time{Time: fresh.Status.LastSeen.Add(-time.Minute)}
	replay.Status.RTTMicros = 0
	replay.Labels = map[string]string{"replayed": "yes"}
	c.apply(resourceEvent(t, 3, v1alpha1.KindDevice, "MODIFIED", replay))
	if got := c.devices["dev-a"]; got.Status.RTTMicros != 900 || !got.Status.LastSeen.Equal(fresh.Status.LastSeen) || got.Labels["replayed"] != "yes" {
		t.Errorf("after a replay of the same version: RTT %d µs, last seen %v, labels %v; want 900, %v, the replay's",
			got.Status.RTTMicros, got.Status.LastSeen, got.Labels, fresh.Status.LastSeen)
	}

	// An event seen already (a resumed stream) is skipped.
	if c.apply(resourceEvent(t, 2, v1alpha1.KindDevice, "MODIFIED", old)) {
		t.Error("apply(event 2 again) reported a change")
	}

	// Device events fill in the details.
	c.apply(api.Event{Seq: 4, Type: api.EventProgress, Device: "dev-a", App: &api.AppEvent{Name: "sensor", Version: "2", Sent: 100, Total: 400}})
	c.apply(api.Event{Seq: 5, Type: api.EventTelemetry, Device: "dev-a", App: &api.AppEvent{Name: "sensor"}, Values: map[string]float64{"temp": 21.5}})
	c.apply(api.Event{Seq: 6, Type: api.EventOffline, Device: "dev-a", Reason: "heartbeat timeout"})
	l := c.live["dev-a"]
	if l == nil || l.apps["sensor"].Sent != 100 || l.telem["sensor"].values["temp"] != 21.5 || l.online || l.reason != "heartbeat timeout" {
		t.Errorf("live details = %+v", l)
	}
	c.apply(api.Event{Seq: 7, Type: api.EventProgress, Device: "dev-a", App: &api.AppEvent{Name: "sensor", Version: "2", State: "verifying", Sent: 400}})
	// offline and verifying; not the transfer's bytes, telemetry nor
	// status updates.
	if n := len(l.recent); n != 2 || l.recent[0].Type != api.EventOffline || l.recent[1].App.State != "verifying" {
		t.Errorf("recent events of dev-a = %+v, want offline then verifying", l.recent)
	}
	if n := len(c.eventLog()); n != 7 {
		t.Errorf("event log = %d events, want 7", n)
	}

	// Deletion: a replayed delete older than the cached object is
	// skipped, a newer one removes it.
	gone := newer.DeepCopy()
	gone.ResourceVersion = "20"
	c.apply(resourceEvent(t, 7, v1alpha1.KindDevice, "DELETED", gone))
	if c.devices["dev-a"] == nil {
		t.Error("a stale delete removed dev-a")
	}
	gone.ResourceVersion = "30"
	c.apply(resourceEvent(t, 8, v1alpha1.KindDevice, "DELETED", gone))
	if c.devices["dev-a"] != nil || c.live["dev-a"] != nil {
		t.Error("dev-a is still cached after its deletion")
	}

	s := c.summary()
	if s.devTotal != 0 || s.appTotal != 1 || s.appRunning != 1 {
		t.Errorf("summary = %+v", s)
	}

	// A fresh daemon drops the history.
	c.reset(nil, nil, nil, true)
	if len(c.eventLog()) != 0 || c.lastSeq != 0 {
		t.Errorf("after a fresh reset: %d events, last seq %d", len(c.eventLog()), c.lastSeq)
	}
}

func TestCacheEventLogBounded(t *testing.T) {
	c := newCache()
	for i := 1; i <= 3*maxEvents; i++ {
		c.apply(api.Event{Seq: uint64(i), Type: api.EventOnline, Device: "d"})
	}
	log := c.eventLog()
	if len(log) != maxEvents || log[len(log)-1].Seq != 3*maxEvents {
		t.Errorf("event log holds %d events ending at %d, want %d ending at %d", len(log), log[len(log)-1].Seq, maxEvents, 3*maxEvents)
	}
	if n := len(c.live["d"].recent); n != recentPerDevice {
		t.Errorf("recent events = %d, want %d", n, recentPerDevice)
	}
}

func TestNewerVersion(t *testing.T) {
	for _, tc := range []struct {
		event, cached string
		want          bool
	}{
		{"20", "19", true}, {"19", "19", true}, {"9", "19", false}, {"abc", "19", true}, {"5", "", true},
	} {
		if got := newerVersion(tc.event, tc.cached); got != tc.want {
			t.Errorf("newerVersion(%q, %q) = %v, want %v", tc.event, tc.cached, got, tc.want)
		}
	}
}

func TestRenderHeader(t *testing.T) {
	st := newStyles()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	h := headerData{
		addr: "http://127.0.0.1:3001", info: api.Info{Store: "embedded"}, connected: true,
		sum:     summary{gwUp: 1, gwTotal: 1, devOnline: 2, devTotal: 3, appRunning: 1, appTotal: 2, appFail: 1},
		updated: now.Add(-4 * time.Second), now: now,
	}
	want := "" +
		"wasmbed http://127.0.0.1:3001 · store embedded                    updated 4s ago\n" +
		"gateways 1/1 up   devices 2/3 online   apps 1/2 running, 1 failed               "
	if got := renderHeader(st, h, 80); got != want {
		t.Errorf("header:\n%s\nwant:\n%s", got, want)
	}
	h.connected, h.updated = false, time.Time{}
	want = "" +
		"wasmbed http://127.0.0.1:3001 · store embedded                        connecting\n" +
		"waiting for the daemon                                                          "
	if got := renderHeader(st, h, 80); got != want {
		t.Errorf("header before connecting:\n%s\nwant:\n%s", got, want)
	}
}

func TestTopologyLines(t *testing.T) {
	st := newStyles()
	dev := load[v1alpha1.Device](t, "device.json")
	gw := load[v1alpha1.Gateway](t, "gateway.json")
	b := dev.DeepCopy()
	b.Name, b.Spec.Board, b.Status.Phase, b.Status.Apps = "dev-b", "nrf52840-dk", v1alpha1.DeviceOffline, nil
	b.Labels = map[string]string{"room": "office"}
	lonely := &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: "dev-c"}, Spec: v1alpha1.DeviceSpec{Board: "frdm-k64f"}}
	c := newCache()
	c.reset([]v1alpha1.Device{*dev, *b, *lonely}, nil, []v1alpha1.Gateway{*gw}, true)

	for _, tc := range []struct {
		name   string
		filter filter
		folded map[string]bool
		want   []string
	}{
		{"topology", filter{}, nil, []string{
			"▾ gw-test  up  1/2 devices online, 1/1 apps running",
			"├─ ▾ dev-a  Online  mps2-an385",
			"│  └─ sensor v1  running",
			"└─ dev-b  Offline  nrf52840-dk",
			"▾ (no gateway)  0/1 devices online, 0/0 apps running",
			"└─ dev-c  Pending  frdm-k64f",
		}},
		// Folded nodes keep their line, with their counts, and hide the rest.
		{"folded topology", filter{}, map[string]bool{"dev/dev-a": true, "gw/(no gateway)": true}, []string{
			"▾ gw-test  up  1/2 devices online, 1/1 apps running",
			"├─ ▸ dev-a  Online  mps2-an385",
			"└─ dev-b  Offline  nrf52840-dk",
			"▸ (no gateway)  0/1 devices online, 0/0 apps running",
		}},
		{"filtered topology", parseFilter("room=lab"), nil, []string{
			"▾ gw-test  up  1/1 devices online, 1/1 apps running",
			"└─ ▾ dev-a  Online  mps2-an385",
			"   └─ sensor v1  running",
		}},
	} {
		var got []string
		for _, l := range topologyLines(st, c, tc.filter, tc.folded) {
			got = append(got, l.text)
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

func TestEventDetail(t *testing.T) {
	for _, tc := range []struct {
		e             api.Event
		subject, want string
	}{
		{api.Event{Type: api.EventResource, Kind: "Device", Action: "MODIFIED", Name: "dev-a"}, "Device/dev-a", "modified"},
		{api.Event{Type: api.EventOnline, Device: "dev-a"}, "dev-a", "online"},
		{api.Event{Type: api.EventOffline, Device: "dev-a", Reason: "heartbeat timeout"}, "dev-a", "offline: heartbeat timeout"},
		{api.Event{Type: api.EventApp, Device: "dev-a", App: &api.AppEvent{Name: "sensor", Version: "2", State: "failed", Reason: "trap: unreachable"}}, "dev-a", "sensor v2 failed: trap: unreachable"},
		{api.Event{Type: api.EventProgress, Device: "dev-a", App: &api.AppEvent{Name: "sensor", Version: "2", Sent: 2048, Total: 8192}}, "dev-a", "sensor v2 transfer 2.0K/8.0K 25%"},
		{api.Event{Type: api.EventTelemetry, Device: "dev-a", App: &api.AppEvent{Name: "sensor"}, Values: map[string]float64{"temp": 21.5, "hum": 40}}, "dev-a", "sensor hum=40 temp=21.5"},
		{api.Event{Type: api.EventLog, Name: "sensor", Message: "rolled back to 1"}, "sensor", "rolled back to 1"},
	} {
		if got := eventSubject(tc.e); got != tc.subject {
			t.Errorf("eventSubject(%+v) = %q, want %q", tc.e, got, tc.subject)
		}
		if got := eventDetail(tc.e); got != tc.want {
			t.Errorf("eventDetail(%+v) = %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestRenderDevice(t *testing.T) {
	st := newStyles()
	dev := load[v1alpha1.Device](t, "device.json")
	now := dev.Status.LastSeen.Add(10 * time.Second)
	l := &deviceLive{
		apps:  map[string]api.AppEvent{"blink": {Name: "blink", Version: "3", Sent: 100, Total: 400}},
		telem: map[string]telemetry{"sensor": {values: map[string]float64{"temp": 21.5}, time: now.Add(-2 * time.Second)}},
	}
	got := renderDevice(st, dev, l, now, 80)
	for _, want := range []string{
		"Phase       Online",
		"Board       mps2-an385  emulated on sim Running",
		"Last seen   10s ago   RTT 423µs",
		"Certificate 29d left",
		"Labels      fleet=test,room=lab",
		"Ready       Ready Online: the device holds a gateway session",
		"wasm, wasi, ethernet",
		"3          transferring 25%",
		"1          running",
		"sensor  temp=21.5  2s ago",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("device detail lacks %q:\n%s", want, got)
		}
	}
}

func TestRenderHelp(t *testing.T) {
	st := newStyles()
	k := newGlobalKeys()
	sections := []helpSection{{title: "Global", keys: k.list()}, {title: "Views", keys: viewKeys()[:2]}}
	got := renderHelp(st, sections, 60, 20)
	want := "" +
		"Global\n" +
		"  :         views: jump to a view by name                   \n" +
		"  /         filter: text, k=v, field:v                      \n" +
		"  ?         help                                            \n" +
		"  esc       back, or clear the filter                       \n" +
		"  q         quit (also ctrl+c)                              \n" +
		"\n" +
		"Views\n" +
		"  :devices  devices table                                   \n" +
		"  :apps     applications and rollouts                       "
	if got != want {
		t.Errorf("help in one column:\n%s\nwant:\n%s", got, want)
	}
	// Too tall for 6 rows: two columns of 39.
	got = renderHelp(st, sections, 80, 6)
	want = "" +
		"Global                                  Views\n" +
		"  :    views: jump to a view by name      :devices  devices table              \n" +
		"  /    filter: text, k=v, field:v         :apps     applications and rollouts  \n" +
		"  ?    help                             \n" +
		"  esc  back, or clear the filter        \n" +
		"  q    quit (also ctrl+c)               "
	if got != want {
		t.Errorf("help in two columns:\n%s\nwant:\n%s", got, want)
	}
}

func TestResolveView(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"devices", "devices", true}, {"dev", "devices", true}, {"apps", "apps", true},
		{"applications", "apps", true}, {"gw", "gateways", true}, {"ga", "gateways", true},
		{"events", "events", true}, {"topo", "topology", true}, {" Tree ", "topology", true},
		{"", "", false}, {"x", "", false},
	} {
		got, ok := resolveView(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("resolveView(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestGateText(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	for _, tt := range []struct {
		g    *v1alpha1.HealthGate
		want string
	}{
		{nil, ""},
		{&v1alpha1.HealthGate{Metric: "humidity", Max: q("40")}, ", humidity ≤ 40"},
		{&v1alpha1.HealthGate{Metric: "temp", Min: q("-20")}, ", temp ≥ -20"},
		{&v1alpha1.HealthGate{Metric: "temp", Min: q("500m"), Max: q("80")}, ", temp in [500m, 80]"},
	} {
		if got := gateText(tt.g); got != tt.want {
			t.Errorf("gateText(%+v) = %q, want %q", tt.g, got, tt.want)
		}
	}
}
