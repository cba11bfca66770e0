package daemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/renode"
)

// The docker tests run the daemon's docker backend against the Docker
// engine of the machine (DOCKER_HOST, else the local socket), with an image
// built FROM scratch from a static wasmbed-device. They skip when the
// engine cannot be reached. Every run has its own gateway name (the
// wasmbed.io/daemon label of its containers), image tag and device names,
// so that runs side by side do not see each other's containers.

// dockerEngine returns a client of the machine's engine, or skips the test
// when the engine does not answer.
func dockerEngine(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Skipf("docker engine unreachable at %s (%v): the daemon's docker backend tests need one", cli.DaemonHost(), err)
	}
	return cli
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// deviceImage builds a static wasmbed-device and the wasmbed-device image
// from it, under a tag of its own that is removed when t ends.
func deviceImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wasmbed-device")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/wasmbed-device")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/wasmbed-device: %v\n%s", err, out)
	}
	tag := "wasmbed-device:daemon-test-" + randomHex(6)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove test image %s: %v", tag, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := renode.BuildDeviceImage(ctx, cli, bin, tag); err != nil {
		t.Fatal(err)
	}
	return tag
}

// labelledContainers lists the names of the containers, running or not,
// that carry the label key=value.
func labelledContainers(t *testing.T, cli *client.Client, key, value string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", key+"="+value),
	})
	if err != nil {
		return nil, fmt.Errorf("ContainerList %s=%s: %w", key, value, err)
	}
	var names []string
	for _, c := range list.Items {
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// noContainersLeft checks, when t ends (after the daemons it started
// stopped), that no container of the daemon name remains, and removes any
// that does.
func noContainersLeft(t *testing.T, cli *client.Client, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		left, err := labelledContainers(t, cli, renode.LabelDaemon, name)
		if err != nil {
			t.Error(err)
			return
		}
		for _, c := range left {
			t.Errorf("container %s of daemon %s left behind", c, name)
			cli.ContainerRemove(ctx, c, client.ContainerRemoveOptions{Force: true})
		}
	})
}

// startDockerDaemon starts a real daemon named name whose docker boards
// run image, with its gateway on every address of the host: the
// containers reach it across the Docker bridge.
func startDockerDaemon(t *testing.T, dataDir, name, image string) *instance {
	t.Helper()
	return startDaemon(t, dataDir, func(c *daemon.Config) {
		c.GatewayListen, c.GatewayName, c.DockerImage = "0.0.0.0:0", name, image
	})
}

// dockerDevice is an emulated device of the docker backend.
func dockerDevice(name, board string, labels map[string]string) *v1alpha1.Device {
	return &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       v1alpha1.DeviceSpec{Board: board, Emulation: &v1alpha1.Emulation{Backend: "docker", Enabled: true}},
	}
}

