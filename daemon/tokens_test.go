package daemon_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/firmware/agent"
)

// enrollAgent runs a real device agent that enrolls at the gateway of the
// daemon c talks to with tok, until ctx ends or it fails.
func enrollAgent(ctx context.Context, t *testing.T, c *client.Client, tok string, device, caPEM string) <-chan error {
	t.Helper()
	return runAgent(ctx, t, c, filepath.Join(t.TempDir(), device), tok, device, caPEM)
}

// runAgent runs a real device agent with its state in dir at the gateway of
// the daemon c talks to, until ctx ends or it fails.
func runAgent(ctx context.Context, t *testing.T, c *client.Client, dir, tok string, device, caPEM string) <-chan error {
	t.Helper()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{
		Name: device, Board: "mps2-an385", Firmware: "test", Capabilities: []string{"wasm"},
		Gateway: info.GatewayAddr, StateDir: dir, CAPEM: []byte(caPEM), Token: tok,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return done
}

// waitPhase waits until the device's phase is phase.
func waitPhase(t *testing.T, c *client.Client, device string, phase v1alpha1.DevicePhase) {
	t.Helper()
	eventually(t, device+" "+string(phase), func() (bool, error) {
		d, err := c.GetDevice(context.Background(), device)
		return err == nil && d.Status.Phase == phase, err
	})
}

// TestEnrollmentTokens issues a token through the API and enrolls a real
// agent with it: the token lives on its Device (as its hash), enrolls once,
// and is refused the second time.
func TestEnrollmentTokens(t *testing.T) {
	in := startDaemon(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := in.c.CreateDevice(ctx, &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: "tok-1"}, Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"},
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := in.c.CreateToken(ctx, "tok-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d, err := in.c.GetDevice(ctx, "tok-1")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok.Token))
	ann := d.Annotations[daemon.TokensAnnotation]
	if !strings.Contains(ann, hex.EncodeToString(sum[:])) || strings.Contains(ann, tok.Token) {
		t.Errorf("annotation %s = %q, want the token's hash and not its text", daemon.TokensAnnotation, ann)
	}

	first := enrollAgent(ctx, t, in.c, tok.Token, "tok-1", tok.CA)
	waitPhase(t, in.c, "tok-1", v1alpha1.DeviceOnline)

	// The same token again, from a device without a certificate.
	err = <-enrollAgent(ctx, t, in.c, tok.Token, "tok-1", tok.CA)
	if err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("second enrollment with one token = %v, want already used", err)
	}
	select {
	case err := <-first:
		t.Errorf("the enrolled agent ended: %v", err)
	default:
	}
}

// TestUnregisteredDeviceRefused runs a second daemon that shares the first's
// CA but not its store: a device enrolled at the first holds a certificate
// the second's authority accepts, and is refused there because no Device
// of that name is registered.
func TestUnregisteredDeviceRefused(t *testing.T) {
	dirA := t.TempDir()
	a := startDaemon(t, dirA)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := a.c.CreateDevice(ctx, &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: "adm-1"}, Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"},
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := a.c.CreateToken(ctx, "adm-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "adm-1")
	actx, stopAgent := context.WithCancel(ctx)
	done := runAgent(actx, t, a.c, state, tok.Token, "adm-1", tok.CA)
	waitPhase(t, a.c, "adm-1", v1alpha1.DeviceOnline)
	stopAgent()
	<-done

	b := startDaemon(t, t.TempDir(), func(c *daemon.Config) {
		c.GatewayName, c.CADir = "gw-other", filepath.Join(dirA, "pki")
	})
	err = <-runAgent(ctx, t, b.c, state, "", "adm-1", tok.CA)
	if err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("agent at a daemon without its Device = %v, want refused as not registered", err)
	}
}
