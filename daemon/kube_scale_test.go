package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
)

// kubeFleet is how many Devices TestKubeFleetScale stores.
const kubeFleet = 10000

// TestKubeFleetScale runs the daemon on a real kube-apiserver holding
// 10,000 Devices and one Application targeting them all: the
// Application's status is written and counts every device, its object
// stays small, and once the fleet has settled the daemon writes at most
// 5 objects a second (the budget of docs/benchmarks.md).
func TestKubeFleetScale(t *testing.T) {
	c, _, caDir := kubeCluster(t)
	admin := rest.CopyConfig(c.Admin())
	admin.QPS, admin.Burst = -1, 0 // the test's own writes are not what is measured
	dyn, err := dynamic.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				d := &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("scale-%05d", i), Labels: map[string]string{"fleet": "scale"}},
					Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"}}
				kubeCreate(t, dyn, devicesGVR, v1alpha1.KindDevice, d)
			}
		})
	}
	for i := range kubeFleet {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("%d devices created", kubeFleet)

	in := startDaemon(t, t.TempDir(), func(cfg *daemon.Config) {
		cfg.Store, cfg.Namespace, cfg.CADir = daemon.StoreKubernetes, kubeNS, caDir
		cfg.Kube = rest.CopyConfig(c.Config(serviceAccount))
		cfg.Kube.QPS = -1 // the first pass writes every device's status once; steady state is what is measured
		cfg.GatewayName = "gw-scale"
		cfg.Lease = daemon.LeaseTimes{Duration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond}
	})
	ctx := context.Background()
	mod, err := in.c.UploadModule(ctx, bytes.NewReader(readApp(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "sensor"},
		Spec: v1alpha1.ApplicationSpec{Module: v1alpha1.ModuleRef{SHA256: mod.SHA256}, Version: "1",
			Target: v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "scale"}}}},
	}); err != nil {
		t.Fatal(err)
	}
	settled := `wasmbed_devices{phase="Pending"} ` + strconv.Itoa(kubeFleet)
	eventuallyWithin(t, 10*time.Minute, "every device reconciled and the application counting them", func() (bool, error) {
		m, err := in.c.Metrics(ctx)
		if err != nil {
			return false, err
		}
		var a v1alpha1.Application
		if err := kubeGet(dyn, applicationsGVR, "sensor", &a); err != nil {
			return false, err
		}
		i := strings.Index(string(m), "wasmbed_devices{")
		return strings.Contains(string(m), settled) && a.Status.Targeted == kubeFleet && a.Status.Waiting == kubeFleet,
			fmt.Errorf("application targets %d, %d waiting; %.60q", a.Status.Targeted, a.Status.Waiting, string(m)[max(i, 0):])
	})
	t.Logf("settled")
	var a v1alpha1.Application
	if err := kubeGet(dyn, applicationsGVR, "sensor", &a); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the application of %d devices: %d bytes of JSON", kubeFleet, len(b))
	if len(b) > 4096 {
		t.Errorf("the application of %d devices is %d bytes of JSON, want at most 4 KiB", kubeFleet, len(b))
	}

	// Steady state: 10 seconds of nothing happening.
	before := storeWrites(t, in.c, "")
	time.Sleep(10 * time.Second)
	n := storeWrites(t, in.c, "") - before
	t.Logf("%.0f store writes in 10 s at rest", n)
	if n > 50 {
		t.Errorf("%.0f store writes in 10 s of a settled fleet of %d, want at most 50 (5/s)", n, kubeFleet)
	}
}
