// Package daemon is wasmbedd: it owns the device gateway, the resource
// store, the controllers, the emulated boards and the HTTP API, and runs
// them together until its context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/rest"

	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/apiserver"
	"wasmbed.io/wasmbed/daemon/controller"
	"wasmbed.io/wasmbed/daemon/events"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/renode"
)

// Config configures a daemon. Zero values take the defaults named.
type Config struct {
	DataDir       string // required: CA, store, modules, board state
	APIListen     string // HTTP API; 127.0.0.1:3001
	GatewayListen string // device TLS port; :8081
	// GatewayAdvertise is the host:port devices and boards dial; by default
	// the listen address, with 127.0.0.1 for an unspecified host.
	GatewayAdvertise string
	GatewayName      string // this daemon's Gateway resource; the host name
	// APIAdvertise is the host:port the other daemons of a cluster reach
	// this one's API at; by default the API's listen address, with
	// 127.0.0.1 for an unspecified host.
	APIAdvertise string
	Token        string // API bearer token; required when APIListen is not loopback
	DeviceBinary string // wasmbed-device for sim boards; found next to the daemon by default
	DockerImage  string // image of docker boards; renode.DefaultDockerImage
	// MCUFirmware is the firmware ELF of qemu boards (make firmware);
	// renode.FirmwareFile next to the daemon by default.
	MCUFirmware string
	Version     string

	HeartbeatInterval time.Duration // device heartbeats; gateway default
	Resync            time.Duration // controllers' periodic resync; 10s
	// GatewayHeartbeat is how often the daemon heartbeats its Gateway
	// resource; a gateway silent for three is unhealthy and its devices
	// move. controller.DefaultHeartbeat.
	GatewayHeartbeat time.Duration

	// Store is StoreEmbedded (the default: bbolt in the data directory)
	// or StoreKubernetes: the custom resources in Namespace of the
	// cluster Kube points at, where the daemons of the namespace elect a
	// leader (Lease tunes it) and each is one gateway.
	Store     string
	Kube      *rest.Config
	Namespace string
	Lease     LeaseTimes
	// CADir holds a CA shared by several daemons (ca.crt, ca.key; a
	// mounted Secret), read-only; by default each daemon has its own in
	// its data directory.
	CADir string

	// AllowEmptyStore lets the embedded store start empty (a new or
	// zero-length file) next to a CA that has issued device certificates:
	// without it the daemon refuses, as the fleet's records are lost.
	AllowEmptyStore bool

	// Demo seeds three emulated devices and rolls DemoModule out to them.
	Demo       bool
	DemoModule string

	// StopLimit is how long a stop waits for the daemon's parts (boards,
	// controllers, streams) to end before it gives up on them and names
	// them in its error; 30s.
	StopLimit time.Duration

	// SSH, when set, is run beside the API as one more member of the
	// daemon's group, with the API's listen address, once the API
	// listens; it ends with the daemon, and its error ends the daemon.
	// cmd/wasmbedd sets it to an sshconsole.Server's Serve with
	// --ssh-listen (the fleet console over SSH); nil runs nothing.
	SSH func(ctx context.Context, api net.Addr) error

	Logger *slog.Logger
	// Ready, when set, receives the API and gateway addresses once both
	// listen (for tests and scripts that start on port 0).
	Ready func(api, gateway net.Addr)
}

