package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
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
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/firmware/loadgen"
)

type benchFlags struct {
	wasmbedd, mosquitto, work string
	sizes                     []int
	runs, perProcess          int
	window                    time.Duration
}

// figures are one run's measurements of one fleet size.
type figures struct {
	enrollFirst, enrollLast float64 // enrollments a second, first and last thousand
	online                  time.Duration
	writesPerSec            float64
	cpu                     float64 // percent of a core in steady state
	rssPerSession           float64 // bytes
	rss                     float64 // bytes with every session up
	mqttCPU, mqttPerSession float64
	getP50, getP99, pageP99 time.Duration // API latency, open loop
	rollout                 time.Duration // a 64 KiB module to every device
	peakRSS                 float64       // bytes, from the start of the rollout to its end
	storm                   time.Duration // from kill -9 to every device back
	stormP99, stormMax      time.Duration // GET one device meanwhile
}

// bench runs the fleet scenarios at each size, runs times, and prints the
// medians as Markdown rows.
func bench(ctx context.Context, b benchFlags, out, logw io.Writer) error {
	work, self, cleanup, err := workDir(b.work, "wasmbed-loadgen-")
	if err != nil {
		return err
	}
	defer cleanup()
	results := map[int][]figures{}
	for _, n := range b.sizes {
		for run := 1; run <= b.runs; run++ {
			fmt.Fprintf(logw, "== %d devices, run %d of %d\n", n, run, b.runs)
			dir := filepath.Join(work, fmt.Sprintf("n%d-run%d", n, run))
			f, err := benchWasmbed(ctx, b, self, dir, n, logw)
			if err != nil {
				return fmt.Errorf("%d devices, run %d: %w", n, run, err)
			}
			if b.mosquitto != "" {
				if err := benchMQTT(ctx, b, self, dir, n, &f, logw); err != nil {
					return fmt.Errorf("mosquitto, %d sessions, run %d: %w", n, run, err)
				}
			}
			fmt.Fprintf(logw, "%+v\n", f)
			results[n] = append(results[n], f)
			os.RemoveAll(dir)
		}
	}
	fmt.Fprintf(out, "| devices | enroll/s first 1,000 | enroll/s last 1,000 | all online after | store writes/s idle | daemon CPU idle | mosquitto CPU idle | RSS/session | mosquitto RSS/session | GET device p50 / p99 at 1,000/s | page of 500 p99 | rollout of 64 KiB | peak RSS | all back after kill -9 | GET p99 / max meanwhile |\n")
	fmt.Fprintf(out, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, n := range b.sizes {
		fs := results[n]
		m := func(get func(figures) float64) float64 {
			v := make([]float64, len(fs))
			for i, f := range fs {
				v[i] = get(f)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		fmt.Fprintf(out, "| %d | %.0f | %.0f | %.1f s | %.2f | %.1f %% | %.1f %% | %.1f KB | %.1f KB | %.2f / %.2f ms | %.1f ms | %.2f s | %.0f MB | %.1f s | %.1f / %.1f ms |\n", n,
			m(func(f figures) float64 { return f.enrollFirst }), m(func(f figures) float64 { return f.enrollLast }),
			m(func(f figures) float64 { return f.online.Seconds() }), m(func(f figures) float64 { return f.writesPerSec }),
			m(func(f figures) float64 { return f.cpu }), m(func(f figures) float64 { return f.mqttCPU }),
			m(func(f figures) float64 { return f.rssPerSession / 1000 }), m(func(f figures) float64 { return f.mqttPerSession / 1000 }),
			m(func(f figures) float64 { return ms(f.getP50) }), m(func(f figures) float64 { return ms(f.getP99) }),
			m(func(f figures) float64 { return ms(f.pageP99) }), m(func(f figures) float64 { return f.rollout.Seconds() }),
			m(func(f figures) float64 { return f.peakRSS / 1e6 }), m(func(f figures) float64 { return f.storm.Seconds() }),
			m(func(f figures) float64 { return ms(f.stormP99) }), m(func(f figures) float64 { return ms(f.stormMax) }))
	}
	return nil
}

// workDir is the work directory given, or a temporary one that cleanup
// removes, and this binary's path, which the load processes run.
func workDir(given, prefix string) (work, self string, cleanup func(), err error) {
	cleanup = func() {}
	if self, err = os.Executable(); err != nil {
		return "", "", cleanup, err
	}
	if given != "" {
		return given, self, cleanup, nil
	}
	if work, err = os.MkdirTemp("", prefix); err != nil {
		return "", "", cleanup, err
	}
	return work, self, func() { os.RemoveAll(work) }, nil
}

// benchWasmbed starts wasmbedd, enrolls n devices from a process of their
// own, then holds them online from others and measures steady state.
func benchWasmbed(ctx context.Context, b benchFlags, self, dir string, n int, logw io.Writer) (figures, error) {
	var f figures
	// Fixed ports, so that the daemon comes back where its devices dial
	// after it was killed.
	apiAddr, gwAddr := freeAddr(), freeAddr()
	d, err := startWasmbedd(ctx, b.wasmbedd, filepath.Join(dir, "daemon"), apiAddr, gwAddr, logw)
	if err != nil {
		return f, err
	}
	defer func() { d.stop() }()
	fleet := filepath.Join(dir, "fleet")
	enrollOut, err := runChild(ctx, self, "enroll", "--api", "http://"+d.api, "--gateway", d.gateway, "--dir", fleet,
		"--count", strconv.Itoa(n), "--concurrency", "64")
	if err != nil {
		return f, fmt.Errorf("enroll: %w", err)
	}
	var rates []float64
	for _, line := range strings.Split(enrollOut, "\n") {
		if _, r, ok := strings.Cut(line, "rate="); ok {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(r, "/s"), 64)
			rates = append(rates, v)
		}
	}
	if len(rates) == 0 {
		return f, fmt.Errorf("enroll printed no rate: %s", enrollOut)
	}
	f.enrollFirst, f.enrollLast = rates[0], rates[len(rates)-1]
	fmt.Fprintf(logw, "enrolled %d: %v\n", n, rates)

	if err := d.settle(ctx); err != nil {
		return f, err
	}
	rss0 := rssBytes(d.cmd.Process.Pid)
	began := time.Now()
	var holders []*child
	defer func() {
		for _, h := range holders {
			h.stop()
		}
	}()
	for from := 0; from < n; from += b.perProcess {
		h, err := startChild(ctx, self, "hold", "--gateway", d.gateway, "--dir", fleet,
			"--from", strconv.Itoa(from), "--count", strconv.Itoa(min(b.perProcess, n-from)))
		if err != nil {
			return f, err
		}
		holders = append(holders, h)
	}
	if err := waitFor(ctx, 5*time.Minute, func() bool { return d.sessions() >= float64(n) }); err != nil {
		return f, fmt.Errorf("%d devices online: %w (%v sessions)", n, err, d.sessions())
	}
	f.online = time.Since(began)
	if err := d.settle(ctx); err != nil {
		return f, err
	}
	// Every device has heartbeated at least once before the window.
	sleep(ctx, 12*time.Second)
	w0, c0 := d.writes(), cpuTicks(d.cmd.Process.Pid)
	sleep(ctx, b.window)
	w1, c1 := d.writes(), cpuTicks(d.cmd.Process.Pid)
	f.writesPerSec = (w1 - w0) / b.window.Seconds()
	f.cpu = 100 * float64(c1-c0) / clockTicks / b.window.Seconds()
	f.rss = rssBytes(d.cmd.Process.Pid)
	f.rssPerSession = (f.rss - rss0) / float64(n)

	// API latency under the idle fleet, open loop: requests leave on a
	// fixed schedule whether or not earlier ones have been answered.
	get := "http://" + d.api + "/api/v1/devices/" + loadgen.Name("lg", n/2)
	if f.getP50, f.getP99, err = openLoop(ctx, get, 1000, 10*time.Second); err != nil {
		return f, fmt.Errorf("get one device: %w", err)
	}
	if _, f.pageP99, err = openLoop(ctx, "http://"+d.api+"/api/v1/devices?limit=500", 20, 10*time.Second); err != nil {
		return f, fmt.Errorf("a page of 500 devices: %w", err)
	}

	// A rollout of a 64 KiB module to every device, all at once, with the
	// peak resident set counted from its start.
	resetPeakRSS(d.cmd.Process.Pid)
	if f.rollout, err = rollout(ctx, d, n); err != nil {
		return f, fmt.Errorf("rollout: %w", err)
	}
	f.peakRSS = peakRSSBytes(d.cmd.Process.Pid)

	// Reconnect storm: kill -9, start again on the same data and ports,
	// and time until every device is back, reading one device every 20 ms
	// from the moment the API answers.
	d.cmd.Process.Kill()
	d.cmd.Wait()
	killed := time.Now()
	again, err := startWasmbedd(ctx, b.wasmbedd, filepath.Join(dir, "daemon"), apiAddr, gwAddr, logw)
	if err != nil {
		return f, fmt.Errorf("restart after kill -9: %w", err)
	}
	d = again
	probe := make(chan []time.Duration, 1)
	pctx, stopProbe := context.WithCancel(ctx)
	go func() {
		var lat []time.Duration
		hc := &http.Client{Timeout: 10 * time.Second}
		for sleep(pctx, 20*time.Millisecond) {
			t0 := time.Now()
			if resp, err := hc.Get(get); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
			}
		}
		probe <- lat
	}()
	err = waitFor(ctx, 5*time.Minute, func() bool { return d.sessions() >= float64(n) })
	f.storm = time.Since(killed)
	stopProbe()
	lat := <-probe
	if err != nil {
		return f, fmt.Errorf("%d devices back after kill -9: %w (%v sessions)", n, err, d.sessions())
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		f.stormP99, f.stormMax = lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return f, nil
}

// rollout uploads a 64 KiB module and rolls it out to the n devices of
// the fleet in one batch, and returns how long until it runs on all.
func rollout(ctx context.Context, d *wasmbedd, n int) (time.Duration, error) {
	mod, err := d.c.UploadModule(ctx, bytes.NewReader(paddedModule(64<<10)))
	if err != nil {
		return 0, err
	}
	began := time.Now()
	_, err = d.c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: mod.SHA256}, Version: "1",
			Target:  v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "lg"}}},
			Rollout: v1alpha1.Rollout{BatchPercent: 100},
		},
	})
	if err != nil {
		return 0, err
	}
	err = waitFor(ctx, 5*time.Minute, func() bool {
		a, err := d.c.GetApplication(ctx, "bench")
		return err == nil && int(a.Status.Running) == n
	})
	return time.Since(began), err
}

