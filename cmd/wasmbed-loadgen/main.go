// Command wasmbed-loadgen puts a fleet's load on a running wasmbedd from a
// process of its own, and measures it side by side with an MQTT broker
// (docs/benchmarks.md, make bench-fleet).
//
//	wasmbed-loadgen enroll --api URL --gateway ADDR --dir DIR --count N   create N devices and enroll them
//	wasmbed-loadgen hold   --gateway ADDR --dir DIR --count N             hold their sessions until stopped
//	wasmbed-loadgen mqtt   --broker ADDR --dir DIR --count N              hold N idle MQTT sessions
//	wasmbed-loadgen bench  --wasmbedd bin/wasmbedd --sizes 1000,10000    run the fleet scenarios, print figures
//	wasmbed-loadgen soak   --wasmbedd bin/wasmbedd --duration 30m        hold a fleet among hostile clients while rollouts run
//
// hold and mqtt print a status line every second (online=, sessions=,
// failures=, heartbeats=) until SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: wasmbed-loadgen enroll|hold|mqtt|bench|soak [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var f fleetFlags
	fs.StringVar(&f.gateway, "gateway", "127.0.0.1:8081", "the gateway's host:port")
	fs.StringVar(&f.serverName, "server-name", "127.0.0.1", "the name in the gateway's certificate")
	fs.StringVar(&f.dir, "dir", "loadgen-fleet", "identities of the simulated devices (and ca.pem)")
	fs.StringVar(&f.prefix, "prefix", "lg", "device names are PREFIX-00000, PREFIX-00001, ...")
	fs.IntVar(&f.from, "from", 0, "first device number")
	fs.IntVar(&f.count, "count", 1000, "number of devices")
	fs.IntVar(&f.perAddress, "per-address", 20000, "connections per loopback source address (127.0.0.2, .3, ...); 0: the system's choice")
	var err error
	switch os.Args[1] {
	case "enroll":
		var e enrollFlags
		e.fleetFlags = &f
		fs.StringVar(&e.api, "api", "http://127.0.0.1:3001", "the daemon's API")
		fs.StringVar(&e.tokenFile, "token-file", "", "file holding the API bearer token")
		fs.IntVar(&e.concurrency, "concurrency", 64, "enrollments in flight")
		fs.Parse(os.Args[2:])
		err = enroll(ctx, e, os.Stdout)
	case "hold":
		fs.Parse(os.Args[2:])
		err = hold(ctx, f, os.Stdout)
	case "mqtt":
		var m mqttFlags
		m.fleetFlags = &f
		fs.StringVar(&m.broker, "broker", "127.0.0.1:8883", "the MQTT broker's host:port (mutual TLS)")
		fs.DurationVar(&m.keepalive, "keepalive", 10*time.Second, "MQTT keepalive: a ping this often")
		fs.Parse(os.Args[2:])
		err = holdMQTT(ctx, m, os.Stdout)
	case "bench":
		var b benchFlags
		var sizes string
		fs.StringVar(&b.wasmbedd, "wasmbedd", "bin/wasmbedd", "the daemon binary")
		fs.StringVar(&b.mosquitto, "mosquitto", "/usr/sbin/mosquitto", "the MQTT broker compared with; empty: none")
		fs.StringVar(&sizes, "sizes", "1000,10000", "fleet sizes")
		fs.IntVar(&b.runs, "runs", 3, "runs of each scenario; figures are their medians")
		fs.IntVar(&b.perProcess, "per-process", 5000, "simulated devices per load process")
		fs.DurationVar(&b.window, "window", 30*time.Second, "how long steady state is measured")
		fs.StringVar(&b.work, "work", "", "work directory; a temporary one by default")
		fs.Parse(os.Args[2:])
		for _, s := range strings.Split(sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				fmt.Fprintf(os.Stderr, "wasmbed-loadgen: --sizes: %q is not a fleet size\n", s)
				os.Exit(2)
			}
			b.sizes = append(b.sizes, n)
		}
		err = bench(ctx, b, os.Stdout, os.Stderr)
	case "soak":
		var s soakFlags
		fs.StringVar(&s.wasmbedd, "wasmbedd", "bin/wasmbedd", "the daemon binary")
		fs.IntVar(&s.devices, "devices", 1000, "simulated devices held online")
		fs.DurationVar(&s.duration, "duration", 30*time.Minute, "how long the soak runs")
		fs.DurationVar(&s.rolloutEvery, "rollout-every", 2*time.Minute, "a new version is rolled out this often (once the last is done)")
		fs.IntVar(&s.hostileRate, "hostile-rate", 10, "new connections a second of each hostile kind")
		fs.StringVar(&s.work, "work", "", "work directory; a temporary one by default")
		fs.Parse(os.Args[2:])
		err = soak(ctx, s, os.Stdout, os.Stderr)
	default:
		fmt.Fprintf(os.Stderr, "wasmbed-loadgen: unknown command %q: enroll, hold, mqtt, bench or soak\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wasmbed-loadgen:", err)
		os.Exit(1)
	}
}