func (c *Config) defaults() error {
	if c.DataDir == "" {
		return errors.New("a data directory is required")
	}
	if c.APIListen == "" {
		c.APIListen = "127.0.0.1:3001"
	}
	if c.GatewayListen == "" {
		c.GatewayListen = ":8081"
	}
	if c.GatewayName == "" {
		h, err := os.Hostname()
		if err != nil || pki.ValidDeviceName(h) != nil {
			h = "gateway"
		}
		c.GatewayName = h
	}
	if c.Store == StoreKubernetes && c.Namespace == "" {
		c.Namespace = "wasmbed"
	}
	if c.StopLimit <= 0 {
		c.StopLimit = 30 * time.Second
	}
	if c.GatewayHeartbeat <= 0 {
		c.GatewayHeartbeat = controller.DefaultHeartbeat
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Token == "" && !IsLoopback(c.APIListen) {
		return fmt.Errorf("the API listens on %s, beyond loopback: give it a bearer token (--token-file)", c.APIListen)
	}
	return nil
}

// IsLoopback reports whether the listen address addr (host:port) is on
// loopback (127.0.0.0/8, ::1 or localhost).
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run runs the daemon until ctx ends, then shuts down in order: the API
// stops accepting, controllers drain, device sessions close, the boards this
// daemon started stop, and the store is closed. It returns nil after a
// clean shutdown.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return fmt.Errorf("daemon config: %w", err)
	}
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	eventCounts := newEventCounts()
	st, recorder, closeStore, err := openStore(cfg, eventCounts)
	if err != nil {
		return err
	}
	defer closeStore()
	embedded, _ := st.(*store.Embedded)
	// Controllers read the Kubernetes store from informers' caches; the
	// API reads it directly, so that its callers read their own writes.
	cached := st
	if k, ok := st.(*store.Kubernetes); ok {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if cached, err = k.Cached(cctx); err != nil {
			return err
		}
	}
	// Every write is counted, whoever makes it: the cost of an event in
	// store writes is one of the figures the fleet benchmarks watch.
	writes := newStoreWrites()
	if cached == st {
		st = store.Counted(st, writes.count)
		cached = st
	} else {
		st, cached = store.Counted(st, writes.count), store.Counted(cached, writes.count)
	}
	// Enrollment tokens live on their Devices in the store, which the
	// daemons of a cluster share.
	ca, err := pki.Open(filepath.Join(cfg.DataDir, "pki"), pki.Options{
		CADir:  cfg.CADir,
		Tokens: storeTokens{devices: st.Devices(), cached: cached.Devices(), now: time.Now},
	})
	if err != nil {
		return err
	}
	if err := checkStore(embedded, ca, cfg.AllowEmptyStore, log); err != nil {
		return err
	}

	gwLn, err := net.Listen("tcp", cfg.GatewayListen)
	if err != nil {
		return fmt.Errorf("gateway listen: %w", err)
	}
	defer gwLn.Close()
	apiLn, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	defer apiLn.Close()
	advertise := cfg.GatewayAdvertise
	if advertise == "" {
		advertise = advertiseAddr(gwLn.Addr())
	}
	gwHost, _, _ := net.SplitHostPort(advertise)
	cert, err := ca.ServerCertificate(serverNames(gwHost))
	if err != nil {
		return err
	}

	bus := events.New(4096)
	if recorder == nil {
		// The embedded store has no Events API: the same Events go on the
		// event stream as log events.
		rec, err := newBusRecorder(bus, cfg.GatewayName, eventCounts, log)
		if err != nil {
			return err
		}
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		go rec.run(rctx)
		recorder = rec
	}
	d := &daemon{cfg: cfg, log: log, store: st, cached: cached, embedded: embedded, bus: bus, started: time.Now(), advertise: advertise, consoles: make(map[string]*renode.Console),
		lead: &leadership{self: cfg.GatewayName}}
	gw, err := gateway.New(gateway.Config{
		Authority: ca, Certificate: cert, Events: gateway.EventFunc(d.gatewayEvent),
		Admit:  admission{devices: st.Devices(), cached: cached.Devices()}.admit,
		Logger: log, HeartbeatInterval: cfg.HeartbeatInterval,
	})
	if err != nil {
		return err
	}
	d.gw = gw
	sim, err := renode.NewSim(renode.SimConfig{DeviceBinary: cfg.DeviceBinary, Dir: filepath.Join(cfg.DataDir, "boards"), Logger: log})
	if err != nil {
		return err
	}
	_, gwPort, _ := net.SplitHostPort(gwLn.Addr().String())
	docker, err := renode.NewDocker(renode.DockerConfig{
		Image: cfg.DockerImage, Instance: cfg.GatewayName, GatewayPort: gwPort, ServerName: gwHost, Logger: log,
	})
	if err != nil {
		return err
	}
	// Renode cannot be had on every host: without a container runtime for
	// it, a board on this backend fails with what the host needs.
	ren, err := renode.NewRenode(renode.RenodeConfig{Dir: filepath.Join(cfg.DataDir, "renode"), Daemon: cfg.GatewayName})
	if err != nil {
		return err
	}
	qemu, err := renode.NewQEMU(renode.QEMUConfig{Firmware: cfg.MCUFirmware, Dir: filepath.Join(cfg.DataDir, "qemu"), Logger: log})
	if err != nil {
		return err
	}
	d.backends = map[string]renode.Backend{sim.Name(): sim, docker.Name(): docker, ren.Name(): ren, qemu.Name(): qemu}
	d.devices = &controller.Devices{
		Store: cached, Gateway: gw, GatewayName: cfg.GatewayName, GatewayAddr: advertise, ServerName: gwHost,
		CA: ca, Backends: d.backends, IdentityDir: filepath.Join(cfg.DataDir, "identities"),
		Resync: cfg.Resync, Recorder: recorder, Logger: log, Leading: d.lead.Leading,
	}
	apiAdvertise := cfg.APIAdvertise
	if apiAdvertise == "" {
		apiAdvertise = advertiseAddr(apiLn.Addr())
	}
	sessions := &fleet{self: cfg.GatewayName, gw: gw, store: cached, token: cfg.Token}
	d.apps = &controller.Applications{Store: cached, Gateway: sessions, Resync: cfg.Resync, Recorder: recorder, Logger: log}
	gws := &controller.Gateways{Store: cached, Gateway: gw, Name: cfg.GatewayName, Endpoint: advertise, APIEndpoint: apiAdvertise, Interval: cfg.GatewayHeartbeat, Logger: log}
	placement := &controller.Placement{Store: cached, Interval: cfg.GatewayHeartbeat, Recorder: recorder, Logger: log}
	d.devices.Pick = placement.Pick

	reg := prometheus.NewRegistry()
	d.metrics = newMetrics(reg, d, writes, eventCounts)
	handler, err := apiserver.New(apiserver.Deps{
		Store: st, Boards: boardCatalog(d.backends), Tokens: ca, Consoles: d, Events: bus, Sessions: gw, Live: gw,
		Info: d.info, Token: cfg.Token, Registry: reg, Ready: d.ready, Logger: log,
	})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		// net/http's own complaints (accept retries, bad TLS) go to the
		// daemon's log as JSON like every other line.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	log.Info("daemon started", "api", apiLn.Addr().String(), "gateway", gwLn.Addr().String(),
		"advertise", advertise, "data_dir", cfg.DataDir, "store", st.Backend())
	if cfg.Ready != nil {
		cfg.Ready(apiLn.Addr(), gwLn.Addr())
	}

	g, gctx := errgroup.WithContext(ctx)
	parts := &parts{g: g}
	// Requests live in the daemon's context, so that streams (events,
	// consoles) end when it shuts down instead of holding Shutdown up.
	srv.BaseContext = func(net.Listener) context.Context { return gctx }
	parts.Go("gateway", func() error { return gw.Serve(gctx, gwLn) })
	for name, b := range d.backends {
		parts.Go(name+" boards", func() error { return b.Run(gctx) })
	}
	parts.Go("device controller", func() error { return d.devices.Run(gctx) })
	parts.Go("gateway heartbeat", func() error { return gws.Run(gctx) })
	// Rollouts and placement run on the leader only.
	parts.Go("leader work", func() error {
		return d.lead.run(gctx, cfg, log, func(ctx context.Context) error {
			lg, lctx := errgroup.WithContext(ctx)
			lg.Go(func() error { return d.apps.Run(lctx) })
			lg.Go(func() error { return placement.Run(lctx) })
			if cfg.Demo {
				lg.Go(func() error { return d.seedDemo(lctx) })
			}
			return lg.Wait()
		})
	})
	parts.Go("resource events", func() error {
		return (&apiserver.ResourcePublisher{Store: cached, Bus: bus, Live: gw, Logger: log}).Run(gctx)
	})
	parts.Go("api", func() error {
		if err := srv.Serve(apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("api: %w", err)
		}
		return nil
	})
	parts.Go("api shutdown", func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// A client that stalls mid-request does not hold the stop up,
			// nor make it a failure: its connection is cut.
			log.Warn("api requests cut short by the stop", "err", err)
			return srv.Close()
		}
		return nil
	})
	if cfg.SSH != nil {
		parts.Go("ssh console", func() error { return cfg.SSH(gctx, apiLn.Addr()) })
	}
	err = parts.Wait(gctx, cfg.StopLimit)
	log.Info("daemon stopped", "err", err)
	return err
}

