package renode

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// The docker tests run the backend against the Docker engine of the
// machine (DOCKER_HOST, else the local socket), with an image built from
// deploy/device/Dockerfile and a wasmbed-device built for it, and a real
// gateway the containers dial across the Docker bridge. They skip when the
// engine cannot be reached.

// dockerTestClient returns a client of the machine's engine, or skips the
// test when the engine does not answer.
func dockerTestClient(tb testing.TB) *client.Client {
	tb.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		tb.Fatalf("docker client: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		tb.Skipf("docker engine unreachable at %s (%v): the docker backend tests need one", cli.DaemonHost(), err)
	}
	return cli
}

func dockerRandom(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// dockerStaticDevice builds a static wasmbed-device (CGO_ENABLED=0), as the
// image needs one, into a directory removed when tb ends.
func dockerStaticDevice(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "wasmbed-device")
	cmd := exec.Command("go", "build", "-trimpath", "-o", path, "./cmd/wasmbed-device")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/wasmbed-device: %v\n%s", err, out)
	}
	return path
}

// dockerTestImage builds the wasmbed-device image with BuildDeviceImage
// from a static wasmbed-device, tagged with a tag of its own, and removes it
// when tb ends.
func dockerTestImage(tb testing.TB, cli *client.Client) string {
	tb.Helper()
	tag := "wasmbed-device:test-" + dockerRandom(6)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			tb.Errorf("remove test image %s: %v", tag, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := BuildDeviceImage(ctx, cli, dockerStaticDevice(tb), tag); err != nil {
		tb.Fatal(err)
	}
	return tag
}

// TestDeviceDockerfile keeps the Dockerfile BuildDeviceImage builds with the
// same as deploy/device/Dockerfile, which `make image` builds with.
func TestDeviceDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "device", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var instructions strings.Builder
	for line := range strings.Lines(string(b)) {
		if ins := strings.TrimSpace(line); ins != "" && !strings.HasPrefix(ins, "#") {
			instructions.WriteString(ins + "\n")
		}
	}
	if got := instructions.String(); got != deviceDockerfile {
		t.Errorf("deploy/device/Dockerfile instructions:\n%s\nwant those of BuildDeviceImage:\n%s", got, deviceDockerfile)
	}
}

// dockerCleanupInstance removes, when tb ends, whatever container a test
// backend of instance left behind (a test that failed half-way).
func dockerCleanupInstance(tb testing.TB, cli *client.Client, instance string) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, c := range dockerInstanceContainers(tb, cli, instance) {
			tb.Errorf("container %s of instance %s left behind", dockerShortID(c), instance)
			cli.ContainerRemove(ctx, c, client.ContainerRemoveOptions{Force: true})
		}
	})
}

// dockerInstanceContainers lists the ids of the containers labelled with
// instance, running or not.
func dockerInstanceContainers(tb testing.TB, cli *client.Client, instance string) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", LabelDaemon+"="+instance),
	})
	if err != nil {
		tb.Fatalf("ContainerList: %v", err)
	}
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, c.ID)
	}
	return ids
}

// dockerTestGateway is a real gateway listening on every address of the
// host, so that containers reach it through their network's gateway.
type dockerTestGateway struct {
	gw     *gateway.Gateway
	ca     *pki.Authority
	addr   string // 127.0.0.1:port: where boards on this host dial
	events gatewayEventLog
}

func startDockerTestGateway(tb testing.TB) *dockerTestGateway {
	tb.Helper()
	ca, err := pki.Open(tb.TempDir(), pki.Options{})
	if err != nil {
		tb.Fatalf("pki.Open: %v", err)
	}
	cert, err := ca.ServerCertificate([]string{"127.0.0.1"})
	if err != nil {
		tb.Fatalf("ServerCertificate: %v", err)
	}
	tg := &dockerTestGateway{ca: ca}
	tg.events.changed = make(chan struct{})
	tg.gw, err = gateway.New(gateway.Config{Authority: ca, Certificate: cert, Events: gateway.EventFunc(tg.events.add)})
	if err != nil {
		tb.Fatalf("gateway.New: %v", err)
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		tb.Fatal(err)
	}
	tg.addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.gw.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("gateway Serve = %v", err)
		}
	})
	return tg
}

