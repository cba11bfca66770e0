package daemon_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/firmware/loadgen"
)

// limitedDaemonEnv makes the test binary a daemon with few file
// descriptors, its data in the directory the variable names.
const (
	limitedDaemonEnv = "WASMBED_TEST_LIMITED_DAEMON"
	limitedDeviceEnv = "WASMBED_TEST_DEVICE_BINARY"
	// limitedFiles is the daemon's descriptor limit, as `prlimit
	// --nofile` would set it: room to start, not for the flood.
	limitedFiles = 150
)

// runLimitedDaemon runs a daemon under a descriptor limit until its
// standard input closes, printing its addresses first.
func runLimitedDaemon(dir string) int {
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limitedFiles, Max: limitedFiles}); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	err := daemon.Run(ctx, daemon.Config{
		DataDir: dir, APIListen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0", GatewayName: "gw-limited",
		DeviceBinary: os.Getenv(limitedDeviceEnv),
		Logger:       slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		Ready:        func(api, gw net.Addr) { fmt.Printf("%s %s\n", api, gw) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		return 1
	}
	return 0
}

// TestDescriptorExhaustion runs a daemon in a process of its own with 150
// file descriptors and floods its gateway with raw TCP connections: while
// it cannot accept, /readyz says so and the metric counts; once the flood
// is gone a device enrolls and holds a session. (The gateway's accept loop
// used to end at the first EMFILE, silently and for good.)
func TestDescriptorExhaustion(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), limitedDaemonEnv+"="+t.TempDir(), limitedDeviceEnv+"="+deviceBinary)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs syncWriter
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("limited daemon: %v\n%s", err, logs.String())
		}
	})
	var apiAddr, gwAddr string
	if _, err := fmt.Fscan(bufio.NewReader(stdout), &apiAddr, &gwAddr); err != nil {
		t.Fatalf("limited daemon did not start: %v\n%s", err, logs.String())
	}
	// One kept-alive connection to the API, opened before the flood, so
	// that the daemon can be asked how it is while it has no descriptor
	// to spare.
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	c, err := client.New("http://"+apiAddr, client.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CreateDevice(ctx, &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: "survivor"},
		Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"}}); err != nil {
		t.Fatal(err)
	}
	token, err := c.CreateToken(ctx, "survivor", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	var flood []net.Conn
	for range 2 * limitedFiles {
		nc, err := net.Dial("tcp", gwAddr)
		if err != nil {
			break // the backlog is full: the flood is as big as it gets
		}
		flood = append(flood, nc)
	}
	eventually(t, "the daemon to say it cannot accept", func() (bool, error) {
		return c.Ready(ctx) != nil && metricSum(t, c, "wasmbed_gateway_accept_errors_total", "") > 0, nil
	})
	for _, nc := range flood {
		nc.Close()
	}
	eventually(t, "the daemon to be ready again", func() (bool, error) { return c.Ready(ctx) == nil, nil })

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(token.CA))
	cfg := loadgen.Config{Gateway: gwAddr, ServerName: "127.0.0.1", Pool: pool}
	certPEM, keyPEM, err := loadgen.Enroll(ctx, cfg, "survivor", token.Token)
	if err != nil {
		t.Fatalf("enroll after the flood: %v", err)
	}
	dev, err := loadgen.NewDevice("survivor", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- dev.Run(dctx, cfg) }()
	defer func() { stop(); <-ran }()
	eventually(t, "survivor online", func() (bool, error) {
		d, err := c.GetDevice(ctx, "survivor")
		return err == nil && d.Status.Phase == v1alpha1.DeviceOnline, err
	})
	if !strings.Contains(logs.String(), "cannot accept") {
		t.Errorf("the daemon logged nothing of its accept failures:\n%s", logs.String())
	}
}
