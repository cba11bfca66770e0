package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/firmware/loadgen"
)

// fleetFlags name a population of simulated devices.
type fleetFlags struct {
	gateway, serverName, dir, prefix string
	from, count, perAddress          int
}

func (f fleetFlags) names() []string {
	out := make([]string, f.count)
	for i := range out {
		out[i] = loadgen.Name(f.prefix, f.from+i)
	}
	return out
}

// config is the devices' view of the gateway, with the CA in dir.
func (f fleetFlags) config(stats *loadgen.Stats) (loadgen.Config, error) {
	pem, err := os.ReadFile(loadgen.CAFile(f.dir))
	if err != nil {
		return loadgen.Config{}, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return loadgen.Config{}, fmt.Errorf("%s holds no certificate", loadgen.CAFile(f.dir))
	}
	return loadgen.Config{Gateway: f.gateway, ServerName: f.serverName, Pool: pool, Stats: stats}, nil
}

// source spreads device i of this process over the source addresses, by
// its number in the whole fleet.
func (f fleetFlags) source(i int) net.IP { return loadgen.SourceFor(f.from+i, f.perAddress) }

type enrollFlags struct {
	*fleetFlags
	api, tokenFile string
	concurrency    int
}

// enroll creates the devices (with a one-time token each) through the
// API, then enrolls them over the protocol, and prints the enrollment
// rate of every thousand: "enrolled=N rate=R/s".
func enroll(ctx context.Context, e enrollFlags, out io.Writer) error {
	var opts []client.Option
	if e.tokenFile != "" {
		tok, err := os.ReadFile(e.tokenFile)
		if err != nil {
			return err
		}
		opts = append(opts, client.WithToken(strings.TrimSpace(string(tok))))
	}
	c, err := client.New(e.api, opts...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return err
	}
	names := e.names()
	tokens := make([]string, len(names))
	var ca string
	err = parallel(ctx, len(names), e.concurrency, func(i int) error {
		_, err := c.CreateDevice(ctx, &v1alpha1.Device{
			ObjectMeta: metav1.ObjectMeta{Name: names[i], Labels: map[string]string{"fleet": e.prefix}},
			Spec:       v1alpha1.DeviceSpec{Board: "mps2-an385"},
		})
		if err != nil && !errors.Is(err, &api.Error{Reason: api.ReasonAlreadyExists}) {
			return err
		}
		t, err := c.CreateToken(ctx, names[i], time.Hour)
		if err != nil {
			return err
		}
		tokens[i], ca = t.Token, t.CA
		return nil
	})
	if err != nil {
		return fmt.Errorf("create devices: %w", err)
	}
	if err := os.WriteFile(loadgen.CAFile(e.dir), []byte(ca), 0o600); err != nil {
		return err
	}
	cfg, err := e.config(nil)
	if err != nil {
		return err
	}
	var done atomic.Int64
	var mu sync.Mutex
	last := time.Now()
	err = parallel(ctx, len(names), e.concurrency, func(i int) error {
		c := cfg
		c.Source = e.source(i)
		certPEM, keyPEM, err := loadgen.Enroll(ctx, c, names[i], tokens[i])
		if err != nil {
			return err
		}
		if err := loadgen.SaveIdentity(e.dir, names[i], certPEM, keyPEM); err != nil {
			return err
		}
		if n := done.Add(1); n%1000 == 0 || int(n) == len(names) {
			mu.Lock()
			now := time.Now()
			batch := int(n) % 1000
			if batch == 0 {
				batch = 1000
			}
			fmt.Fprintf(out, "enrolled=%d rate=%.0f/s\n", n, float64(batch)/now.Sub(last).Seconds())
			last = now
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	return nil
}

// parallel runs f(0..n-1) on at most width goroutines, stopping at the
// first error.
func parallel(ctx context.Context, n, width int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range max(width, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// hold holds the sessions of the devices enrolled in dir until ctx ends.
func hold(ctx context.Context, f fleetFlags, out io.Writer) error {
	stats := &loadgen.Stats{}
	cfg, err := f.config(stats)
	if err != nil {
		return err
	}
	devices := make([]*loadgen.Device, 0, f.count)
	for _, n := range f.names() {
		d, err := loadgen.LoadDevice(f.dir, n)
		if err != nil {
			return err
		}
		devices = append(devices, d)
	}
	go report(ctx, stats, out)
	refused, err := loadgen.Hold(ctx, cfg, devices, f.source)
	if err != nil {
		return fmt.Errorf("%d devices refused for good, the first: %w", refused, err)
	}
	return nil
}

type mqttFlags struct {
	*fleetFlags
	broker    string
	keepalive time.Duration
}

// holdMQTT holds count idle MQTT sessions with the client identity in
// dir (mqtt-ca.pem, mqtt-client.pem) until ctx ends.
func holdMQTT(ctx context.Context, m mqttFlags, out io.Writer) error {
	caPEM, err := os.ReadFile(mqttFile(m.dir, "ca"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	id, err := os.ReadFile(mqttFile(m.dir, "client"))
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(id, id)
	if err != nil {
		return err
	}
	stats := &loadgen.Stats{}
	go report(ctx, stats, out)
	var wg sync.WaitGroup
	for i, name := range m.names() {
		c := loadgen.MQTT{Broker: m.broker, Source: m.source(i), Keepalive: m.keepalive, Stats: stats,
			TLS: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: m.serverName, Certificates: []tls.Certificate{cert}}}
		wg.Go(func() { c.Hold(ctx, name) })
	}
	wg.Wait()
	return nil
}

// report prints stats every second until ctx ends.
func report(ctx context.Context, s *loadgen.Stats, out io.Writer) {
	every(ctx, time.Second, func() {
		fmt.Fprintf(out, "online=%d sessions=%d failures=%d heartbeats=%d installed=%d\n",
			s.Online.Load(), s.Sessions.Load(), s.Failures.Load(), s.Heartbeats.Load(), s.Installed.Load())
	})
}