// parts runs the daemon's long-lived parts in one group and keeps the
// names of those still running, so that a stop that hangs says where.
type parts struct {
	g       *errgroup.Group
	mu      sync.Mutex
	running map[string]int
}

// Go runs fn as the part name.
func (p *parts) Go(name string, fn func() error) {
	p.mu.Lock()
	if p.running == nil {
		p.running = map[string]int{}
	}
	p.running[name]++
	p.mu.Unlock()
	p.g.Go(func() error {
		defer func() {
			p.mu.Lock()
			if p.running[name]--; p.running[name] == 0 {
				delete(p.running, name)
			}
			p.mu.Unlock()
		}()
		return fn()
	})
}

// Wait waits for every part to return. Once ctx ends, it waits at most
// limit: a part that does not stop by then is named in the error, and the
// daemon exits without it rather than hang.
func (p *parts) Wait(ctx context.Context, limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- p.g.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		p.mu.Lock()
		names := slices.Sorted(maps.Keys(p.running))
		p.mu.Unlock()
		return fmt.Errorf("stop: still running after %v: %s", limit, strings.Join(names, ", "))
	}
}

// daemon holds what the parts share at run time.
type daemon struct {
	cfg       Config
	log       *slog.Logger
	store     store.Store
	cached    store.Store     // the controllers' view: informers with Kubernetes
	embedded  *store.Embedded // the store when it is the embedded one
	bus       *events.Bus
	gw        *gateway.Gateway
	backends  map[string]renode.Backend
	devices   *controller.Devices
	apps      *controller.Applications
	lead      *leadership
	started   time.Time
	advertise string

	metrics *metrics

	mu       sync.Mutex
	consoles map[string]*renode.Console // consoles of devices without a board, fed by the gateway
}

