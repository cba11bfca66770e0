//go:build linux

// The daemon benchmarks read the daemon's memory from /proc and tie the
// wasmbedd they start to the test process (Pdeathsig), both Linux-only.

package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/firmware/agent"
	"wasmbed.io/wasmbed/firmware/sandbox"
)

const (
	// benchModuleSize is the size of the module the benchmarks roll out,
	// bytes: sensor.wasm padded with a custom section.
	benchModuleSize = 64 << 10
	// benchHeartbeat is the heartbeat interval of the benchmark fleets, the
	// gateway's default, so that background load is what a real fleet makes.
	benchHeartbeat = 10 * time.Second
	// benchWait bounds every wait of a benchmark; a safety net against a
	// hung run, never a performance assertion.
	benchWait = 10 * time.Minute
	// benchEnrolling is how many agents of a fleet may be enrolling at once:
	// enrollment tokens are single-use, so a thundering herd that times out
	// mid-enrollment would lose devices instead of measuring them.
	benchEnrolling = 64
	// benchBoard is the board every benchmark device claims to be.
	benchBoard = "mps2-an385"
)

// benchLabels label every device of a benchmark fleet, and benchSelector
// selects them.
var benchLabels = map[string]string{"fleet": "bench"}

const benchSelector = "fleet=bench"

// BenchmarkRollout measures how long a 64 KiB module takes to run on a
// whole fleet of in-process agents, all at once (batch size 0, no health
// gate): from CreateApplication until status.running equals the fleet and
// the phase is Running. Each iteration rolls out a new application with a
// module of its own, so devices run one more app per iteration. It also
// reports how long the fleet took to enroll and come online.
func BenchmarkRollout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			ctx := context.Background()
			d := startBenchDaemon(b)
			began := time.Now()
			f := startFleet(b, d.c, d.gateway, n)
			f.waitOnline(b, d.c)
			online := time.Since(began)

			var total time.Duration
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				mod := benchModule(b, fmt.Sprintf("bench-%d", i))
				b.StartTimer()
				total += rollout(ctx, b, d.c, f, fmt.Sprintf("sensor-%d", i), mod, n)
			}
			b.StopTimer()
			b.ReportMetric(total.Seconds()/float64(b.N), "rollout-s")
			b.ReportMetric(float64(n), "devices")
			b.ReportMetric(online.Seconds(), "online-s")
		})
	}
}

// BenchmarkRSS measures the resident memory of a real wasmbedd process:
// idle, with 1,000 devices online (agents in the test process), and once
// those devices run a 64 KiB app.
func BenchmarkRSS(b *testing.B) {
	const n = 1000
	dir := b.TempDir()
	bin := filepath.Join(dir, "wasmbedd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/wasmbedd")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build wasmbedd: %v\n%s", err, out)
	}
	var idle, online, running float64
	b.ResetTimer()
	for i := range b.N {
		ctx := context.Background()
		p := startWasmbedd(b, bin, filepath.Join(dir, fmt.Sprintf("data-%d", i)))
		time.Sleep(2 * time.Second)
		idle += p.rssMiB(b)

		f := startFleet(b, p.c, p.gateway, n)
		f.waitOnline(b, p.c)
		time.Sleep(5 * time.Second)
		online += p.rssMiB(b)

		rollout(ctx, b, p.c, f, "sensor", benchModule(b, "bench"), n)
		time.Sleep(5 * time.Second)
		running += p.rssMiB(b)

		f.stop(b)
		p.stop(b)
	}
	b.StopTimer()
	b.ReportMetric(idle/float64(b.N), "rss-idle-MiB")
	b.ReportMetric(online/float64(b.N), "rss-1000-MiB")
	b.ReportMetric(running/float64(b.N), "rss-1000-app-MiB")
}

// BenchmarkAPILatency measures API requests against a daemon holding 100
// online devices that run one app: clients goroutines share b.N requests,
// taking GetDevice, ListDevices (all 100) and GetApplication in turn, and
// the 50th and 99th percentile of each kind are reported in microseconds.
// clients=8 is the load; clients=1 is the same requests one at a time, for
// the latency without queueing. The client runs in the benchmark process
// and decodes on the same cores as the daemon. Run it with a fixed count
// (-benchtime 20000x).
func BenchmarkAPILatency(b *testing.B) {
	const n = 100
	ctx := context.Background()
	d := startBenchDaemon(b)
	f := startFleet(b, d.c, d.gateway, n)
	f.waitOnline(b, d.c)
	rollout(ctx, b, d.c, f, "sensor", benchModule(b, "bench"), n)

	c := d.c
	kinds := []apiCall{
		{"GetDevice", func(i int) error {
			_, err := c.GetDevice(ctx, benchDevice(i%n))
			return err
		}},
		{"ListDevices", func(int) error {
			list, err := c.ListDevices(ctx, "")
			if err == nil && len(list.Items) != n {
				err = fmt.Errorf("list devices: %d items, want %d", len(list.Items), n)
			}
			return err
		}},
		{"GetApplication", func(int) error {
			_, err := c.GetApplication(ctx, "sensor")
			return err
		}},
	}
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			measureLatency(b, clients, kinds)
		})
	}
}

