package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
)

// DefaultDemoModule is the app the demo rolls out, relative to the
// repository root where `make run` starts the daemon.
const DefaultDemoModule = "testdata/apps/sensor.wasm"

// demoDevices are the emulated boards of the demo: three of the catalog's
// as wasmbed-device processes, and a microcontroller running the Wasmbed
// firmware in QEMU when this host can run one.
var demoDevices = []struct{ name, board, backend string }{
	{"demo-mps2", "mps2-an385", "sim"},
	{"demo-stm32f7", "stm32f746g-disco", "sim"},
	{"demo-nrf52", "nrf52840-dk", "sim"},
	{"demo-mcu", "mps2-an385", "qemu"},
}

// seedDemo creates the demo's devices and application unless they exist,
// so that a restarted demo picks up where it was.
func (d *daemon) seedDemo(ctx context.Context) error {
	path := d.cfg.DemoModule
	if path == "" {
		path = DefaultDemoModule
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("demo module: %w (run the demo from the repository root or pass --demo-module)", err)
	}
	mod, err := d.store.Modules().Put(ctx, bytes.NewReader(wasm), int64(len(wasm)))
	if err != nil {
		return fmt.Errorf("demo module: %w", err)
	}
	labels := map[string]string{"demo": "true"}
	for _, dd := range demoDevices {
		if a, ok := d.backends[dd.backend].(interface{ Available() error }); ok {
			if err := a.Available(); err != nil {
				d.log.Info("demo: no "+dd.name, "err", err)
				continue
			}
		}
		_, err := d.store.Devices().Create(ctx, &v1alpha1.Device{
			ObjectMeta: metav1.ObjectMeta{Name: dd.name, Labels: labels},
			Spec: v1alpha1.DeviceSpec{Board: dd.board, Gateway: d.cfg.GatewayName,
				Emulation: &v1alpha1.Emulation{Backend: dd.backend, Enabled: true}},
		})
		if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("demo device %s: %w", dd.name, err)
		}
	}
	_, err = d.store.Applications().Create(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "sensor"},
		Spec: v1alpha1.ApplicationSpec{
			Module:  v1alpha1.ModuleRef{SHA256: mod.SHA256, Size: mod.Size},
			Version: "1",
			Target:  v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: labels}},
			Rollout: v1alpha1.Rollout{BatchSize: 1, HealthySeconds: 2},
			Limits:  v1alpha1.Limits{PeriodMillis: 1000},
		},
	})
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("demo application: %w", err)
	}
	d.log.Info("demo seeded", "devices", len(demoDevices), "app", "sensor")
	return nil
}