// TestDaemonDocker drives a real daemon whose boards are containers:
// three devices come online across the Docker bridge, a module rolls out
// to them, a board's console is read through the API, a restart on the
// same data directory brings the devices back with one container each,
// and deleting a device removes its container.
func TestDaemonDocker(t *testing.T) {
	cli := dockerEngine(t)
	image := deviceImage(t, cli)
	name := "daemon-test-" + randomHex(4)
	noContainersLeft(t, cli, name)
	ctx := context.Background()
	dataDir := t.TempDir()
	d := startDockerDaemon(t, dataDir, name, image)
	c := d.c

	// Container names are per device across the engine: the devices of
	// this run are named for it.
	fleet := map[string]string{"fleet": name}
	selector := "fleet=" + name
	prefix := "dd" + randomHex(3)
	names := []string{prefix + "-a", prefix + "-b", prefix + "-c"}
	boards := []string{"mps2-an385", "stm32f746g-disco", "nrf52840-dk"}
	for i, n := range names {
		if _, err := c.CreateDevice(ctx, dockerDevice(n, boards[i], fleet)); err != nil {
			t.Fatalf("CreateDevice %s = %v", n, err)
		}
	}
	allOnline := func() (bool, error) {
		list, err := c.ListDevices(ctx, selector)
		if err != nil {
			return false, err
		}
		for _, d := range list.Items {
			if d.Status.Phase != v1alpha1.DeviceOnline {
				return false, fmt.Errorf("%s is %s, board %+v", d.Name, d.Status.Phase, d.Status.Board)
			}
			if b := d.Status.Board; b == nil || b.Backend != "docker" || b.State != string(renode.Running) {
				return false, fmt.Errorf("%s board %+v, want running on docker", d.Name, b)
			}
		}
		return len(list.Items) == len(names), nil
	}
	eventually(t, "three docker devices online", allOnline)
	containers := func(want int) func() (bool, error) {
		return func() (bool, error) {
			got, err := labelledContainers(t, cli, renode.LabelDaemon, name)
			if err != nil {
				return false, err
			}
			return len(got) == want, fmt.Errorf("containers of daemon %s: %v, want %d", name, got, want)
		}
	}
	if ok, err := containers(3)(); !ok {
		t.Fatal(err)
	}

	mod, err := c.UploadModule(ctx, bytes.NewReader(readApp(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "sensor"},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: mod.SHA256}, Version: "1",
			Target:  v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: fleet}},
			Rollout: v1alpha1.Rollout{BatchSize: 3, HealthySeconds: 1},
			Limits:  v1alpha1.Limits{PeriodMillis: 100},
		},
	})
	if err != nil {
		t.Fatalf("CreateApplication = %v", err)
	}
	runningEverywhere := func() (bool, error) {
		for _, n := range names {
			dev, err := c.GetDevice(ctx, n)
			if err != nil {
				return false, err
			}
			if len(dev.Status.Apps) != 1 || dev.Status.Apps[0].Name != "sensor" || dev.Status.Apps[0].State != "running" {
				return false, fmt.Errorf("%s apps %+v", n, dev.Status.Apps)
			}
		}
		a, err := c.GetApplication(ctx, "sensor")
		if err != nil {
			return false, err
		}
		return a.Status.Phase == v1alpha1.AppRunning && a.Status.Running == 3,
			fmt.Errorf("application phase %s, running %d", a.Status.Phase, a.Status.Running)
	}
	eventually(t, "sensor running on the three devices", runningEverywhere)

	// The console of a docker device is its container's TTY.
	cctx, cancel := context.WithCancel(ctx)
	con, err := c.Console(cctx, names[0])
	if err != nil {
		t.Fatalf("Console = %v", err)
	}
	got := readUntil(t, con, "sensor v1")
	cancel()
	con.Close()
	if !strings.Contains(got, "sensor v1") {
		t.Fatalf("console = %q", got)
	}

	// The daemon stops its containers when it shuts down; started again,
	// it runs one board per device again, and the apps come back.
	d.stop()
	if left, err := labelledContainers(t, cli, renode.LabelDaemon, name); err != nil || len(left) != 0 {
		t.Errorf("containers after the daemon stopped: %v, %v; want none", left, err)
	}
	d = startDockerDaemon(t, dataDir, name, image)
	c = d.c
	eventually(t, "docker devices online after restart", allOnline)
	eventually(t, "sensor running again after restart", runningEverywhere)
	eventually(t, "one container per device after restart", containers(3))
	for _, n := range names {
		got, err := labelledContainers(t, cli, renode.LabelDevice, n)
		if err != nil || len(got) != 1 || got[0] != renode.DockerContainerName(n) {
			t.Errorf("containers of %s after restart: %v, %v; want [%s]", n, got, err, renode.DockerContainerName(n))
		}
	}

	// Deleting a device removes its container.
	gone := names[2]
	if err := c.DeleteDevice(ctx, gone); err != nil {
		t.Fatalf("DeleteDevice = %v", err)
	}
	if _, err := c.GetDevice(ctx, gone); !errors.Is(err, &api.Error{Reason: api.ReasonNotFound}) {
		t.Fatalf("GetDevice after delete = %v, want NotFound", err)
	}
	eventually(t, "container of the deleted device removed", func() (bool, error) {
		got, err := labelledContainers(t, cli, renode.LabelDevice, gone)
		if err != nil {
			return false, err
		}
		return len(got) == 0, fmt.Errorf("containers of %s: %v", gone, got)
	})
	if ok, err := containers(2)(); !ok {
		t.Error(err)
	}
}

// TestDaemonDockerMissingImage: a docker device whose image the engine
// does not have fails with what to do about it, and the daemon goes on
// serving its other devices.
func TestDaemonDockerMissingImage(t *testing.T) {
	cli := dockerEngine(t)
	name := "daemon-test-" + randomHex(4)
	noContainersLeft(t, cli, name)
	missing := "wasmbed-device:missing-" + randomHex(4)
	ctx := context.Background()
	d := startDockerDaemon(t, t.TempDir(), name, missing)
	c := d.c

	prefix := "dm" + randomHex(3)
	dev, sim := prefix+"-docker", prefix+"-sim"
	if _, err := c.CreateDevice(ctx, dockerDevice(dev, "stm32f746g-disco", nil)); err != nil {
		t.Fatalf("CreateDevice %s = %v", dev, err)
	}
	if _, err := c.CreateDevice(ctx, &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: sim},
		Spec:       v1alpha1.DeviceSpec{Board: "stm32f746g-disco", Emulation: &v1alpha1.Emulation{Backend: "sim", Enabled: true}},
	}); err != nil {
		t.Fatalf("CreateDevice %s = %v", sim, err)
	}
	var reason string
	eventually(t, "docker board Failed for the missing image", func() (bool, error) {
		d, err := c.GetDevice(ctx, dev)
		if err != nil {
			return false, err
		}
		b := d.Status.Board
		if b == nil || b.Backend != "docker" || b.State != string(renode.Failed) || !strings.Contains(b.Reason, "make image") {
			return false, fmt.Errorf("board %+v", b)
		}
		reason = b.Reason
		return true, nil
	})
	if !strings.Contains(reason, missing) {
		t.Errorf("reason %q does not name the image %s", reason, missing)
	}
	eventually(t, "sim device online beside it", func() (bool, error) {
		d, err := c.GetDevice(ctx, sim)
		if err != nil {
			return false, err
		}
		return d.Status.Phase == v1alpha1.DeviceOnline, fmt.Errorf("%s is %s", sim, d.Status.Phase)
	})
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health = %v", err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Errorf("Ready = %v", err)
	}
	if got, err := labelledContainers(t, cli, renode.LabelDevice, dev); err != nil || len(got) != 0 {
		t.Errorf("containers of %s: %v, %v; want none", dev, got, err)
	}
	t.Logf("missing image: %s", reason)
}