// spec is the Spec of a board of device that dials this gateway with an
// identity from its CA.
func (tg *dockerTestGateway) spec(tb testing.TB, device, board string) Spec {
	tb.Helper()
	b, err := LookupBoard(board)
	if err != nil {
		tb.Fatal(err)
	}
	cert, key, err := tg.ca.ProvisionDevice(device)
	if err != nil {
		tb.Fatalf("ProvisionDevice: %v", err)
	}
	return Spec{
		Device: device, Board: b, Gateway: tg.addr, ServerName: "127.0.0.1",
		CertPEM: cert, KeyPEM: key, CAPEM: tg.ca.CACertPEM(),
		Labels: map[string]string{"room": "lab"},
	}
}

// gatewayEventLog keeps every gateway event and wakes up waiters.
type gatewayEventLog struct {
	mu      sync.Mutex
	events  []gateway.Event
	changed chan struct{} // closed and replaced on every event
}

func (l *gatewayEventLog) add(e gateway.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	close(l.changed)
	l.changed = make(chan struct{})
}

// wait returns the first event (since the start) that match accepts,
// waiting up to a minute for it.
func (l *gatewayEventLog) wait(tb testing.TB, what string, match func(gateway.Event) bool) gateway.Event {
	tb.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	seen := 0
	for {
		l.mu.Lock()
		events, changed := l.events[seen:], l.changed
		seen = len(l.events)
		l.mu.Unlock()
		for _, e := range events {
			if match(e) {
				return e
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			tb.Fatalf("timed out waiting for %s", what)
		}
	}
}

// mark is where the events logged from now on start.
func (l *gatewayEventLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// noTransferSince fails tb if a module was sent in chunks since mark.
func (l *gatewayEventLog) noTransferSince(tb testing.TB, mark int, what string) {
	tb.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events[mark:] {
		if e.Type == gateway.EventProgress && e.App.State == protocol.StateTransferring {
			tb.Errorf("%s transferred a module: %+v", what, e.App)
		}
	}
}

func onlineEvent(device string) func(gateway.Event) bool {
	return func(e gateway.Event) bool { return e.Type == gateway.EventOnline && e.Device == device }
}

// runTestBackend runs b.Run until stop is called, which checks it returned nil.
func runTestBackend(tb testing.TB, b Backend) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("Run = %v, want nil", err)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

func dockerTestLogger(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newTestDocker(tb testing.TB, cli *client.Client, image, instance string) *Docker {
	tb.Helper()
	d, err := NewDocker(DockerConfig{Image: image, Instance: instance, Client: cli, Logger: dockerTestLogger(tb)})
	if err != nil {
		tb.Fatalf("NewDocker: %v", err)
	}
	return d
}

func sensorModule(t *testing.T) gateway.Module {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "apps", "sensor.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return gateway.Module{App: "sensor", Version: "1", SHA256: sum[:], Data: b,
		Limits: protocol.Limits{PeriodMS: 20, CallMS: 2000}}
}

func TestDockerBackend(t *testing.T) {
	cli := dockerTestClient(t)
	image := dockerTestImage(t, cli)
	tg := startDockerTestGateway(t)
	instance := "test-" + dockerRandom(6)
	dockerCleanupInstance(t, cli, instance)
	ctx := context.Background()

	d1 := newTestDocker(t, cli, image, instance)
	stop1 := runTestBackend(t, d1)
	prefix := "dk" + dockerRandom(3)
	boards := []struct{ device, board string }{
		{prefix + "-1", "stm32f746g-disco"},
		{prefix + "-2", "nrf52840-dk"},
		{prefix + "-3", "esp32-devkitc"},
	}
	dev1 := boards[0].device

	if st := d1.Status(dev1); st.State != Stopped || st.Backend != "docker" {
		t.Fatalf("Status before Start = %+v, want Stopped on docker", st)
	}
	if _, err := d1.Console(dev1); !errors.Is(err, ErrNoBoard) {
		t.Fatalf("Console before Start = %v, want ErrNoBoard", err)
	}
	for _, b := range boards {
		spec := tg.spec(t, b.device, b.board)
		if b.device == dev1 {
			spec.Labels[LabelMemoryMiB], spec.Labels[LabelCPUMillis] = "64", "500"
		}
		if err := d1.Start(ctx, spec); err != nil {
			t.Fatalf("Start(%s): %v", b.device, err)
		}
	}
	if err := d1.Start(ctx, tg.spec(t, dev1, "stm32f4-disco")); err != nil {
		t.Fatalf("Start of a running board = %v, want nil", err)
	}
	ids := map[string]string{}
	for _, b := range boards {
		tg.events.wait(t, b.device+" online", onlineEvent(b.device))
		st := d1.Status(b.device)
		if st.State != Running || len(st.ID) != 12 || st.Started.IsZero() || st.Reason != "" {
			t.Errorf("Status(%s) = %+v, want Running with a 12-character id and a start time", b.device, st)
		}
		ids[b.device] = st.ID
	}
	sessions := tg.gw.Sessions()
	for _, b := range boards {
		i := slices.IndexFunc(sessions, func(s gateway.SessionInfo) bool { return s.Device == b.device })
		if i < 0 {
			t.Errorf("no gateway session of %s in %v", b.device, sessions)
			continue
		}
		bd, _ := LookupBoard(b.board)
		if s := sessions[i]; s.Board != b.board || !slices.Equal(s.Capabilities, dockerCapabilities(bd)) {
			t.Errorf("session of %s: board %q capabilities %v, want %q %v", b.device, s.Board, s.Capabilities, b.board, dockerCapabilities(bd))
		}
	}
	t.Logf("three boards online through the bridge: %v", ids)

	t.Run("container", func(t *testing.T) {
		res, err := cli.ContainerInspect(ctx, DockerContainerName(dev1), client.ContainerInspectOptions{})
		if err != nil {
			t.Fatalf("ContainerInspect: %v", err)
		}
		c := res.Container
		want := map[string]string{"wasmbed.io/device": dev1, "wasmbed.io/daemon": instance,
			"wasmbed.io/board": "stm32f746g-disco", "wasmbed.io/backend": "docker", "room": "lab"}
		for k, v := range want {
			if c.Config.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, c.Config.Labels[k], v)
			}
		}
		if c.HostConfig.Memory != 64<<20 || c.HostConfig.NanoCPUs != 500_000_000 {
			t.Errorf("limits: memory %d, nanocpus %d; want 64 MiB and half a CPU", c.HostConfig.Memory, c.HostConfig.NanoCPUs)
		}
		if !c.Config.Tty || !c.HostConfig.RestartPolicy.IsUnlessStopped() || dockerShortID(c.ID) != ids[dev1] {
			t.Errorf("container: tty %v, restart %q, id %s; want a TTY, unless-stopped, id %s",
				c.Config.Tty, c.HostConfig.RestartPolicy.Name, dockerShortID(c.ID), ids[dev1])
		}
		for _, f := range []string{"device.crt", "device.key", "ca.crt"} {
			st, err := cli.ContainerStatPath(ctx, c.ID, client.ContainerStatPathOptions{Path: DockerStateDir + "/" + f})
			if err != nil {
				t.Errorf("stat %s: %v", f, err)
			} else if st.Stat.Mode.Perm() != 0o600 {
				t.Errorf("%s mode = %v, want 0600", f, st.Stat.Mode)
			}
		}
	})

	t.Run("deploy and console", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := tg.gw.Deploy(dctx, dev1, sensorModule(t)); err != nil {
			t.Fatalf("Deploy: %v", err)
		}
		tel := tg.events.wait(t, "telemetry of "+dev1, func(e gateway.Event) bool {
			if e.Type != gateway.EventTelemetry || e.Device != dev1 {
				return false
			}
			_, ok := e.Telemetry.Values["temperature"]
			return ok
		})
		c, err := d1.Console(dev1)
		if err != nil {
			t.Fatalf("Console: %v", err)
		}
		waitConsole(t, c, "level=INFO")     // the device's logs (standard error)
		waitConsole(t, c, "app installed")  // ... about the deploy
		waitConsole(t, c, "sensor v1 tick") // the app's output (standard output)
		if err := c.Input([]byte("help\r")); err != nil {
			t.Fatalf("Input: %v", err)
		}
		waitConsole(t, c, "commands:")
		t.Logf("telemetry %v; console through the attach stream: ...%q", tel.Telemetry.Values, consoleTail(c.History(), 120))
	})

	t.Run("crash and restart", func(t *testing.T) {
		dev := boards[1].device
		before := d1.Status(dev)
		c, _ := d1.Console(dev)
		crashDeviceProcess(t, cli, dev)
		// The exit code shows unless the engine restarted the board
		// before the backend looked.
		waitConsole(t, c, "[docker: board exited")
		waitConsole(t, c, "restarted") // and attached again
		waitFor(t, dev+" running again", func() bool {
			st := d1.Status(dev)
			return st.State == Running && st.ID == before.ID && st.Started.After(before.Started)
		})
		tg.events.wait(t, dev+" online again", func() func(gateway.Event) bool {
			n := 0
			return func(e gateway.Event) bool {
				if onlineEvent(dev)(e) {
					n++
				}
				return n == 2
			}
		}())
		if err := c.Input([]byte("status\r")); err != nil {
			t.Fatalf("Input after the restart: %v", err)
		}
		waitConsole(t, c, "device "+dev+" board nrf52840-dk")
		t.Logf("crashed and restarted by the engine; console: ...%q", consoleTail(c.History(), 300))
	})

	// A second backend of the same instance takes the containers over
	// from the first, which lets go of them without stopping them.
	d1.Detach()
	stop1()
	c1, _ := d1.Console(dev1)
	if err := c1.Input([]byte("help\r")); !errors.Is(err, ErrBoardOff) {
		t.Errorf("Input after Detach = %v, want ErrBoardOff", err)
	}
	if err := d1.Start(ctx, tg.spec(t, prefix+"-9", "stm32f4-disco")); !errors.Is(err, ErrBackendClosed) {
		t.Errorf("Start after Detach = %v, want ErrBackendClosed", err)
	}
	for _, b := range boards {
		res, err := cli.ContainerInspect(ctx, DockerContainerName(b.device), client.ContainerInspectOptions{})
		if err != nil || !res.Container.State.Running {
			t.Fatalf("container of %s after Detach: %v, want it running", b.device, err)
		}
	}
	d2 := newTestDocker(t, cli, image, instance)
	// Start finds the running container of its device and adopts it;
	// Run adopts the others.
	if err := d2.Start(ctx, tg.spec(t, dev1, "stm32f746g-disco")); err != nil {
		t.Fatalf("Start of a device whose container runs: %v", err)
	}
	if st := d2.Status(dev1); st.State != Running || st.ID != ids[dev1] {
		t.Errorf("Status after Start adopted the container = %+v, want Running with id %s", st, ids[dev1])
	}
	stop2 := runTestBackend(t, d2)
	for _, b := range boards {
		waitFor(t, b.device+" adopted", func() bool {
			st := d2.Status(b.device)
			return st.State == Running && st.ID == ids[b.device]
		})
		if _, ok := tg.gw.Session(b.device); !ok {
			t.Errorf("%s went offline during the handover", b.device)
		}
	}
	c2, err := d2.Console(dev1)
	if err != nil {
		t.Fatalf("Console after adoption: %v", err)
	}
	waitConsole(t, c2, "session up") // printed before the handover: the engine's log, replayed
	if err := c2.Input([]byte("status\r")); err != nil {
		t.Fatalf("Input after adoption: %v", err)
	}
	waitConsole(t, c2, "device "+dev1+" board stm32f746g-disco")
	t.Logf("containers adopted with their ids; console attached again: ...%q", consoleTail(c2.History(), 120))

	t.Run("stop", func(t *testing.T) {
		dev3 := boards[2].device
		if err := d2.Stop(ctx, dev3); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if _, err := cli.ContainerInspect(ctx, DockerContainerName(dev3), client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
			t.Errorf("ContainerInspect after Stop = %v, want NotFound", err)
		}
		if st := d2.Status(dev3); st.State != Stopped {
			t.Errorf("Status after Stop = %+v, want Stopped", st)
		}
		if err := d2.Stop(ctx, dev3); err != nil {
			t.Errorf("second Stop = %v, want nil", err)
		}
	})

	t.Run("missing image", func(t *testing.T) {
		missing := "wasmbed-device:missing-" + dockerRandom(4)
		d3 := newTestDocker(t, cli, missing, instance)
		dev := prefix + "-4"
		err := d3.Start(ctx, tg.spec(t, dev, "stm32f4-disco"))
		var nf *ImageNotFoundError
		if !errors.As(err, &nf) || nf.Image != missing || !strings.Contains(err.Error(), "image "+missing+" not found: run make image") {
			t.Fatalf("Start with a missing image = %v, want an ImageNotFoundError telling to run make image", err)
		}
		if st := d3.Status(dev); st.State != Failed || st.Reason != err.Error() {
			t.Errorf("Status = %+v, want Failed with the start error", st)
		}
		t.Logf("missing image: %v", err)
	})

	stop2()
	if left := dockerInstanceContainers(t, cli, instance); len(left) != 0 {
		t.Errorf("containers of instance %s after Run ended: %v, want none", instance, left)
	}
	for _, b := range boards[:2] {
		if st := d2.Status(b.device); st.State != Stopped {
			t.Errorf("Status(%s) after Run ended = %+v, want Stopped", b.device, st)
		}
	}
}

