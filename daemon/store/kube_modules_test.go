//go:build linux

package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/kubetest"
)

// TestKubeConfigMapModules runs the Kubernetes store's default modules,
// ConfigMaps, against a real kube-apiserver, as the wasmbedd
// ServiceAccount with the RBAC of deploy/kubernetes: content-addressed,
// idempotent, size-checked, verified on read, deleted.
func TestKubeConfigMapModules(t *testing.T) {
	sa := kubetest.ServiceAccount("wasmbed", "wasmbedd")
	c := kubetest.Start(t, sa)
	deploy := filepath.Join("..", "..", "deploy", "kubernetes")
	kubetest.Apply(t, c.Admin(), filepath.Join(deploy, "namespace.yaml"))
	kubetest.InstallCRDs(t, c.Admin(), filepath.Join("..", "..", "crds"))
	kubetest.Apply(t, c.Admin(), filepath.Join(deploy, "rbac.yaml"))
	c.WaitAllowed(t, sa, "list", "wasmbed.io", "devices", "wasmbed")
	k, err := OpenKubernetes(c.Config(sa), "wasmbed", KubeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx := t.Context()
	mods := k.Modules()

	a := []byte("\x00asm\x01\x00\x00\x00module a")
	infoA, err := mods.Put(ctx, bytes.NewReader(a), 1<<20)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if infoA.SHA256 != sum(a) || infoA.Size != int64(len(a)) || infoA.Added.IsZero() {
		t.Errorf("Put = %+v", infoA)
	}
	// The same bytes, several times at once: one module.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if again, err := mods.Put(ctx, bytes.NewReader(a), 1<<20); err != nil || again.SHA256 != infoA.SHA256 {
				t.Errorf("Put again = %+v, %v", again, err)
			}
		}()
	}
	wg.Wait()
	if got, err := mods.Get(ctx, infoA.SHA256); err != nil || !bytes.Equal(got, a) {
		t.Errorf("Get = %q, %v", got, err)
	}
	if st, err := mods.Stat(ctx, infoA.SHA256); err != nil || st.Size != infoA.Size {
		t.Errorf("Stat = %+v, %v", st, err)
	}

	big := bytes.Repeat([]byte{1}, MaxConfigMapModuleSize)
	infoBig, err := mods.Put(ctx, bytes.NewReader(big), 4<<20)
	if err != nil {
		t.Fatalf("Put of the largest module a ConfigMap holds: %v", err)
	}
	if _, err := mods.Put(ctx, bytes.NewReader(append(big, 2)), 4<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Put of one byte more = %v, want ErrTooLarge", err)
	}
	if _, err := mods.Put(ctx, bytes.NewReader(a), int64(len(a)-1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Put over the caller's max = %v, want ErrTooLarge", err)
	}
	if list, err := mods.List(ctx); err != nil || len(list) != 2 {
		t.Errorf("List = %+v, %v; want two modules", list, err)
	}

	// Bytes changed behind the store's back are refused on read.
	cms := corev1client.NewForConfigOrDie(c.Admin()).ConfigMaps("wasmbed")
	cm, err := cms.Get(ctx, moduleConfigMapName(infoA.SHA256), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cm.ResourceVersion, cm.UID, cm.ManagedFields = "", "", nil
	cm.BinaryData[moduleDataKey] = []byte("something else")
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mods.Get(ctx, infoA.SHA256); err == nil {
		t.Error("Get of a module whose bytes do not match its sha256 succeeded")
	}

	if err := mods.Delete(ctx, infoBig.SHA256); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := mods.Get(ctx, infoBig.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := mods.Delete(ctx, infoBig.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
}

// BenchmarkKubeUpdateStatus measures status writes through the
// Kubernetes store against a real kube-apiserver (status subresource,
// optimistic concurrency), 8 writers at once, each on a device of its
// own.
func BenchmarkKubeUpdateStatus(b *testing.B) {
	c := kubetest.Start(b)
	kubetest.Apply(b, c.Admin(), filepath.Join("..", "..", "deploy", "kubernetes", "namespace.yaml"))
	kubetest.InstallCRDs(b, c.Admin(), filepath.Join("..", "..", "crds"))
	k, err := OpenKubernetes(c.Admin(), "wasmbed", KubeOptions{Modules: openTest(b).Modules()})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	ctx := b.Context()
	var next atomic.Int64
	b.SetParallelism(4) // 8 writers on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d, err := k.Devices().Create(ctx, &v1alpha1.Device{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w-%d", next.Add(1))},
			Spec:       v1alpha1.DeviceSpec{Board: "mps2-an385"},
		})
		if err != nil {
			b.Error(err)
			return
		}
		for i := 0; pb.Next(); i++ {
			d.Status.RTTMicros = int64(i)
			if d, err = k.Devices().UpdateStatus(ctx, d); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}
