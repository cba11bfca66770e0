package loadgen_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net"
	"testing"
	"time"

	"wasmbed.io/wasmbed/firmware/loadgen"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// TestFleet enrolls simulated devices with tokens at a real gateway on
// loopback, holds their sessions from two source addresses, and deploys
// a module to one: it arrives in chunks, matches its sha256 and runs.
func TestFleet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ca, err := pki.Open(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerCertificate([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Authority: ca, Certificate: cert, HeartbeatInterval: 50 * time.Millisecond, ChunkSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, ln) }()

	stats := &loadgen.Stats{}
	cfg := loadgen.Config{Gateway: ln.Addr().String(), ServerName: "127.0.0.1", Pool: ca.Pool(), Stats: stats}
	dir := t.TempDir()
	const n = 4
	var devices []*loadgen.Device
	for i := range n {
		name := loadgen.Name("t", i)
		token, err := ca.CreateToken(name, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.Source = loadgen.SourceFor(i, 2)
		certPEM, keyPEM, err := loadgen.Enroll(ctx, c, name, token)
		if err != nil {
			t.Fatalf("Enroll(%s) = %v", name, err)
		}
		if err := loadgen.SaveIdentity(dir, name, certPEM, keyPEM); err != nil {
			t.Fatal(err)
		}
		d, err := loadgen.LoadDevice(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		devices = append(devices, d)
	}
	held := make(chan error, 1)
	go func() {
		_, err := loadgen.Hold(ctx, cfg, devices, func(i int) net.IP { return loadgen.SourceFor(i, 2) })
		held <- err
	}()
	waitUntil(t, "every device online and heartbeating", func() bool {
		return len(gw.Sessions()) == n && stats.Heartbeats.Load() >= 2*n
	})
	for _, s := range gw.Sessions() {
		if host, _, _ := net.SplitHostPort(s.Remote); host != "127.0.0.2" && host != "127.0.0.3" {
			t.Errorf("%s dialled from %s, want 127.0.0.2 or 127.0.0.3", s.Device, s.Remote)
		}
	}

	module := bytes.Repeat([]byte("wasm"), 2500) // ten chunks
	sum := sha256.Sum256(module)
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	if err := gw.Deploy(dctx, loadgen.Name("t", 1), gateway.Module{App: "app", Version: "1", SHA256: sum[:], Data: module}); err != nil {
		t.Fatalf("Deploy = %v", err)
	}
	if got := stats.Installed.Load(); got != 1 {
		t.Errorf("installed %d modules, want 1", got)
	}
	s, _ := gw.Session(loadgen.Name("t", 1))
	if len(s.Apps) != 1 || s.Apps[0].State != protocol.StateRunning || !bytes.Equal(s.Apps[0].SHA256, sum[:]) {
		t.Errorf("the device reports %+v, want app running the module", s.Apps)
	}

	cancel()
	if err := <-held; err != nil {
		t.Errorf("Hold = %v", err)
	}
	<-served
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
