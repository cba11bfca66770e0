package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/firmware/loadgen"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// soakFlags configure the soak: a fleet held online while hostile
// clients come and go and rollouts follow one another.
type soakFlags struct {
	wasmbedd     string
	devices      int
	duration     time.Duration
	rolloutEvery time.Duration
	hostileRate  int // new connections a second of each hostile kind
	work         string
}

// hostile is one kind of misbehaving client: it opens a connection a
// tick and holds it as that kind does, at most limit at once.
type hostile struct {
	name   string
	opened atomic.Int64
	run    func(ctx context.Context) // one connection, from dial to close
}

// soakSample is the daemon seen at one moment of the soak.
type soakSample struct {
	at       time.Duration
	fds      int
	rss      float64
	sessions float64
}

// soak runs the soak and prints what it saw: every sample, the
// rollouts, and the hostile connections opened.
func soak(ctx context.Context, s soakFlags, out, logw io.Writer) error {
	work, self, cleanup, err := workDir(s.work, "wasmbed-soak-")
	if err != nil {
		return err
	}
	defer cleanup()
	d, err := startWasmbedd(ctx, s.wasmbedd, filepath.Join(work, "daemon"), freeAddr(), freeAddr(), logw)
	if err != nil {
		return err
	}
	defer d.stop()
	fleet := filepath.Join(work, "fleet")
	if _, err := runChild(ctx, self, "enroll", "--api", "http://"+d.api, "--gateway", d.gateway, "--dir", fleet,
		"--count", strconv.Itoa(s.devices)); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	var holders []*child
	defer func() {
		for _, h := range holders {
			h.stop()
		}
	}()
	for from := 0; from < s.devices; from += 5000 {
		h, err := startChild(ctx, self, "hold", "--gateway", d.gateway, "--dir", fleet,
			"--from", strconv.Itoa(from), "--count", strconv.Itoa(min(5000, s.devices-from)))
		if err != nil {
			return err
		}
		holders = append(holders, h)
	}
	if err := waitFor(ctx, 5*time.Minute, func() bool { return d.sessions() >= float64(s.devices) }); err != nil {
		return fmt.Errorf("%d devices online: %w", s.devices, err)
	}
	caPEM, err := os.ReadFile(loadgen.CAFile(fleet))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	sctx, stop := context.WithTimeout(ctx, s.duration)
	defer stop()
	kinds := hostileKinds(d.gateway, d.api, pool)
	var wg sync.WaitGroup
	for _, h := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			every(sctx, time.Second/time.Duration(max(s.hostileRate, 1)), func() {
				wg.Add(1)
				go func() {
					defer wg.Done()
					h.opened.Add(1)
					h.run(sctx)
				}()
			})
		}()
	}
	var rollouts []time.Duration
	failed := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 1; sctx.Err() == nil; v++ {
			began := time.Now()
			if err := soakRollout(sctx, d, v, s.devices); err != nil {
				if sctx.Err() == nil {
					fmt.Fprintf(logw, "rollout of version %d: %v\n", v, err)
					failed++
				}
				return
			}
			rollouts = append(rollouts, time.Since(began))
			fmt.Fprintf(logw, "rollout of version %d: %.1f s\n", v, time.Since(began).Seconds())
			sleep(sctx, s.rolloutEvery-time.Since(began))
		}
	}()
	var samples []soakSample
	start := time.Now()
	pid := d.cmd.Process.Pid
	sample := func() {
		samples = append(samples, soakSample{at: time.Since(start), fds: openFiles(pid), rss: rssBytes(pid), sessions: d.sessions()})
		last := samples[len(samples)-1]
		fmt.Fprintf(logw, "%4.0f s: fds %d, RSS %.0f MB, sessions %.0f\n", last.at.Seconds(), last.fds, last.rss/1e6, last.sessions)
	}
	sample()
	every(sctx, 10*time.Second, sample)
	wg.Wait()
	sample()

	fmt.Fprintf(out, "soak of %s: %d devices, %d new hostile connections a second of each kind, a rollout every %s\n\n",
		s.duration, s.devices, s.hostileRate, s.rolloutEvery)
	fmt.Fprintf(out, "| seconds | daemon fds | daemon RSS | sessions |\n| --- | --- | --- | --- |\n")
	for i, x := range samples {
		if i%6 == 0 || i == len(samples)-1 {
			fmt.Fprintf(out, "| %.0f | %d | %.0f MB | %.0f |\n", x.at.Seconds(), x.fds, x.rss/1e6, x.sessions)
		}
	}
	least := samples[0].sessions
	for _, x := range samples {
		least = min(least, x.sessions)
	}
	fmt.Fprintf(out, "\nfewest sessions seen: %.0f of %d\n", least, s.devices)
	fmt.Fprintf(out, "rollouts completed: %d, failed: %d, durations:", len(rollouts), failed)
	for _, r := range rollouts {
		fmt.Fprintf(out, " %.1f s", r.Seconds())
	}
	fmt.Fprintln(out)
	for _, h := range kinds {
		fmt.Fprintf(out, "hostile %s: %d connections\n", h.name, h.opened.Load())
	}
	return nil
}

