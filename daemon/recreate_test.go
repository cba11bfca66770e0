package daemon_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/firmware/loadgen"
	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// TestRecreatedDevice deletes a device and creates another of the same name
// at once, so that no reconcile sees it gone: the first device's session is
// cut and its certificate refused, because certificates are bound to the
// Device's UID, while the new device enrolls and holds a session. An
// emulated device re-created the same way comes back with a new identity.
// (Before, the old board stayed connected and its certificate was welcomed.)
func TestRecreatedDevice(t *testing.T) {
	dir := t.TempDir()
	in := startDaemon(t, dir)
	ctx := t.Context()
	info, err := in.c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, emulated bool) *v1alpha1.Device {
		t.Helper()
		spec := v1alpha1.DeviceSpec{Board: "mps2-an385"}
		if emulated {
			spec.Emulation = &v1alpha1.Emulation{Backend: "sim", Enabled: true}
		}
		d, err := in.c.CreateDevice(ctx, &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// enroll gives name a certificate through a token, as a device does.
	enroll := func(name string) (loadgen.Config, *loadgen.Device, *x509.Certificate) {
		t.Helper()
		token, err := in.c.CreateToken(ctx, name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(token.CA))
		cfg := loadgen.Config{Gateway: info.GatewayAddr, ServerName: "127.0.0.1", Pool: pool}
		certPEM, keyPEM, err := loadgen.Enroll(ctx, cfg, name, token.Token)
		if err != nil {
			t.Fatal(err)
		}
		dev, err := loadgen.NewDevice(name, certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return cfg, dev, dev.Cert.Leaf
	}
	online := func(name string) {
		t.Helper()
		eventually(t, name+" online", func() (bool, error) {
			d, err := in.c.GetDevice(ctx, name)
			return err == nil && d.Status.Phase == v1alpha1.DeviceOnline, nil
		})
	}

	first := create("phoenix", false)
	cfg, old, oldCert := enroll("phoenix")
	if uid := pki.DeviceUID(oldCert); uid != string(first.UID) {
		t.Fatalf("the certificate is bound to uid %q, want the device's %q", uid, first.UID)
	}
	oldCtx, stopOld := context.WithCancel(ctx)
	defer stopOld()
	oldRan := make(chan error, 1)
	go func() { oldRan <- old.Run(oldCtx, cfg) }()
	online("phoenix")

	if err := in.c.DeleteDevice(ctx, "phoenix"); err != nil {
		t.Fatal(err)
	}
	second := create("phoenix", false)
	if second.UID == first.UID {
		t.Fatal("the new device has the old one's UID")
	}
	select {
	case err := <-oldRan:
		if protocol.CodeOf(err) != protocol.CodeRevoked {
			t.Errorf("the first device's session ended with %v, want revoked", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the first device still holds a session after its name was taken by another")
	}
	cfg, fresh, _ := enroll("phoenix")
	freshCtx, stopFresh := context.WithCancel(ctx)
	freshRan := make(chan error, 1)
	go func() { freshRan <- fresh.Run(freshCtx, cfg) }()
	online("phoenix")
	stopFresh()
	if err := <-freshRan; err != nil {
		t.Errorf("the new device: %v", err)
	}
	// The old certificate is refused from now on.
	oldTLS := &tls.Certificate{Certificate: old.Cert.Certificate, PrivateKey: old.Cert.PrivateKey, Leaf: oldCert}
	tc, err := tls.Dial("tcp", info.GatewayAddr, &tls.Config{RootCAs: cfg.Pool, ServerName: "127.0.0.1",
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*oldTLS}})
	if err == nil {
		conn := protocol.NewConn(tc, protocol.ConnConfig{})
		err = conn.Serve(ctx, func(*protocol.Message) error { return nil })
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeRevoked {
			t.Errorf("a session with the first device's certificate ended with %v, want revoked", err)
		}
	}

	// An emulated device: its board gets an identity bound to the new UID.
	sim := create("ember", true)
	online("ember")
	if err := in.c.DeleteDevice(ctx, "ember"); err != nil {
		t.Fatal(err)
	}
	sim2 := create("ember", true)
	eventually(t, "ember back with a certificate of the new device", func() (bool, error) {
		d, err := in.c.GetDevice(ctx, "ember")
		if err != nil || d.Status.Phase != v1alpha1.DeviceOnline {
			return false, nil
		}
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "identities", "ember", "device.crt"),
			filepath.Join(dir, "identities", "ember", "device.key"))
		return err == nil && pki.DeviceUID(cert.Leaf) == string(sim2.UID) && sim2.UID != sim.UID, nil
	})
}