// paddedModule is a WebAssembly module of size bytes: the header and one
// custom section of padding (simulated devices check its sha256, and run
// nothing).
func paddedModule(size int) []byte {
	const header = 8 + 1 + 3 + 4 // magic and version, section id, size (3 LEB bytes), name
	body := size - 8 - 1 - 3
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 0}
	m = append(m, byte(body)|0x80, byte(body>>7)|0x80, byte(body>>14))
	m = append(m, 3, 'p', 'a', 'd')
	return append(m, make([]byte, size-header)...)
}

// peakRSSBytes is process pid's peak resident set (VmHWM).
func peakRSSBytes(pid int) float64 { return procStatusBytes(pid, "VmHWM:") }

// resetPeakRSS makes process pid's peak resident set its resident set now
// (proc(5), /proc/PID/clear_refs); where that cannot be done, the peak
// stays the process's lifetime one.
func resetPeakRSS(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

// openLoop sends GET url rate times a second for d, each on its schedule
// whatever the answers before it, reads each answer whole and returns the
// median and 99th percentile of the latencies.
func openLoop(ctx context.Context, url string, rate int, d time.Duration) (p50, p99 time.Duration, err error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	total := int(d.Seconds() * float64(rate))
	lat := make([]time.Duration, total)
	errs := make(chan error, total)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		if !sleep(ctx, time.Until(at)) {
			return 0, 0, ctx.Err()
		}
		wg.Go(func() {
			resp, err := hc.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s: %s", url, resp.Status)
				}
			}
			// From the scheduled time: a late send counts against the
			// server, as a client on its schedule would see it.
			lat[i] = time.Since(at)
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	slices.Sort(lat)
	return lat[total/2], lat[total*99/100], nil
}

// benchMQTT holds n idle sessions on mosquitto over mutual TLS 1.3 and
// measures it as benchWasmbed measures the daemon.
func benchMQTT(ctx context.Context, b benchFlags, self, dir string, n int, f *figures, logw io.Writer) error {
	mdir := filepath.Join(dir, "mqtt")
	if err := writeMQTTIdentities(mdir); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // mosquitto takes its port from its configuration file
	conf := filepath.Join(mdir, "mosquitto.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
tls_version tlsv1.3
allow_anonymous true
persistence false
max_connections -1
log_dest none
user root
`, port, mqttFile(mdir, "ca"), mqttFile(mdir, "server"), mqttFile(mdir, "server"))), 0o600)
	if err != nil {
		return err
	}
	broker := exec.CommandContext(ctx, b.mosquitto, "-c", conf)
	broker.Stderr = logw
	if err := broker.Start(); err != nil {
		return err
	}
	defer func() { broker.Process.Signal(syscall.SIGTERM); broker.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitFor(ctx, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return fmt.Errorf("mosquitto never listened on %s", addr)
	}
	rss0 := rssBytes(broker.Process.Pid)
	var clients []*child
	defer func() {
		for _, c := range clients {
			c.stop()
		}
	}()
	for from := 0; from < n; from += b.perProcess {
		c, err := startChild(ctx, self, "mqtt", "--broker", addr, "--dir", mdir, "--server-name", "127.0.0.1",
			"--from", strconv.Itoa(from), "--count", strconv.Itoa(min(b.perProcess, n-from)))
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}
	online := func() (sum int64) {
		for _, c := range clients {
			sum += c.online.Load()
		}
		return sum
	}
	if err := waitFor(ctx, 5*time.Minute, func() bool { return online() >= int64(n) }); err != nil {
		return fmt.Errorf("%d MQTT sessions: %w (%d up)", n, err, online())
	}
	sleep(ctx, 12*time.Second)
	c0 := cpuTicks(broker.Process.Pid)
	sleep(ctx, b.window)
	c1 := cpuTicks(broker.Process.Pid)
	f.mqttCPU = 100 * float64(c1-c0) / clockTicks / b.window.Seconds()
	f.mqttPerSession = (rssBytes(broker.Process.Pid) - rss0) / float64(n)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// wasmbedd is a daemon process under measurement.
type wasmbedd struct {
	cmd          *exec.Cmd
	api, gateway string
	c            *client.Client
}

func startWasmbedd(ctx context.Context, bin, dataDir, apiAddr, gwAddr string, logw io.Writer) (*wasmbedd, error) {
	cmd := exec.CommandContext(ctx, bin, "--data-dir", dataDir, "--api-listen", apiAddr,
		"--gateway-listen", gwAddr, "--gateway-name", "bench", "--log-level", "info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &wasmbedd{cmd: cmd}
	started := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Level, Msg, API, Gateway string
			}
			switch json.Unmarshal(sc.Bytes(), &line); {
			case line.Msg == "daemon started":
				d.api, d.gateway = line.API, line.Gateway
				started <- nil
			case line.Level != "INFO" && line.Level != "DEBUG":
				fmt.Fprintln(logw, "wasmbedd:", sc.Text())
			}
		}
		started <- fmt.Errorf("wasmbedd ended before it started")
	}()
	if err := <-started; err != nil {
		cmd.Wait()
		return nil, err
	}
	if d.c, err = client.New("http://" + d.api); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

func (d *wasmbedd) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
}

// metric sums the samples of a Prometheus series from the daemon.
func (d *wasmbedd) metric(name string) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	text, err := d.c.Metrics(ctx)
	if err != nil {
		return -1
	}
	var sum float64
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += v
		}
	}
	return sum
}

func (d *wasmbedd) writes() float64   { return d.metric("wasmbed_store_writes_total") }
func (d *wasmbedd) sessions() float64 { return d.metric("wasmbed_gateway_sessions") }

// settle waits until the daemon's store writes stop for three seconds
// (the controllers caught up), for at most two minutes.
func (d *wasmbedd) settle(ctx context.Context) error {
	last, still := d.writes(), 0
	return waitFor(ctx, 2*time.Minute, func() bool {
		w := d.writes()
		if w == last {
			still++
		} else {
			last, still = w, 0
		}
		return still >= 12 // polled every 250 ms
	})
}

// child is a load process: this binary running hold or mqtt.
type child struct {
	cmd    *exec.Cmd
	online atomic.Int64
	done   chan struct{}
}

func startChild(ctx context.Context, self string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, self, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "online="); ok {
				v, _, _ = strings.Cut(v, " ")
				n, _ := strconv.ParseInt(v, 10, 64)
				c.online.Store(n)
			}
		}
	}()
	return c, nil
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	<-c.done
	c.cmd.Wait()
}

// runChild runs this binary with args to its end and returns its output.
func runChild(ctx context.Context, self string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	return string(out), err
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times.
const clockTicks = 100

// cpuTicks is the CPU time (user + system) process pid has used.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which ends with the last ')'.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime
}

// rssBytes is process pid's resident set.
func rssBytes(pid int) float64 { return procStatusBytes(pid, "VmRSS:") }

// procStatusBytes reads a size field of /proc/PID/status.
func procStatusBytes(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024
		}
	}
	return 0
}

func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", limit)
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// mqttFile is one of the PEM files of the MQTT comparison: ca, server or
// client (certificate then key).
func mqttFile(dir, name string) string { return filepath.Join(dir, "mqtt-"+name+".pem") }

// writeMQTTIdentities makes a P-256 CA, a server certificate for
// 127.0.0.1 and one client certificate that every MQTT client presents.
func writeMQTTIdentities(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench mqtt ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := os.WriteFile(mqttFile(dir, "ca"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return err
	}
	for i, leaf := range []struct {
		name string
		tmpl *x509.Certificate
	}{
		{"server", &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{"client", &x509.Certificate{Subject: pkix.Name{CommonName: "bench-client"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}},
	} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		leaf.tmpl.SerialNumber = big.NewInt(int64(2 + i))
		leaf.tmpl.NotBefore, leaf.tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		leaf.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, leaf.tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
		if err := os.WriteFile(mqttFile(dir, leaf.name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