// every calls f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// hostileKinds are the clients of the soak that never do what the
// daemon is for: TCP without TLS, a TLS handshake that stops, an
// enrollment session that sends only messages of an unknown type, and
// an HTTP request whose body never comes.
func hostileKinds(gateway, api string, pool *x509.CertPool) []*hostile {
	hold := func(ctx context.Context, c net.Conn, d time.Duration) {
		defer c.Close()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return []*hostile{
		{name: "never-TLS", run: func(ctx context.Context) {
			if c, err := net.Dial("tcp", gateway); err == nil {
				hold(ctx, c, 20*time.Second)
			}
		}},
		{name: "stalled-TLS", run: func(ctx context.Context) {
			if c, err := net.Dial("tcp", gateway); err == nil {
				c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // a ClientHello's first bytes
				hold(ctx, c, 20*time.Second)
			}
		}},
		{name: "enrollment-junk", run: func(ctx context.Context) {
			c, err := tls.Dial("tcp", gateway, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
			if err != nil {
				return
			}
			defer c.Close()
			frame, _ := protocol.Encode(&protocol.Message{Type: 999, ID: 1})
			for ctx.Err() == nil {
				if err := protocol.WriteFrame(c, frame); err != nil {
					return
				}
				sleep(ctx, 100*time.Millisecond)
			}
		}},
		{name: "stalled-HTTP-body", run: func(ctx context.Context) {
			if c, err := net.Dial("tcp", api); err == nil {
				fmt.Fprintf(c, "POST /api/v1/devices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{")
				hold(ctx, c, 40*time.Second)
			}
		}},
	}
}

// soakRollout rolls version v of the soak's app out to every device: a
// module of its own (its padding says v), created or updated in place.
func soakRollout(ctx context.Context, d *wasmbedd, v, n int) error {
	mod := paddedModule(16 << 10)
	mod[len(mod)-1] = byte(v)
	mod[len(mod)-2] = byte(v >> 8)
	m, err := d.c.UploadModule(ctx, bytes.NewReader(mod))
	if err != nil {
		return err
	}
	spec := v1alpha1.ApplicationSpec{
		Module: v1alpha1.ModuleRef{SHA256: m.SHA256}, Version: strconv.Itoa(v),
		Target:  v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "lg"}}},
		Rollout: v1alpha1.Rollout{BatchPercent: 100},
	}
	if v == 1 {
		_, err = d.c.CreateApplication(ctx, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: "soak"}, Spec: spec})
	} else {
		var app *v1alpha1.Application
		if app, err = d.c.GetApplication(ctx, "soak"); err == nil {
			app.Spec = spec
			_, err = d.c.UpdateApplication(ctx, app)
		}
	}
	if err != nil {
		return err
	}
	return waitFor(ctx, 10*time.Minute, func() bool {
		a, err := d.c.GetApplication(ctx, "soak")
		return err == nil && a.Status.CurrentRevision == spec.Version && int(a.Status.Running) == n
	})
}

// openFiles is how many file descriptors process pid holds.
func openFiles(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(entries)
}