// crashDeviceProcess kills the wasmbed-device of device's container with
// SIGKILL from the host, as a crash would end it: the engine then restarts
// it (docker kill would count as a stop). It skips the test when the
// engine's processes are not this host's.
func crashDeviceProcess(t *testing.T, cli *client.Client, device string) {
	t.Helper()
	res, err := cli.ContainerInspect(context.Background(), DockerContainerName(device), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("ContainerInspect: %v", err)
	}
	pid := res.Container.State.Pid
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil || !bytes.Contains(environ, []byte("WASMBED_DEVICE="+device+"\x00")) {
		t.Skipf("process %d is not the board of %s on this host (%v): cannot crash it", pid, device, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Skipf("kill %d: %v", pid, err)
	}
}

func consoleTail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// TestDockerEngineDown needs no engine: the backend is pointed at a socket
// nobody serves.
func TestDockerEngineDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	d, err := NewDocker(DockerConfig{Instance: "test-down"})
	if err != nil {
		t.Fatalf("NewDocker with the engine down = %v, want nil", err)
	}
	spec := testSpec(t, "down-1", "stm32f746g-disco")
	err = d.Start(context.Background(), spec)
	if !errors.Is(err, ErrDockerUnreachable) || !strings.Contains(err.Error(), "docker engine unreachable at unix://"+sock+": ") {
		t.Fatalf("Start = %v, want docker engine unreachable at unix://%s", err, sock)
	}
	if st := d.Status("down-1"); st.State != Failed || st.Reason != err.Error() {
		t.Errorf("Status = %+v, want Failed with the start error", st)
	}
	t.Logf("engine down: %v", err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := d.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// The -update flag rewrites the golden files under testdata/. Another test
// file of the package may define the same flag; then it is shared.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

func dockerUpdateGoldens() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func TestDockerContainerSpec(t *testing.T) {
	d, err := NewDocker(DockerConfig{Instance: "wasmbedd-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range Boards() {
		t.Run(b.Name, func(t *testing.T) {
			spec := Spec{
				Device: "dev-1", Board: b, Gateway: "127.0.0.1:8081", ServerName: "127.0.0.1",
				Labels: map[string]string{"room": "lab", LabelMemoryMiB: "64", LabelCPUMillis: "500"},
			}
			cfg, host, err := d.containerSpec(spec, "172.17.0.1:8081", "127.0.0.1")
			if err != nil {
				t.Fatalf("containerSpec: %v", err)
			}
			got, err := json.MarshalIndent(struct {
				Config     any
				HostConfig any
			}{cfg, host}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			dockerCheckGolden(t, filepath.Join("testdata", "docker", b.Name+".json"), append(got, '\n'))
		})
	}
}

func dockerCheckGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if dockerUpdateGoldens() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./renode -run %s -update to write it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; got:\n%s", path, got)
	}
}

func TestDockerResources(t *testing.T) {
	for _, tc := range []struct {
		labels     map[string]string
		mem, nanos int64
		ok         bool
	}{
		{nil, 0, 0, true},
		{map[string]string{LabelMemoryMiB: "64"}, 64 << 20, 0, true},
		{map[string]string{LabelCPUMillis: "250"}, 0, 250_000_000, true},
		{map[string]string{LabelMemoryMiB: "128", LabelCPUMillis: "2000"}, 128 << 20, 2_000_000_000, true},
		{map[string]string{LabelMemoryMiB: "0"}, 0, 0, false},
		{map[string]string{LabelMemoryMiB: "-5"}, 0, 0, false},
		{map[string]string{LabelMemoryMiB: "64Mi"}, 0, 0, false},
		{map[string]string{LabelCPUMillis: "0.5"}, 0, 0, false},
		{map[string]string{LabelCPUMillis: ""}, 0, 0, false},
	} {
		r, err := dockerResources(tc.labels)
		if (err == nil) != tc.ok || err == nil && (r.Memory != tc.mem || r.NanoCPUs != tc.nanos || r.MemorySwap != tc.mem) {
			t.Errorf("dockerResources(%v) = memory %d swap %d nanocpus %d, %v; want %d, %d, ok %v",
				tc.labels, r.Memory, r.MemorySwap, r.NanoCPUs, err, tc.mem, tc.nanos, tc.ok)
		}
	}
}

func TestDockerNetworkGateway(t *testing.T) {
	for _, tc := range []struct {
		name string
		ipam []network.IPAMConfig
		want string // "" for an error
	}{
		{"gateway given", []network.IPAMConfig{{Subnet: netip.MustParsePrefix("172.18.0.0/16"), Gateway: netip.MustParseAddr("172.18.0.254")}}, "172.18.0.254"},
		{"default bridge: subnet only", []network.IPAMConfig{{Subnet: netip.MustParsePrefix("172.17.0.0/16")}}, "172.17.0.1"},
		{"IPv6 first", []network.IPAMConfig{
			{Subnet: netip.MustParsePrefix("fd00::/64"), Gateway: netip.MustParseAddr("fd00::1")},
			{Subnet: netip.MustParsePrefix("10.9.0.0/24")},
		}, "10.9.0.1"},
		{"no IPv4", []network.IPAMConfig{{Subnet: netip.MustParsePrefix("fd00::/64")}}, ""},
		{"none", nil, ""},
	} {
		var n network.Inspect
		n.Name = tc.name
		n.IPAM.Config = tc.ipam
		got, err := dockerNetworkGateway(n)
		if tc.want == "" {
			if err == nil {
				t.Errorf("dockerNetworkGateway(%s) = %v, want an error", tc.name, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("dockerNetworkGateway(%s) = %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
}

func TestDockerGatewayHostPort(t *testing.T) {
	for _, tc := range []struct {
		port, spec, want string
	}{
		{"", "127.0.0.1:8081", "172.17.0.1:8081"},
		{"9443", "127.0.0.1:8081", "172.17.0.1:9443"},
		{"", "gateway.example:4423", "172.17.0.1:4423"},
		{"", "no-port", ""},
	} {
		d, err := NewDocker(DockerConfig{Instance: "i", GatewayPort: tc.port})
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.gatewayHostPort("172.17.0.1", tc.spec)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("gatewayHostPort with port %q, spec %q = %q, %v; want %q", tc.port, tc.spec, got, err, tc.want)
		}
	}
}

func TestDockerStatus(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	started := "2026-11-22T21:03:04.5Z"
	for _, tc := range []struct {
		name   string
		state  *container.State
		want   State
		reason string
	}{
		{"running", &container.State{Status: container.StateRunning, Running: true, StartedAt: started}, Running, ""},
		{"created", &container.State{Status: container.StateCreated, StartedAt: "0001-01-01T00:00:00Z"}, Starting, ""},
		{"restarting", &container.State{Status: container.StateRestarting, Running: true, Restarting: true, ExitCode: 1, StartedAt: started}, Starting, "restarting after exit code 1"},
		{"exited", &container.State{Status: container.StateExited, ExitCode: 2, StartedAt: started}, Failed, "exit code 2"},
		{"oom", &container.State{Status: container.StateExited, OOMKilled: true, ExitCode: 137, StartedAt: started}, Failed, "out of memory (OOMKilled), exit code 137"},
		{"error", &container.State{Status: container.StateExited, ExitCode: 127, Error: "exec: no such file", StartedAt: started}, Failed, "exit code 127: exec: no such file"},
		{"paused", &container.State{Status: container.StatePaused, Running: true, Paused: true, StartedAt: started}, Failed, "container paused"},
		{"no state", nil, Failed, "the engine reports no state for the container"},
	} {
		got := dockerStatus("dev-1", container.InspectResponse{ID: id, State: tc.state})
		if got.State != tc.want || got.Reason != tc.reason || got.ID != "0123456789ab" || got.Backend != "docker" || got.Device != "dev-1" {
			t.Errorf("dockerStatus(%s) = %+v, want %s %q, id 0123456789ab", tc.name, got, tc.want, tc.reason)
		}
		if wantStarted := tc.state != nil && tc.state.StartedAt == started; wantStarted != !got.Started.IsZero() {
			t.Errorf("dockerStatus(%s).Started = %v", tc.name, got.Started)
		}
	}
}

func TestDockerIdentityTar(t *testing.T) {
	spec := Spec{CertPEM: []byte("cert"), KeyPEM: []byte("key"), CAPEM: []byte("ca")}
	buf, err := dockerIdentityTar(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		mode int64
		data string
	}{{"state/", 0o700, ""}, {"state/device.crt", 0o600, "cert"}, {"state/device.key", 0o600, "key"}, {"state/ca.crt", 0o600, "ca"}}
	tr := tar.NewReader(buf)
	for _, w := range want {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %s: %v", w.name, err)
		}
		data, _ := io.ReadAll(tr)
		if h.Name != w.name || h.Mode != w.mode || h.Uid != DockerUID || h.Gid != DockerUID || string(data) != w.data {
			t.Errorf("entry %s mode %o uid %d gid %d data %q, want %s %o %d %q", h.Name, h.Mode, h.Uid, h.Gid, data, w.name, w.mode, DockerUID, w.data)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("after the identity: %v, want the end of the archive", err)
	}
}

// BenchmarkStartToOnline measures the time from Start to the device's
// session in the gateway (start-to-online-ms), for a fresh board of each
// backend; stopping the board is not counted.
func BenchmarkStartToOnline(b *testing.B) {
	tg := startDockerTestGateway(b)
	b.Run("docker", func(b *testing.B) {
		cli := dockerTestClient(b)
		image := dockerTestImage(b, cli)
		instance := "bench-" + dockerRandom(6)
		dockerCleanupInstance(b, cli, instance)
		d := newTestDocker(b, cli, image, instance)
		runTestBackend(b, d)
		benchStartToOnline(b, d, tg, "stm32f746g-disco")
	})
	b.Run("qemu", func(b *testing.B) {
		q, err := NewQEMU(QEMUConfig{Firmware: buildFirmware(b), Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		runTestBackend(b, q)
		benchStartToOnline(b, q, tg, "mps2-an385")
	})
	b.Run("sim", func(b *testing.B) {
		s, err := NewSim(SimConfig{DeviceBinary: dockerStaticDevice(b), Dir: b.TempDir(), Logger: dockerTestLogger(b)})
		if err != nil {
			b.Fatal(err)
		}
		runTestBackend(b, s)
		benchStartToOnline(b, s, tg, "stm32f746g-disco")
	})
}

func benchStartToOnline(b *testing.B, backend Backend, tg *dockerTestGateway, board string) {
	ctx := context.Background()
	prefix := "bn" + dockerRandom(3)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		device := fmt.Sprintf("%s-%d", prefix, i)
		spec := tg.spec(b, device, board)
		b.StartTimer()
		start := time.Now()
		if err := backend.Start(ctx, spec); err != nil {
			b.Fatalf("Start: %v", err)
		}
		tg.events.wait(b, device+" online", onlineEvent(device))
		total += time.Since(start)
		b.StopTimer()
		if err := backend.Stop(ctx, device); err != nil {
			b.Fatalf("Stop: %v", err)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "start-to-online-ms")
}
