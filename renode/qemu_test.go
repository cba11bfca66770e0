package renode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// buildFirmware builds firmware/mcu with the Arm cross compiler into a
// temporary directory, or skips the test when the tools are missing.
func buildFirmware(tb testing.TB) string {
	tb.Helper()
	for _, tool := range []string{"arm-none-eabi-gcc", "qemu-system-arm", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("%s not installed (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm): %v", tool, err)
		}
	}
	build := tb.TempDir()
	cmd := exec.Command("make", "-C", filepath.Join("..", "firmware", "mcu"), "BUILD="+build)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("make firmware: %v\n%s", err, out)
	}
	return filepath.Join(build, "wasmbed-mcu.elf")
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// moduleFile is a sample app of testdata/apps as a gateway module.
func moduleFile(t *testing.T, file, app, version string) gateway.Module {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "apps", file))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return gateway.Module{App: app, Version: version, SHA256: sum[:], Data: b}
}

// TestQEMUBoard boots the real firmware in qemu-system-arm (mps2-an385)
// through the backend: the board reads its name from the boot config
// block, comes online in a real gateway through its serial link and the
// board link, answers on its console, and is gone after Stop.
func TestQEMUBoard(t *testing.T) {
	fw := buildFirmware(t)
	tg := startDockerTestGateway(t)
	// A relative working directory, as the daemon's default data dir is.
	dir, err := filepath.Rel(mustGetwd(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQEMU(QEMUConfig{Firmware: fw, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stop := runTestBackend(t, q)
	defer stop()
	spec := tg.spec(t, "mcu-1", "mps2-an385")
	if err := q.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	tg.events.wait(t, "mcu-1 online", onlineEvent("mcu-1"))
	if s, ok := tg.gw.Session("mcu-1"); !ok || s.Board != "mps2-an385" || !strings.HasPrefix(s.Firmware, "wasmbed-mcu") {
		t.Errorf("session = %+v, %v; want the mps2-an385 board running wasmbed-mcu", s, ok)
	}
	c, err := q.Console("mcu-1")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			c.Input([]byte("link\rsession\r"))
			time.Sleep(500 * time.Millisecond)
			t.Logf("console of mcu-1:\n%s", c.History())
		}
	}()
	waitConsole(t, c, "wasmbed-mcu dev on mps2-an385")
	waitConsole(t, c, "session: online")
	if err := c.Input([]byte("session\r")); err != nil {
		t.Fatal(err)
	}
	waitConsole(t, c, "mcu-1 online")

	// The sensor app: transferred over the serial link in chunks, verified,
	// run by the firmware's interpreter; its telemetry reaches the gateway.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sensor := sensorModule(t)
	if err := tg.gw.Deploy(ctx, "mcu-1", sensor); err != nil {
		t.Fatalf("Deploy sensor to the qemu board: %v\n%s", err, c.History())
	}
	tg.events.wait(t, "telemetry from mcu-1", func(e gateway.Event) bool {
		return e.Type == gateway.EventTelemetry && e.Device == "mcu-1" && e.Telemetry.App == "sensor" && len(e.Telemetry.Values) > 0
	})
	if err := c.Input([]byte("apps\r")); err != nil {
		t.Fatal(err)
	}
	waitConsole(t, c, "sensor 1 running")

	// A looping app is stopped by its budget; the board stays up.
	loop := moduleFile(t, "loop.wasm", "loop", "1")
	loop.Limits = protocol.Limits{CallMS: 100, PeriodMS: 50}
	if err := tg.gw.Deploy(ctx, "mcu-1", loop); err != nil {
		t.Fatalf("Deploy loop: %v", err)
	}
	tg.events.wait(t, "loop failed on its budget", func(e gateway.Event) bool {
		return e.Type == gateway.EventApp && e.Device == "mcu-1" && e.App.App == "loop" &&
			e.App.State == protocol.StateFailed && strings.Contains(e.App.Reason, "time limit")
	})
	if _, ok := tg.gw.Session("mcu-1"); !ok {
		t.Fatal("the board lost its session after the looping app")
	}

	// An update, and a rollback: a deploy of the version the board holds,
	// installed without a transfer.
	v2 := moduleFile(t, "sensor-v2.wasm", "sensor", "2")
	v2.Limits = sensor.Limits
	if err := tg.gw.Deploy(ctx, "mcu-1", v2); err != nil {
		t.Fatalf("Deploy sensor 2: %v", err)
	}
	mark := tg.events.mark()
	if err := tg.gw.Deploy(ctx, "mcu-1", sensor); err != nil {
		t.Fatalf("Deploy sensor 1 to roll back: %v", err)
	}
	tg.events.wait(t, "sensor back at version 1", func(e gateway.Event) bool {
		return e.Type == gateway.EventApp && e.Device == "mcu-1" && e.App.App == "sensor" && e.App.Version == "1" && e.App.Previous == "2" && e.App.State == protocol.StateRunning
	})
	tg.events.noTransferSince(t, mark, "the rollback to sensor 1")

	// A module the board refuses (an import the ABI lacks) changes nothing
	// installed: version 1 runs on, and version 2 is still there to roll
	// back to.
	bad := moduleFile(t, "badimport.wasm", "sensor", "3")
	if err := tg.gw.Deploy(ctx, "mcu-1", bad); err == nil || !strings.Contains(err.Error(), "invalid module") {
		t.Fatalf("Deploy of a module the board refuses = %v, want invalid module", err)
	}
	if err := tg.gw.Deploy(ctx, "mcu-1", v2); err != nil {
		t.Fatalf("Deploy sensor 2 after the refused module: %v", err)
	}
	tg.events.wait(t, "sensor at version 2 again", func(e gateway.Event) bool {
		return e.Type == gateway.EventApp && e.Device == "mcu-1" && e.App.App == "sensor" && e.App.Version == "2" && e.App.Previous == "1" && e.App.State == protocol.StateRunning
	})

	// The same module under another version name and limits: relabelled
	// and restarted under the new limits, without a transfer.
	mark = tg.events.mark()
	v2b := v2
	v2b.Version, v2b.Limits.PeriodMS = "2b", 500
	if err := tg.gw.Deploy(ctx, "mcu-1", v2b); err != nil {
		t.Fatalf("Deploy sensor 2 as 2b: %v", err)
	}
	if a, _ := tg.gw.Session("mcu-1"); !slices.ContainsFunc(a.Apps, func(a protocol.AppInfo) bool {
		return a.App == "sensor" && a.Version == "2b" && a.Limits == v2b.Limits && a.State == protocol.StateRunning
	}) {
		t.Errorf("after the relabel the board reports %+v", a.Apps)
	}
	tg.events.noTransferSince(t, mark, "the relabel")

	// Both app slots are taken (sensor runs, loop failed): a third app is
	// refused until one is removed, which frees its slot.
	hello := moduleFile(t, "hello.wasm", "hello", "1")
	hello.Limits = sensor.Limits
	if err := tg.gw.Deploy(ctx, "mcu-1", hello); err == nil || !strings.Contains(err.Error(), "at most 2 apps") {
		t.Fatalf("Deploy a third app = %v, want refused: both slots held", err)
	}
	if err := tg.gw.Remove(ctx, "mcu-1", "loop"); err != nil {
		t.Fatalf("Remove loop: %v", err)
	}
	if err := tg.gw.Deploy(ctx, "mcu-1", hello); err != nil {
		t.Fatalf("Deploy a third app after removing loop: %v", err)
	}
	if err := c.Input([]byte("apps\r")); err != nil {
		t.Fatal(err)
	}
	waitConsole(t, c, "hello 1 ")
	if a, _ := tg.gw.Session("mcu-1"); slices.ContainsFunc(a.Apps, func(a protocol.AppInfo) bool { return a.App == "loop" }) {
		t.Errorf("after its removal the board reports %+v", a.Apps)
	}

	st := q.Status("mcu-1")
	if st.State != Running || st.Backend != "qemu" {
		t.Errorf("Status = %+v, want a running qemu board", st)
	}
	pid, _ := strconv.Atoi(st.ID)

	if err := q.Stop(context.Background(), "mcu-1"); err != nil {
		t.Fatal(err)
	}
	if st := q.Status("mcu-1"); st.State != Stopped {
		t.Errorf("after Stop, Status = %+v", st)
	}
	if pid == 0 || syscall.Kill(pid, 0) == nil {
		t.Errorf("qemu (pid %d) still runs after Stop", pid)
	}
	tg.events.wait(t, "mcu-1 offline", func(e gateway.Event) bool { return e.Type == gateway.EventOffline && e.Device == "mcu-1" })
}

// TestQEMUBoardExitsEarly gives the real qemu-system-arm a firmware path it
// cannot load (a directory): QEMU exits before it serves the UARTs. The board fails with
// QEMU's own reason, and Stop and Run return.
func TestQEMUBoardExitsEarly(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-arm"); err != nil {
		t.Skipf("qemu-system-arm not installed (Debian: qemu-system-arm): %v", err)
	}
	tg := startDockerTestGateway(t)
	fw := filepath.Join(t.TempDir(), "not-firmware.elf")
	if err := os.Mkdir(fw, 0o755); err != nil {
		t.Fatal(err)
	}
	q, err := NewQEMU(QEMUConfig{Firmware: fw, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	stop := runTestBackend(t, q)
	if err := q.Start(context.Background(), tg.spec(t, "mcu-bad", "mps2-an385")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mcu-bad failed", func() bool { return q.Status("mcu-bad").State == Failed })
	if st := q.Status("mcu-bad"); !strings.Contains(st.Reason, "qemu") || !strings.Contains(st.Reason, "not-firmware.elf") {
		t.Errorf("Status = %+v, want a reason from qemu naming the firmware file", st)
	}
	if err := q.Stop(context.Background(), "mcu-bad"); err != nil {
		t.Errorf("Stop: %v", err)
	}
	stop()
}

// BenchmarkQEMUIdleCPU measures the host CPU an idle qemu board costs:
// the firmware online, no app, sleeping (wfi) between its 1 ms ticks,
// heartbeats and link polls. It reports the share of one core over 5 s.
func BenchmarkQEMUIdleCPU(b *testing.B) {
	tg := startDockerTestGateway(b)
	q, err := NewQEMU(QEMUConfig{Firmware: buildFirmware(b), Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	stop := runTestBackend(b, q)
	defer stop()
	if err := q.Start(context.Background(), tg.spec(b, "idle-1", "mps2-an385")); err != nil {
		b.Fatal(err)
	}
	tg.events.wait(b, "idle-1 online", onlineEvent("idle-1"))
	pid := q.Status("idle-1").ID
	b.ResetTimer()
	var share float64
	for range b.N {
		before := cpuTicks(b, pid)
		time.Sleep(5 * time.Second)
		share = float64(cpuTicks(b, pid)-before) / 100 / 5 // USER_HZ is 100
	}
	b.ReportMetric(share*100, "%core")
}

// cpuTicks reads utime+stime of a process from /proc, in clock ticks.
func cpuTicks(tb testing.TB, pid string) int64 {
	tb.Helper()
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}