// apiCall is one kind of request; call makes the i-th request of a run.
type apiCall struct {
	name string
	call func(i int) error
}

// measureLatency makes b.N requests from clients goroutines, each kind of
// kinds in turn, and reports the 50th and 99th percentile of each kind.
func measureLatency(b *testing.B, clients int, kinds []apiCall) {
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  = make([][]time.Duration, len(kinds))
		errs []error
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	for range clients {
		wg.Go(func() {
			local := make([][]time.Duration, len(kinds))
			var err error
			for err == nil {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					break
				}
				k := i % len(kinds)
				t0 := time.Now()
				err = kinds[k].call(i)
				local[k] = append(local[k], time.Since(t0))
			}
			mu.Lock()
			defer mu.Unlock()
			for k := range kinds {
				lat[k] = append(lat[k], local[k]...)
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if len(errs) > 0 {
		b.Fatal(errors.Join(errs...))
	}
	for k, kind := range kinds {
		if len(lat[k]) == 0 {
			continue
		}
		b.ReportMetric(percentile(lat[k], 50), kind.name+"-p50-us")
		b.ReportMetric(percentile(lat[k], 99), kind.name+"-p99-us")
	}
}

// percentile returns the p-th percentile (nearest rank) of d, microseconds.
func percentile(d []time.Duration, p int) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	rank := (len(s)*p + 99) / 100 // ceil(len*p/100), at least 1 for p > 0
	return float64(s[max(rank, 1)-1]) / float64(time.Microsecond)
}

// benchDaemon is a real daemon running in the benchmark process on loopback.
type benchDaemon struct {
	c       *client.Client
	gateway string // host:port agents dial
	cancel  context.CancelFunc
	done    chan error
}

func startBenchDaemon(b *testing.B) *benchDaemon {
	b.Helper()
	type addrs struct{ api, gateway net.Addr }
	ready := make(chan addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	d := &benchDaemon{cancel: cancel, done: make(chan error, 1)}
	go func() {
		d.done <- daemon.Run(ctx, daemon.Config{
			DataDir: filepath.Join(b.TempDir(), "data"), APIListen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0",
			GatewayName: "gw-bench", DeviceBinary: deviceBinary, HeartbeatInterval: benchHeartbeat,
			Logger: slog.New(slog.DiscardHandler),
			Ready:  func(a, g net.Addr) { ready <- addrs{a, g} },
		})
	}()
	select {
	case a := <-ready:
		d.c = benchClient(b, a.api.String())
		d.gateway = a.gateway.String()
	case err := <-d.done:
		cancel()
		b.Fatalf("daemon did not start: %v", err)
	}
	b.Cleanup(func() {
		d.cancel()
		select {
		case err := <-d.done:
			if err != nil {
				b.Errorf("daemon Run = %v", err)
			}
		case <-time.After(benchWait):
			b.Errorf("daemon did not stop")
		}
	})
	return d
}

// benchClient is a client of the API at addr that keeps an idle connection
// for each concurrent caller; the default transport keeps two per host, and
// the others would open a new connection for most requests.
func benchClient(b *testing.B, addr string) *client.Client {
	b.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	c, err := client.New("http://"+addr, client.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tr.CloseIdleConnections)
	return c
}

// wasmbeddProcess is a wasmbedd started by a benchmark.
type wasmbeddProcess struct {
	cmd     *exec.Cmd
	c       *client.Client
	gateway string
	stderr  *syncWriter
	exited  chan error
	once    sync.Once
}

// startWasmbedd starts bin on loopback ports with its data in dataDir and
// waits until its API answers. The process is stopped at cleanup at the
// latest, and is killed by the kernel should the benchmark process die.
func startWasmbedd(b *testing.B, bin, dataDir string) *wasmbeddProcess {
	b.Helper()
	// wasmbedd takes addresses, not listeners: pick free ports and release
	// them right before it binds them.
	apiAddr, gwAddr := freeAddr(b), freeAddr(b)
	p := &wasmbeddProcess{stderr: &syncWriter{}, exited: make(chan error, 1), gateway: gwAddr}
	p.cmd = exec.Command(bin, "--data-dir", dataDir, "--api-listen", apiAddr, "--gateway-listen", gwAddr,
		"--gateway-name", "gw-bench", "--device-binary", deviceBinary, "--log-level", "error")
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start wasmbedd: %v", err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	b.Cleanup(func() { p.stop(b) })
	p.c = benchClient(b, apiAddr)

	deadline := time.Now().Add(benchWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := p.c.Health(ctx)
		cancel()
		if err == nil {
			return p
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			b.Fatalf("wasmbedd exited before it was ready: %v\n%s", err, p.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("wasmbedd never answered: %v\n%s", err, p.stderr)
		}
	}
}

func freeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// rssMiB reads the process's resident set size from /proc, MiB.
func (p *wasmbeddProcess) rssMiB(b *testing.B) float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("read wasmbedd memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// VmRSS:	   23456 kB
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("read wasmbedd memory: VmRSS %q: %v", rest, err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("read wasmbedd memory: no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
	return 0
}

// stop sends SIGTERM and waits for a clean exit, killing the process if it
// does not come; safe to call twice.
func (p *wasmbeddProcess) stop(b *testing.B) {
	p.once.Do(func() {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			b.Errorf("stop wasmbedd: %v", err)
		}
		select {
		case err := <-p.exited:
			if err != nil {
				b.Errorf("wasmbedd exited with %v\n%s", err, p.stderr)
			}
		case <-time.After(benchWait):
			p.cmd.Process.Kill()
			<-p.exited
			b.Errorf("wasmbedd did not stop on SIGTERM; killed it")
		}
	})
}

// syncWriter is a goroutine-safe bytes.Buffer for a process's output.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// fleet is a set of in-process device agents labelled fleet=bench.
type fleet struct {
	n      int
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu     sync.Mutex
	failed []error // agents that ended by themselves
}

func benchDevice(i int) string { return fmt.Sprintf("bench-%04d", i) }

// startFleet creates n devices through the API, each with an enrollment
// token, and starts an agent for each that enrolls with its token at the
// gateway at gwAddr. The agents stop at cleanup at the latest.
func startFleet(b *testing.B, c *client.Client, gwAddr string, n int) *fleet {
	b.Helper()
	ctx := context.Background()
	tokens := make([]api.Token, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				name := benchDevice(i)
				_, err := c.CreateDevice(ctx, &v1alpha1.Device{
					ObjectMeta: metav1.ObjectMeta{Name: name, Labels: benchLabels},
					Spec:       v1alpha1.DeviceSpec{Board: benchBoard},
				})
				if err == nil {
					tokens[i], err = c.CreateToken(ctx, name, time.Hour)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}

	actx, cancel := context.WithCancel(context.Background())
	f := &fleet{n: n, cancel: cancel}
	b.Cleanup(func() { f.stop(b) })
	root := b.TempDir()
	slots := make(chan struct{}, benchEnrolling)
	for i, tok := range tokens {
		dir := filepath.Join(root, tok.Device)
		a, err := agent.New(agent.Config{
			Name: tok.Device, Board: benchBoard, Firmware: "bench", Capabilities: []string{"wasm"},
			Gateway: gwAddr, StateDir: dir, CAPEM: []byte(tok.CA), Token: tok.Token,
		})
		if err != nil {
			b.Fatalf("agent %d: %v", i, err)
		}
		slots <- struct{}{}
		enrolled := make(chan struct{})
		f.wg.Go(func() {
			if err := a.Run(actx); err != nil {
				f.mu.Lock()
				f.failed = append(f.failed, fmt.Errorf("device %s: %w", tok.Device, err))
				f.mu.Unlock()
			}
			close(enrolled)
		})
		// The slot frees once the agent holds its certificate (or ended).
		go func() {
			defer func() { <-slots }()
			for {
				if _, err := os.Stat(filepath.Join(dir, "device.crt")); err == nil {
					return
				}
				select {
				case <-enrolled:
					return
				case <-actx.Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	return f
}

// err reports the agents that ended by themselves.
func (f *fleet) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.failed...)
}

// waitOnline waits until the API shows every device of the fleet Online.
func (f *fleet) waitOnline(b *testing.B, c *client.Client) {
	b.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(benchWait)
	var last string
	for {
		if err := f.err(); err != nil {
			b.Fatalf("agents ended: %v", err)
		}
		list, err := c.ListDevices(ctx, benchSelector)
		online := 0
		if err == nil {
			for _, d := range list.Items {
				if d.Status.Phase == v1alpha1.DeviceOnline {
					online++
				}
			}
			if online == f.n {
				return
			}
			last = fmt.Sprintf("%d of %d online", online, f.n)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			b.Fatalf("fleet never came online: %s", last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stop ends every agent and waits for them; safe to call twice.
func (f *fleet) stop(b *testing.B) {
	f.once.Do(func() {
		f.cancel()
		done := make(chan struct{})
		go func() { f.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(benchWait):
			b.Errorf("agents did not stop")
		}
	})
}

// rollout uploads mod and creates an application of it for the fleet,
// all at once and without a health gate, and returns the time from
// CreateApplication until status.running is n and the phase Running. The
// status is polled every 100 ms, which bounds the resolution.
func rollout(ctx context.Context, b *testing.B, c *client.Client, f *fleet, app string, mod []byte, n int) time.Duration {
	b.Helper()
	m, err := c.UploadModule(ctx, bytes.NewReader(mod))
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	_, err = c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: app},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: m.SHA256}, Version: "1",
			Target:  v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: benchLabels}},
			Rollout: v1alpha1.Rollout{BatchSize: 0, HealthySeconds: 0},
		},
	})
	if err != nil {
		b.Fatalf("CreateApplication = %v", err)
	}
	deadline := began.Add(benchWait)
	var last string
	for {
		a, err := c.GetApplication(ctx, app)
		if err == nil && a.Status.Running == int32(n) && a.Status.Phase == v1alpha1.AppRunning {
			return time.Since(began)
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("phase %s, %d running, %d transferring, %d failed",
				a.Status.Phase, a.Status.Running, a.Status.Transferring, a.Status.Failed)
		}
		if err := f.err(); err != nil {
			b.Fatalf("agents ended: %v", err)
		}
		if time.Now().After(deadline) {
			b.Fatalf("application %s never ran everywhere: %s", app, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// benchModule is sensor.wasm padded to benchModuleSize with a custom
// section named name; distinct names give distinct modules.
func benchModule(b *testing.B, name string) []byte {
	b.Helper()
	wasm, err := os.ReadFile(filepath.Join("..", "testdata", "apps", "sensor.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	mod, err := padModule(wasm, benchModuleSize, name)
	if err != nil {
		b.Fatal(err)
	}
	return mod
}

// padModule returns wasm with a custom section named name appended so that
// the result is exactly size bytes. A custom section (id 0) is the id, its
// content's length as an unsigned LEB128, then the content: the name (a
// LEB128 length and the bytes) and a payload, here zeros. Runtimes ignore
// custom sections and the sandbox drops them before it compiles, so the
// padded module runs as the original does.
func padModule(wasm []byte, size int, name string) ([]byte, error) {
	nameField := append(appendLEB(nil, uint64(len(name)), 0), name...)
	room := size - len(wasm) - 1 // for the length field and the content
	// The shortest encoding of the length whose width leaves room for
	// exactly that length. At some sizes none fits (room 129: 128 needs two
	// bytes, 127 one); a LEB128 may then carry padding bytes, up to the five
	// a 32-bit number may take.
	for width := 1; width <= 5; width++ {
		content := room - width
		if content < len(nameField) {
			break
		}
		if len(appendLEB(nil, uint64(content), 0)) > width {
			continue
		}
		out := make([]byte, 0, size)
		out = append(out, wasm...)
		out = append(out, 0)
		out = appendLEB(out, uint64(content), width)
		out = append(out, nameField...)
		out = append(out, make([]byte, content-len(nameField))...)
		return out, nil
	}
	return nil, fmt.Errorf("pad module of %d bytes to %d: no room for a custom section named %q", len(wasm), size, name)
}

// appendLEB appends v as an unsigned LEB128 of at least width bytes.
func appendLEB(b []byte, v uint64, width int) []byte {
	for i := 0; ; i++ {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && i+1 >= width {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func TestPadModule(t *testing.T) {
	wasm := readApp(t, "sensor.wasm")
	tests := []struct {
		size int
		name string
	}{
		{benchModuleSize, "bench"},
		{benchModuleSize, ""},
		{len(wasm) + 1 + 1 + 2, "x"},        // the smallest section with a one-byte name
		{len(wasm) + 1 + 129, "x"},          // no shortest length fits: a padded one
		{len(wasm) + 1 + 2 + 16384, "pad"},  // likewise, at the two-to-three-byte boundary
		{len(wasm) + 1 + (1 << 20), "long"}, // a megabyte
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%q", tt.size, tt.name), func(t *testing.T) {
			got, err := padModule(wasm, tt.size, tt.name)
			if err != nil {
				t.Fatalf("padModule(%d, %q) = %v", tt.size, tt.name, err)
			}
			if len(got) != tt.size || !bytes.Equal(got[:len(wasm)], wasm) {
				t.Fatalf("padModule(%d, %q) has %d bytes, want %d starting with the module", tt.size, tt.name, len(got), tt.size)
			}
			if err := sandbox.Validate(context.Background(), got, sandbox.Limits{}); err != nil {
				t.Fatalf("Validate(padModule(%d, %q)) = %v", tt.size, tt.name, err)
			}
		})
	}
	if _, err := padModule(wasm, len(wasm)+2, "name"); err == nil {
		t.Errorf("padModule to 2 bytes over the module = nil error, want one")
	}
}