func (d *daemon) info() api.Info {
	return api.Info{Version: d.cfg.Version, Store: d.store.Backend(), Gateway: d.cfg.GatewayName,
		GatewayAddr: d.advertise, Started: d.started, Leader: d.lead.Leader()}
}

// checkStore refuses an embedded store that starts empty while the CA
// has issued device certificates (a lost or truncated store file), unless
// allowed, and reports the records the store quarantined.
func checkStore(st *store.Embedded, ca *pki.Authority, allowEmpty bool, log *slog.Logger) error {
	if st == nil {
		return nil
	}
	if n := ca.IssuedCount(); st.Fresh() && n > 0 {
		if !allowEmpty {
			return fmt.Errorf("the store is empty (a new or zero-length file) but the CA has issued %d device certificates: "+
				"the fleet's records are missing. Restore the store from a backup, or start with --allow-empty-store to begin an empty fleet", n)
		}
		log.Warn("starting an empty store next to a CA that has issued device certificates", "certificates", n)
	}
	for _, q := range st.Quarantined() {
		log.Warn("store record quarantined: not served; delete it through the API, then create it again",
			"kind", q.Kind, "name", q.Name, "reason", q.Reason)
	}
	return nil
}

func (d *daemon) ready() error { return d.gw.Accepting() }

