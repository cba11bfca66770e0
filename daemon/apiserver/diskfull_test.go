package apiserver_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
)

// TestDiskFull runs the API over a store on a real file system that
// fills up (a 2 MiB tmpfs, which needs root, as CI runs): writes that do
// not fit are answered 507 with the reason, and what was stored before
// is still served.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", disk).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	h := newHarnessIn(t, disk)
	ctx := t.Context()
	if _, err := h.c.CreateDevice(ctx, &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: "before"},
		Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"}}); err != nil {
		t.Fatal(err)
	}
	var full error
	for i := range 8 {
		mod := append([]byte("\x00asm\x01\x00\x00\x00\x00\x84\x80\x20\x03pad"), bytes.Repeat([]byte{byte(i)}, 512<<10)...)
		if _, err := h.c.UploadModule(ctx, bytes.NewReader(mod)); err != nil {
			full = err
			break
		}
	}
	var ae *api.Error
	if !errors.As(full, &ae) || ae.Status != 507 || ae.Reason != api.ReasonInsufficientStorage {
		t.Fatalf("upload to a full disk = %v, want 507 InsufficientStorage", full)
	}
	if _, err := h.c.GetDevice(ctx, "before"); err != nil {
		t.Errorf("a device stored before the disk filled: %v", err)
	}
}
