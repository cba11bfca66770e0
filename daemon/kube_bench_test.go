//go:build linux

package daemon_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
)

// BenchmarkKubeReconcile measures the Device controller on the
// Kubernetes store against a real kube-apiserver: batches of devices
// created with client-go (8 clients at once) until the daemon has
// reconciled each (placed on its gateway, status written for the
// generation). devices/s is the end-to-end rate.
func BenchmarkKubeReconcile(b *testing.B) {
	const batch = 200
	c, dyn, caDir := kubeCluster(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan net.Addr, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{
			DataDir: b.TempDir(), APIListen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0", GatewayName: "gw-a", DeviceBinary: deviceBinary,
			Store: daemon.StoreKubernetes, Kube: c.Config(serviceAccount), Namespace: kubeNS, CADir: caDir,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(a, _ net.Addr) { ready <- a },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("daemon: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("daemon: %v", err)
		}
	}()
	devices := dyn.Resource(devicesGVR).Namespace(kubeNS)

	b.ResetTimer()
	for i := range b.N {
		names := make(chan string)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range names {
					d := &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"batch": fmt.Sprint(i)}},
						Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"}}
					kubeCreate(b, dyn, devicesGVR, v1alpha1.KindDevice, d)
				}
			}()
		}
		for j := range batch {
			names <- fmt.Sprintf("r-%d-%d", i, j)
		}
		close(names)
		wg.Wait()
		deadline := time.Now().Add(5 * time.Minute)
		for {
			list, err := devices.List(context.Background(), metav1.ListOptions{LabelSelector: fmt.Sprintf("batch=%d", i)})
			if err != nil {
				b.Fatal(err)
			}
			done := 0
			for _, u := range list.Items {
				var d v1alpha1.Device
				if err := fromUnstructured(u.Object, &d); err == nil && d.Status.Gateway == "gw-a" && d.Status.ObservedGeneration == d.Generation {
					done++
				}
			}
			if done == batch {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("batch %d: %d of %d reconciled after 5 minutes", i, done, batch)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "devices/s")
}