// advertiseAddr turns a listen address into one a local board can dial.
func advertiseAddr(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func serverNames(host string) []string {
	names := []string{host}
	for _, n := range []string{"127.0.0.1", "localhost"} {
		if n != host {
			names = append(names, n)
		}
	}
	if h, err := os.Hostname(); err == nil && h != host {
		names = append(names, h)
	}
	return names
}

// gatewayEvent turns what the gateway reports into bus events and wakes the
// controllers that care.
func (d *daemon) gatewayEvent(e gateway.Event) {
	d.metrics.events.WithLabelValues(string(e.Type)).Inc()
	ev := api.Event{Time: e.Time, Device: e.Device, Reason: e.Reason}
	switch e.Type {
	case gateway.EventOnline:
		ev.Type = api.EventOnline
		handshake := "full"
		if e.Session != nil && e.Session.Resumed {
			handshake = "resumed"
		}
		d.metrics.handshakes.WithLabelValues(handshake).Inc()
	case gateway.EventOffline:
		ev.Type = api.EventOffline
	case gateway.EventApp:
		ev.Type = api.EventApp
		ev.App = &api.AppEvent{Name: e.App.App, Version: e.App.Version, State: e.App.State.String(), Reason: e.App.Reason}
	case gateway.EventRemoved:
		ev.Type = api.EventApp
		ev.App = &api.AppEvent{Name: e.App.App, State: api.AppRemoved}
	case gateway.EventProgress:
		ev.Type = api.EventProgress
		ev.App = &api.AppEvent{Name: e.App.App, Version: e.App.Version, State: e.App.State.String(), Sent: e.Sent, Total: e.Total}
	case gateway.EventTelemetry:
		ev.Type = api.EventTelemetry
		ev.App = &api.AppEvent{Name: e.Telemetry.App}
		ev.Values = e.Telemetry.Values
	case gateway.EventConsole:
		d.gatewayConsole(e.Device).Write(e.Console.Data)
		return
	}
	d.bus.Publish(ev)
	switch e.Type {
	case gateway.EventOffline:
		d.devices.SessionEnded(e.Device, e.Session.LastSeen)
		d.apps.DeviceChanged(e.Device, sessionApps(e.Session)...)
	case gateway.EventOnline:
		d.devices.Enqueue(e.Device)
		d.apps.DeviceChanged(e.Device, sessionApps(e.Session)...)
	case gateway.EventApp, gateway.EventRemoved:
		d.devices.Enqueue(e.Device)
		d.apps.DeviceChanged(e.Device, e.App.App)
	case gateway.EventTelemetry:
		d.devices.Telemetry(e.Device, e.Telemetry, e.Time)
	}
}

// sessionApps names the apps a session reports.
func sessionApps(s *gateway.SessionInfo) []string {
	names := make([]string, len(s.Apps))
	for i, a := range s.Apps {
		names[i] = a.App
	}
	return names
}

// gatewayConsole is the console of a device as its session carries it.
func (d *daemon) gatewayConsole(device string) *renode.Console {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.consoles[device]
	if c == nil {
		// Nobody may ever attach to it: keep a small scrollback.
		c = renode.NewConsole(gatewayScrollback)
		c.SetInput(consoleInput{d.gw, device})
		d.consoles[device] = c
	}
	return c
}

// gatewayScrollback is the scrollback kept for a device console carried by
// its session (board consoles keep renode.DefaultScrollback).
const gatewayScrollback = 8 << 10

type consoleInput struct {
	gw     *gateway.Gateway
	device string
}

func (w consoleInput) Write(p []byte) (int, error) {
	if err := w.gw.SendConsole(w.device, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// AttachConsole serves a device's console: its board's UART when the
// daemon runs its board, otherwise what its session carries.
func (d *daemon) AttachConsole(ctx context.Context, device string) ([]byte, <-chan []byte, func([]byte) error, error) {
	dev, err := d.store.Devices().Get(ctx, device)
	if err != nil {
		return nil, nil, nil, err
	}
	var c *renode.Console
	if em := dev.Spec.Emulation; em != nil {
		name := em.Backend
		if name == "" {
			name = controller.DefaultBackend
		}
		if b, ok := d.backends[name]; ok && b.Status(device).State == renode.Running {
			c, _ = b.Console(device)
		}
	}
	if c == nil {
		if _, online := d.gw.Session(device); !online {
			return nil, nil, nil, fmt.Errorf("device %s: %w", device, apiserver.ErrBoardOff)
		}
		c = d.gatewayConsole(device)
	}
	history, live, cancel := c.Subscribe()
	context.AfterFunc(ctx, cancel)
	return history, live, c.Input, nil
}

// boardCatalog lists the boards with the backends of this daemon that can
// run them.
func boardCatalog(backends map[string]renode.Backend) []api.Board {
	var out []api.Board
	for _, b := range renode.Boards() {
		ab := api.Board{Name: b.Name, Title: b.Title, Vendor: b.Vendor, MCU: b.MCU, Core: b.Core,
			FlashKiB: b.FlashKiB, RAMKiB: b.RAMKiB, RenodePlatform: b.RenodePlatform, Capabilities: b.Capabilities}
		for name, be := range backends {
			if s, ok := be.(interface{ Supports(renode.Board) bool }); ok && !s.Supports(b) {
				continue
			}
			ab.Backends = append(ab.Backends, name)
		}
		slices.Sort(ab.Backends)
		out = append(out, ab)
	}
	return out
}
