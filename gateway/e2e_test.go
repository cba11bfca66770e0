package gateway_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// TestEndToEnd walks one device through its whole life on a real gateway:
// enrollment with a token, reconnection with the issued certificate,
// heartbeats, a chunked deploy that runs, telemetry and console coming back,
// an update, a rollback, a stop, and a restart that resumes its apps.
func TestEndToEnd(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := ctxT(t)
	token, err := tb.ca.CreateToken("dev-1", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ev := tb.events

	// Enroll with the token, then come online with the certificate.
	dev := tb.startDevice("dev-1", token, nil)
	online := ev.waitFor(t, 0, "dev-1 online", isType("dev-1", gateway.EventOnline))
	if online.Session.Board != "test-board" || online.Session.CertExpiry.IsZero() {
		t.Errorf("online session = %+v, want board and certificate expiry", online.Session)
	}
	if _, err := os.Stat(filepath.Join(dev.dir, "device.crt")); err != nil {
		t.Fatalf("enrollment left no certificate: %v", err)
	}
	t.Logf("dev-1 enrolled with a one-time token and is online over mutual TLS 1.3 (certificate %s until %s)",
		online.Session.CertSerial[:8], online.Session.CertExpiry.Format(time.DateOnly))

	// Heartbeats: the device reports the round trip it measured.
	waitUntil(t, "heartbeat RTT reported", func() bool {
		s, ok := tb.gw.Session("dev-1")
		return ok && s.RTT > 0
	})
	s, _ := tb.gw.Session("dev-1")
	t.Logf("heartbeats flowing, round trip %v", s.RTT)

	// Reconnect: cut the session; the device comes back with its certificate
	// (the token is spent, so it could not enroll again).
	m := ev.mark()
	tb.gw.Disconnect("dev-1", protocol.Errorf(protocol.CodeInternal, "test disconnect"))
	ev.waitFor(t, m, "dev-1 offline", isType("dev-1", gateway.EventOffline))
	ev.waitFor(t, m, "dev-1 online again", isType("dev-1", gateway.EventOnline))
	t.Logf("session cut; dev-1 reconnected with its certificate")

	// Deploy v1 in chunks (256-byte chunks: sensor.wasm takes several).
	v1 := module(t, "sensor.wasm", "sensor", "1")
	m = ev.mark()
	if err := tb.gw.Deploy(ctx, "dev-1", v1); err != nil {
		t.Fatalf("Deploy v1 = %v", err)
	}
	tel := ev.waitFor(t, m, "temperature telemetry", telemetryHas("dev-1", "temperature"))
	con := ev.waitFor(t, m, "sensor console line", consoleHas("dev-1", "sensor v1"))
	// Progress climbs chunk by chunk and ends at the device's report on
	// the module: none comes after it (the last chunk's ack may be handled
	// after the device reported, and then brings no progress).
	var sent []uint64
	reported := false
	for _, e := range ev.since(m) {
		switch {
		case e.Type == gateway.EventApp && e.App.App == "sensor" && e.App.Version == "1":
			reported = true
		case e.Type == gateway.EventProgress && e.App.State == protocol.StateTransferring:
			if reported {
				t.Errorf("progress %d/%d after the device reported on the module", e.Sent, e.Total)
			}
			if e.Total != uint64(len(v1.Data)) || (len(sent) > 0 && e.Sent <= sent[len(sent)-1]) {
				t.Errorf("progress %d/%d after %v", e.Sent, e.Total, sent)
			}
			sent = append(sent, e.Sent)
		}
	}
	if !reported || len(sent) < len(v1.Data)/256 {
		t.Errorf("transfer progress %v, report seen %v; want a progress event per chunk before the report", sent, reported)
	}
	t.Logf("sensor v1 (%d bytes) deployed in %d-byte chunks, verified and running: telemetry %v, console %q",
		len(v1.Data), 256, tel.Telemetry.Values, strings.TrimSpace(string(con.Console.Data)))

	// A WASI app: printf reaches the console; it runs once and exits.
	m = ev.mark()
	if err := tb.gw.Deploy(ctx, "dev-1", module(t, "hello.wasm", "hello", "1")); err != nil {
		t.Fatalf("Deploy hello = %v", err)
	}
	ev.waitFor(t, m, "hello output", consoleHas("dev-1", "hello from wasmbed"))
	ev.waitFor(t, m, "hello exited", appState("dev-1", "hello", "1", protocol.StateExited))
	t.Logf("hello (WASI, C) printed to the console and exited")

	// Deploying the same app+version+sha256 again installs nothing.
	m = ev.mark()
	if err := tb.gw.Deploy(ctx, "dev-1", v1); err != nil {
		t.Fatalf("Deploy v1 again = %v", err)
	}
	noTransfer(t, ev, m, "second deploy of the same module")

	// Update to v2: its new value arrives and v1 is kept for rollback.
	m = ev.mark()
	if err := tb.gw.Deploy(ctx, "dev-1", module(t, "sensor-v2.wasm", "sensor", "2")); err != nil {
		t.Fatalf("Deploy v2 = %v", err)
	}
	tel = ev.waitFor(t, m, "humidity telemetry from v2", telemetryHas("dev-1", "humidity"))
	t.Logf("updated to sensor v2: telemetry %v", tel.Telemetry.Values)
	if a := sessionApp(t, tb, "dev-1", "sensor"); a.Version != "2" || a.Previous != "1" {
		t.Errorf("after update sensor = %+v, want version 2 with previous 1", a)
	}

	// Rollback to v1: a deploy of the version the device holds, installed
	// without a transfer.
	m = ev.mark()
	if err := tb.gw.Deploy(ctx, "dev-1", v1); err != nil {
		t.Fatalf("Deploy v1 to roll back = %v", err)
	}
	ev.waitFor(t, m, "v1 running after rollback", appState("dev-1", "sensor", "1", protocol.StateRunning))
	ev.waitFor(t, m, "v1 console after rollback", consoleHas("dev-1", "sensor v1"))
	noTransfer(t, ev, m, "rollback to v1")
	t.Logf("rolled back to sensor v1 without a transfer")

	// The same module under a new version name, then under new limits:
	// relabelled in place, without a transfer; the new limits restart it.
	m = ev.mark()
	v1b := v1
	v1b.Version = "1b"
	if err := tb.gw.Deploy(ctx, "dev-1", v1b); err != nil {
		t.Fatalf("Deploy v1 as 1b = %v", err)
	}
	v1b.Limits = protocol.Limits{PeriodMS: 250}
	if err := tb.gw.Deploy(ctx, "dev-1", v1b); err != nil {
		t.Fatalf("Deploy 1b with new limits = %v", err)
	}
	noTransfer(t, ev, m, "relabel")
	if a := sessionApp(t, tb, "dev-1", "sensor"); a.Version != "1b" || a.Limits != v1b.Limits || a.State != protocol.StateRunning {
		t.Errorf("after relabel sensor = %+v, want 1b running under %+v", a, v1b.Limits)
	}
	t.Logf("relabelled v1 as 1b and applied new limits without a transfer")

	// Stop.
	m = ev.mark()
	if err := tb.gw.Stop(ctx, "dev-1", "sensor"); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	ev.waitFor(t, m, "sensor stopped", appState("dev-1", "sensor", "1b", protocol.StateStopped))
	t.Logf("sensor stopped")
	if err := tb.gw.Stop(ctx, "dev-1", "nope"); !errors.Is(err, &protocol.Error{Code: protocol.CodeUnknownApp}) {
		t.Errorf("Stop of an unknown app = %v, want unknown-app", err)
	}

	// Start it again, then restart the device: it resumes from its state dir.
	m = ev.mark()
	if err := tb.gw.Start(ctx, "dev-1", "sensor"); err != nil {
		t.Fatalf("Start = %v", err)
	}
	ev.waitFor(t, m, "sensor running again", appState("dev-1", "sensor", "1b", protocol.StateRunning))
	dev.stop()
	m = ev.mark()
	tb.startDeviceIn("dev-1", dev.dir, "", nil)
	back := ev.waitFor(t, m, "dev-1 online after restart", isType("dev-1", gateway.EventOnline))
	found := false
	for _, a := range back.Session.Apps {
		if a.App == "sensor" && a.Version == "1b" && a.State == protocol.StateRunning && a.Previous == "2" {
			found = true
		}
	}
	if !found {
		t.Errorf("after restart the device reports %+v, want sensor 1 running with 2 kept", back.Session.Apps)
	}
	ev.waitFor(t, m, "telemetry after restart", telemetryHas("dev-1", "temperature"))
	t.Logf("device restarted from its state directory and resumed sensor v1")

	// Remove: the device stops the app, deletes its modules and no longer
	// lists it; removing it again succeeds.
	m = ev.mark()
	for range 2 {
		if err := tb.gw.Remove(ctx, "dev-1", "sensor"); err != nil {
			t.Fatalf("Remove = %v", err)
		}
	}
	ev.waitFor(t, m, "sensor removed", func(e gateway.Event) bool {
		return e.Type == gateway.EventRemoved && e.Device == "dev-1" && e.App.App == "sensor"
	})
	if s, _ := tb.gw.Session("dev-1"); slices.ContainsFunc(s.Apps, func(a protocol.AppInfo) bool { return a.App == "sensor" }) {
		t.Errorf("after remove the session lists %+v", s.Apps)
	}
	if mods, _ := filepath.Glob(filepath.Join(dev.dir, "modules", "*.wasm")); len(mods) != 1 {
		t.Errorf("after remove the device holds modules %v, want hello's only", mods)
	}
	dev.stop()
	m = ev.mark()
	tb.startDeviceIn("dev-1", dev.dir, "", nil)
	back = ev.waitFor(t, m, "dev-1 online after remove", isType("dev-1", gateway.EventOnline))
	if len(back.Session.Apps) != 1 || back.Session.Apps[0].App != "hello" {
		t.Errorf("after remove and restart the device reports %+v, want hello only", back.Session.Apps)
	}
	t.Logf("sensor removed: not listed, its modules deleted, not back after a restart")
}

// noTransfer fails t if any module was sent in chunks since mark m.
func noTransfer(t *testing.T, ev *eventLog, m int, what string) {
	t.Helper()
	for _, e := range ev.since(m) {
		if e.Type == gateway.EventProgress && e.App.State == protocol.StateTransferring {
			t.Errorf("%s transferred a module: %+v", what, e)
		}
	}
}

// TestTransferResumes cuts the session in the middle of a module transfer
// and checks the transfer resumes from the device's last acked offset.
func TestTransferResumes(t *testing.T) {
	tb := newTestbed(t, func(c *gateway.Config) { c.ChunkSize = 1024 })
	ctx := ctxT(t)
	dir := tb.provision("dev-r")
	tb.startDeviceIn("dev-r", dir, "", nil)
	ev := tb.events
	ev.waitFor(t, 0, "dev-r online", isType("dev-r", gateway.EventOnline))

	cut := make(chan struct{})
	ev.setHook(func(e gateway.Event) {
		if e.Type == gateway.EventProgress && e.Sent >= 8<<10 {
			select {
			case <-cut:
			default:
				close(cut)
				go tb.gw.Disconnect("dev-r", protocol.Errorf(protocol.CodeInternal, "test cut"))
			}
		}
	})
	m := ev.mark()
	hello := module(t, "hello.wasm", "hello", "1")
	if err := tb.gw.Deploy(ctx, "dev-r", hello); err != nil {
		t.Fatalf("Deploy across a disconnect = %v", err)
	}
	ev.setHook(nil)
	off := ev.waitFor(t, m, "dev-r offline", isType("dev-r", gateway.EventOffline))
	var resumedAt uint64
	seen := false
	for _, e := range ev.since(m) {
		if seen && e.Type == gateway.EventProgress && e.App.State == protocol.StateTransferring {
			resumedAt = e.Sent
			break
		}
		if e.Time.Equal(off.Time) && e.Type == gateway.EventOffline {
			seen = true
		}
	}
	if resumedAt < 8<<10 || resumedAt >= uint64(len(hello.Data)) {
		t.Errorf("transfer after reconnect started at %d, want the acked offset (>= 8192 of %d)", resumedAt, len(hello.Data))
	}
	ev.waitFor(t, m, "hello output", consoleHas("dev-r", "hello from wasmbed"))
}

func sessionApp(t *testing.T, tb *testbed, device, app string) protocol.AppInfo {
	t.Helper()
	s, ok := tb.gw.Session(device)
	if !ok {
		t.Fatalf("%s has no session", device)
	}
	for _, a := range s.Apps {
		if a.App == app {
			return a
		}
	}
	t.Fatalf("%s reports no app %s: %+v", device, app, s.Apps)
	return protocol.AppInfo{}
}

// waitUntil polls cond until it holds, failing after waitLimit.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRenewal gives a device a certificate with less than a third of its
// lifetime left and checks it renews it over its session and uses the new
// one on its next connection.
func TestRenewal(t *testing.T) {
	tb := newTestbed(t, nil)
	tb.clock.Store(int64(-25 * 24 * time.Hour)) // 30-day certificate, 5 days left
	dir := tb.provision("dev-old")
	tb.clock.Store(0)
	old := readCert(t, dir)
	d := tb.startDeviceIn("dev-old", dir, "", nil)
	tb.events.waitFor(t, 0, "dev-old online", isType("dev-old", gateway.EventOnline))
	waitUntil(t, "certificate renewed", func() bool {
		c := readCert(t, dir)
		return c != nil && c.SerialNumber.Cmp(old.SerialNumber) != 0
	})
	renewed := readCert(t, dir)
	if !renewed.NotAfter.After(old.NotAfter) || renewed.Subject.CommonName != "dev-old" {
		t.Fatalf("renewed certificate %s until %v, want dev-old after %v", renewed.Subject.CommonName, renewed.NotAfter, old.NotAfter)
	}
	d.stop()
	m := tb.events.mark()
	tb.startDeviceIn("dev-old", dir, "", nil)
	e := tb.events.waitFor(t, m, "dev-old back", isType("dev-old", gateway.EventOnline))
	if e.Session.CertSerial != fmt.Sprintf("%x", renewed.SerialNumber) {
		t.Errorf("reconnected with serial %s, want the renewed %x", e.Session.CertSerial, renewed.SerialNumber)
	}
}

// readCert reads a state dir's certificate; nil while it is being replaced.
func readCert(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "device.crt"))
	if err != nil {
		return nil
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTransfersAreBounded: with MaxTransfers 1, modules deployed to three
// devices at once are sent one after the other: no device's transfer
// begins before the one under way has sent its last chunk.
func TestTransfersAreBounded(t *testing.T) {
	tb := newTestbed(t, func(c *gateway.Config) { c.MaxTransfers, c.ChunkSize = 1, 1024 })
	ctx := ctxT(t)
	names := []string{"tb-a", "tb-b", "tb-c"}
	for _, n := range names {
		tb.startDeviceIn(n, tb.provision(n), "", nil)
		tb.events.waitFor(t, 0, n+" online", isType(n, gateway.EventOnline))
	}
	m := tb.events.mark()
	mod := module(t, "hello.wasm", "hello", "1")
	errs := make(chan error, len(names))
	for _, n := range names {
		go func() { errs <- tb.gw.Deploy(ctx, n, mod) }()
	}
	for range names {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Each device's progress events span an interval of the log; with one
	// slot the intervals do not overlap. (A transfer's last progress event
	// may be left out when the device reports first, so the intervals are
	// what is compared, not the byte counts. The device's own "verifying"
	// step comes after the slot is given back, so only the transfer's
	// progress counts.)
	first, last := map[string]int{}, map[string]int{}
	for i, e := range tb.events.since(m) {
		if e.Type != gateway.EventProgress || e.App.State != protocol.StateTransferring {
			continue
		}
		if _, ok := first[e.Device]; !ok {
			first[e.Device] = i
		}
		last[e.Device] = i
	}
	for _, a := range names {
		for _, b := range names {
			if a != b && first[a] < first[b] && first[b] < last[a] {
				t.Errorf("%s's transfer began while %s's was under way", b, a)
			}
		}
	}
	if len(first) != len(names) {
		t.Errorf("transfers to %d devices, want %d", len(first), len(names))
	}
}

// TestForgottenAppIsNotSent: an app the owner deployed to a device while
// it was offline, then forgot (the application was deleted), is not sent
// when the device comes: another app deployed after it arrives alone.
func TestForgottenAppIsNotSent(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := ctxT(t)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := tb.gw.Deploy(short, "late", module(t, "hello.wasm", "deleted", "1"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deploy to an offline device = %v, want the deadline", err)
	}
	if got := tb.gw.Deliveries("late"); len(got) != 1 {
		t.Fatalf("deliveries before the app is forgotten = %+v, want one", got)
	}
	tb.gw.ForgetApp("deleted")
	if got := tb.gw.Deliveries("late"); len(got) != 0 {
		t.Fatalf("deliveries after the app is forgotten = %+v, want none", got)
	}
	m := tb.events.mark()
	tb.startDeviceIn("late", tb.provision("late"), "", nil)
	tb.events.waitFor(t, m, "late online", isType("late", gateway.EventOnline))
	if err := tb.gw.Deploy(ctx, "late", module(t, "hello.wasm", "kept", "1")); err != nil {
		t.Fatal(err)
	}
	for _, e := range tb.events.since(m) {
		if e.App != nil && e.App.App == "deleted" {
			t.Errorf("the forgotten app reached the device: %+v", e)
		}
	}
	if s, _ := tb.gw.Session("late"); len(s.Apps) != 1 || s.Apps[0].App != "kept" {
		t.Errorf("the device reports %+v, want the kept app alone", s.Apps)
	}
}

// TestHelloCompletesDeploy: a deploy waiting for an offline device ends
// as soon as the device says hello reporting the module running, with
// nothing sent. (After a daemon's kill -9 the owner deploys again before
// the device is back, and the deploy used to wait for its timeout.)
func TestHelloCompletesDeploy(t *testing.T) {
	tb := newTestbed(t, nil)
	mod := module(t, "hello.wasm", "hello", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	deployed := make(chan error, 1)
	go func() { deployed <- tb.gw.Deploy(ctx, "returning", mod) }()

	tc, err := tb.dial(tb.cert("returning"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	p := &benchPeer{tc: tc, fr: protocol.NewFrameReader(tc, 0)}
	r, err := p.roundTrip(protocol.TypeHello, &protocol.Hello{Device: "returning", MinVersion: 1, MaxVersion: 1,
		Apps: []protocol.AppInfo{{App: "hello", Version: "1", SHA256: mod.SHA256, Limits: mod.Limits, State: protocol.StateRunning}}})
	if err != nil || r.Type != protocol.TypeWelcome {
		t.Fatalf("hello: %v, %v", r, err)
	}
	select {
	case err := <-deployed:
		if err != nil {
			t.Fatalf("deploy = %v, want done by the hello", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the hello reporting the module running did not complete the deploy")
	}
}
