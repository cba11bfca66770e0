package daemon_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/gateway/pki"
)

// TestEmptyStoreRefused: a store that starts empty next to a CA that has
// issued device certificates means the fleet's records were lost; the
// daemon refuses to start, unless told to with AllowEmptyStore.
func TestEmptyStoreRefused(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.Open(filepath.Join(dir, "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.ProvisionDevice("lost"); err != nil {
		t.Fatal(err)
	}
	err = daemon.Run(context.Background(), daemon.Config{
		DataDir: dir, APIListen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0", GatewayName: "gw-test",
		DeviceBinary: deviceBinary, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err == nil || !strings.Contains(err.Error(), "--allow-empty-store") {
		t.Fatalf("Run on an empty store next to an issuing CA = %v, want a refusal naming --allow-empty-store", err)
	}
	in := startDaemon(t, dir, func(c *daemon.Config) { c.AllowEmptyStore = true })
	if _, err := in.c.ListDevices(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
}

// TestQuarantinedRecord: a stored device that no longer decodes does not
// stop the daemon; the rest of the fleet is served, a metric counts it,
// and deleting it through the API removes it.
func TestQuarantinedRecord(t *testing.T) {
	dir := t.TempDir()
	in := startDaemon(t, dir)
	ctx := t.Context()
	for _, name := range []string{"sound", "broken"} {
		if _, err := in.c.CreateDevice(ctx, &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"}}); err != nil {
			t.Fatal(err)
		}
	}
	in.stop()
	db, err := bolt.Open(filepath.Join(dir, "store", "wasmbed.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("devices")).Put([]byte("broken"), []byte(`{"metadata":`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	in = startDaemon(t, dir)
	if _, err := in.c.GetDevice(ctx, "sound"); err != nil {
		t.Errorf("the sound device is not served: %v", err)
	}
	if n := metricSum(t, in.c, "wasmbed_store_quarantined_records", ""); n != 1 {
		t.Errorf("wasmbed_store_quarantined_records = %v, want 1", n)
	}
	if _, err := in.c.GetDevice(ctx, "broken"); !errors.Is(err, &api.Error{Reason: api.ReasonNotFound}) {
		t.Errorf("get of the broken record = %v, want not found", err)
	}
	if err := in.c.DeleteDevice(ctx, "broken"); err != nil {
		t.Fatalf("delete of the broken record: %v", err)
	}
	if n := metricSum(t, in.c, "wasmbed_store_quarantined_records", ""); n != 0 {
		t.Errorf("wasmbed_store_quarantined_records after delete = %v, want 0", n)
	}
}
