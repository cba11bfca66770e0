package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"wasmbed.io/wasmbed/gateway/protocol"
)

// Module is a WebAssembly module to deploy as one version of an app.
type Module struct {
	App     string
	Version string
	SHA256  []byte // of Data, as the owner stored it; the device verifies it
	Data    []byte
	Limits  protocol.Limits
}

// DeployError is a deployment the device refused or failed. Err, when
// set, is the cause (often a *protocol.Error from the device).
type DeployError struct {
	Device, App, Version string
	Reason               string
	Err                  error
}

func (e *DeployError) Error() string {
	return fmt.Sprintf("deploy %s %s to %s: %s", e.App, e.Version, e.Device, e.Reason)
}

// Unwrap returns the cause.
func (e *DeployError) Unwrap() error { return e.Err }

// repoke is how often a waiting Deploy asks its device's session to
// compare desired and reported apps again.
const repoke = 5 * time.Second

// desiredApp is what the owner asked a device to run for one app.
type desiredApp struct {
	mod    Module
	failed string // the device failed this version; not retried until deployed again
}

// holds reports whether a device reporting a runs mod as asked: the same
// module, under the same version name and limits. A module held under
// another name or limits gets its deploy again, which relabels it on the
// device without a transfer.
func holds(a protocol.AppInfo, mod Module) bool {
	return bytes.Equal(a.SHA256, mod.SHA256) && a.Version == mod.Version && a.Limits == mod.Limits
}

type waitKey struct {
	device, app, sha string
}

// Deploy makes mod the desired version of its app on device and waits until
// the device runs it (or ran it to completion), fails it, or ctx ends. The
// module is transferred in chunks when the device is (or next comes) online;
// a transfer cut by a disconnect resumes from the device's last acked offset.
// Deploying the version a device already runs installs nothing.
func (g *Gateway) Deploy(ctx context.Context, device string, mod Module) error {
	if mod.App == "" || mod.Version == "" || len(mod.SHA256) != 32 || len(mod.Data) == 0 {
		return fmt.Errorf("deploy to %s: module needs app, version, a 32-byte sha256 and data", device)
	}
	key := waitKey{device, mod.App, string(mod.SHA256)}
	ch := make(chan error, 1)
	g.mu.Lock()
	apps := g.desired[device]
	if apps == nil {
		apps = make(map[string]*desiredApp)
		g.desired[device] = apps
	}
	apps[mod.App] = &desiredApp{mod: mod}
	g.waiters[key] = append(g.waiters[key], ch)
	s := g.sessions[device]
	g.mu.Unlock()
	defer g.dropWaiter(key, ch)

	if s != nil {
		if a, ok := s.app(mod.App); ok && holds(a, mod) && settled(a.State) {
			return appOutcome(device, a)
		}
		s.poke()
	}
	// While it waits, the deploy asks the device's session to compare
	// again now and then: a wakeup that went astray delays it, and never
	// strands it. A pass sends only what the device does not hold.
	t := time.NewTicker(repoke)
	defer t.Stop()
	for {
		select {
		case err := <-ch:
			return err
		case <-ctx.Done():
			return fmt.Errorf("deploy %s %s to %s: %w", mod.App, mod.Version, device, ctx.Err())
		case <-t.C:
			if s := g.session(device); s != nil {
				s.poke()
			}
		}
	}
}

func (g *Gateway) dropWaiter(key waitKey, ch chan error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ws := g.waiters[key]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(g.waiters, key)
	} else {
		g.waiters[key] = ws
	}
}

// settled reports whether a deployment in this state has an outcome.
func settled(s protocol.AppState) bool {
	switch s {
	case protocol.StateRunning, protocol.StateExited, protocol.StateFailed, protocol.StateStopped:
		return true
	}
	return false
}

func appOutcome(device string, a protocol.AppInfo) error {
	if a.State == protocol.StateFailed {
		return &DeployError{Device: device, App: a.App, Version: a.Version, Reason: a.Reason}
	}
	return nil
}

// appChanged records a reported app state against what was desired and
// wakes the Deploy calls waiting for it.
func (g *Gateway) appChanged(device string, a protocol.AppInfo) {
	if !settled(a.State) {
		return
	}
	g.mu.Lock()
	if d := g.desired[device][a.App]; d != nil && bytes.Equal(d.mod.SHA256, a.SHA256) && a.State == protocol.StateFailed {
		d.failed = a.Reason
	}
	ws := g.waiters[waitKey{device, a.App, string(a.SHA256)}]
	g.mu.Unlock()
	err := appOutcome(device, a)
	for _, w := range ws {
		select {
		case w <- err:
		default:
		}
	}
}

// appHeld completes the Deploy calls for a, which the device reported
// at hello, when it holds the desired module as asked.
func (g *Gateway) appHeld(device string, a protocol.AppInfo) {
	g.mu.Lock()
	d := g.desired[device][a.App]
	held := d != nil && holds(a, d.mod)
	g.mu.Unlock()
	if held {
		g.appChanged(device, a)
	}
}

// failDeploy ends the Deploy calls for d with err, stops retrying it, and
// publishes the app as failed: the device refused it, or could not be
// sent it, and keeps running what it ran.
func (g *Gateway) failDeploy(device string, d *desiredApp, err error) {
	g.mu.Lock()
	d.failed = err.Error()
	ws := g.waiters[waitKey{device, d.mod.App, string(d.mod.SHA256)}]
	g.mu.Unlock()
	de := &DeployError{Device: device, App: d.mod.App, Version: d.mod.Version, Reason: err.Error(), Err: err}
	for _, w := range ws {
		select {
		case w <- de:
		default:
		}
	}
	g.publish(Event{Type: EventApp, Device: device, Reason: de.Reason, App: &protocol.AppInfo{
		App: d.mod.App, Version: d.mod.Version, SHA256: d.mod.SHA256, State: protocol.StateFailed, Reason: de.Reason,
	}})
}

// ForgetApp drops app from what the gateway delivers to every device: an
// application that was deleted is never sent again, to a device that
// comes back or to one that never had it.
func (g *Gateway) ForgetApp(app string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for device, apps := range g.desired {
		delete(apps, app)
		if len(apps) == 0 {
			delete(g.desired, device)
		}
	}
}

// Delivery is a module the gateway was asked to deliver to a device.
type Delivery struct {
	App, Version string
	SHA256       []byte
	Limits       protocol.Limits
	// Failed says why the device refused it, or it could not be sent; ""
	// while it is on its way or delivered.
	Failed string
}

// HeldBy reports whether a device reporting a holds the delivery as asked
// (see holds).
func (d Delivery) HeldBy(a protocol.AppInfo) bool {
	return holds(a, Module{SHA256: d.SHA256, Version: d.Version, Limits: d.Limits})
}

// Deliveries lists what the gateway was asked to deliver to device,
// sorted by app.
func (g *Gateway) Deliveries(device string) []Delivery {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Delivery, 0, len(g.desired[device]))
	for _, d := range g.desired[device] {
		out = append(out, Delivery{App: d.mod.App, Version: d.mod.Version, SHA256: d.mod.SHA256, Limits: d.mod.Limits, Failed: d.failed})
	}
	slices.SortFunc(out, func(a, b Delivery) int { return strings.Compare(a.App, b.App) })
	return out
}

// reconcilePass sends each desired module the device does not report;
// it runs on connect and whenever the session is poked (see poke).
func (s *session) reconcilePass(ctx context.Context, log *slog.Logger) {
	for _, d := range s.g.pending(s) {
		if err := s.transfer(ctx, d, log); err != nil {
			if errors.Is(err, protocol.ErrClosed) || ctx.Err() != nil {
				return
			}
			log.Info("deploy failed", "app", d.mod.App, "version", d.mod.Version, "err", err)
			s.g.failDeploy(s.device, d, err)
		}
	}
}

// pending lists the desired apps whose module the device does not hold.
func (g *Gateway) pending(s *session) []*desiredApp {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*desiredApp
	for name, d := range g.desired[s.device] {
		if d.failed != "" {
			continue
		}
		if a, ok := s.app(name); ok && holds(a, d.mod) && a.State != protocol.StateTransferring {
			continue
		}
		out = append(out, d)
	}
	return out
}

// transfer sends one module, in one of the gateway's transfer slots: the
// manifest, then chunks from the offset the device reports, each acked
// before the next (spec section "Module transfer"). The device verifies
// and starts it and reports with AppStatus.
func (s *session) transfer(ctx context.Context, d *desiredApp, log *slog.Logger) error {
	select {
	case s.g.transfers <- struct{}{}:
		defer func() { <-s.g.transfers }()
	case <-ctx.Done():
		return ctx.Err()
	}
	mod := d.mod
	rctx, cancel := context.WithTimeout(ctx, s.g.cfg.RequestTimeout)
	r, err := s.conn.Request(rctx, protocol.TypeDeploy, &protocol.Deploy{
		App: mod.App, Version: mod.Version, SHA256: mod.SHA256, Size: uint64(len(mod.Data)), Limits: mod.Limits,
	})
	cancel()
	if err != nil {
		return err
	}
	st, ok := r.Body.(*protocol.DeployStatus)
	if !ok {
		return fmt.Errorf("device answered deploy with %s", r.Type)
	}
	if st.State != protocol.StateTransferring {
		return nil // installed already; the device reports its state
	}
	total := uint64(len(mod.Data))
	off := st.Received
	if off > total {
		return fmt.Errorf("device holds %d bytes of a %d byte module", off, total)
	}
	if off > 0 {
		log.Info("transfer resumed", "app", mod.App, "offset", off)
	}
	// The device reports on the module (running, or failed) as soon as it
	// has the last chunk, which can be before that chunk's ack is handled
	// here: progress published after a report would show the app
	// transferring again, so progress stops at the module's first report.
	reports := s.reportCount(mod.App, mod.SHA256)
	progress := func(off uint64) {
		s.report.Lock()
		defer s.report.Unlock()
		if s.reportCount(mod.App, mod.SHA256) != reports {
			return
		}
		s.g.publish(Event{Type: EventProgress, Device: s.device, Sent: off, Total: total, App: &protocol.AppInfo{
			App: mod.App, Version: mod.Version, SHA256: mod.SHA256, State: protocol.StateTransferring, Received: off,
		}})
	}
	progress(off)
	for off < total {
		end := min(off+uint64(s.g.cfg.ChunkSize), total)
		rctx, cancel := context.WithTimeout(ctx, s.g.cfg.RequestTimeout)
		_, err := s.conn.Request(rctx, protocol.TypeChunk, &protocol.Chunk{
			App: mod.App, SHA256: mod.SHA256, Offset: off, Data: mod.Data[off:end],
		})
		cancel()
		if err != nil {
			return fmt.Errorf("chunk at %d: %w", off, err)
		}
		off = end
		progress(off)
	}
	return nil
}

// command sends a Start, Stop or Remove for app to device and waits for
// the ack.
func (g *Gateway) command(ctx context.Context, device string, t protocol.Type, app string) error {
	s := g.session(device)
	if s == nil {
		return fmt.Errorf("%s %s on %s: %w", t, app, device, ErrNotConnected)
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.RequestTimeout)
	defer cancel()
	if _, err := s.conn.Request(ctx, t, &protocol.AppRef{App: app}); err != nil {
		return fmt.Errorf("%s %s on %s: %w", t, app, device, err)
	}
	return nil
}

// Start starts an installed app that is stopped, exited or failed.
func (g *Gateway) Start(ctx context.Context, device, app string) error {
	return g.command(ctx, device, protocol.TypeStart, app)
}

// Stop stops a running app; it stays installed.
func (g *Gateway) Stop(ctx context.Context, device, app string) error {
	return g.command(ctx, device, protocol.TypeStop, app)
}

// Remove uninstalls app from device and forgets it from what the gateway
// delivers there: the device stops it, deletes its modules and no longer
// lists it. Removing an app the device does not have succeeds. An offline
// device is not reached (ErrNotConnected); it no longer gets the app.
func (g *Gateway) Remove(ctx context.Context, device, app string) error {
	g.mu.Lock()
	if apps := g.desired[device]; apps != nil {
		delete(apps, app)
		if len(apps) == 0 {
			delete(g.desired, device)
		}
	}
	g.mu.Unlock()
	if err := g.command(ctx, device, protocol.TypeRemove, app); err != nil {
		return err
	}
	if s := g.session(device); s != nil {
		s.report.Lock()
		s.dropApp(app)
		g.publish(Event{Type: EventRemoved, Device: device, App: &protocol.AppInfo{App: app}})
		s.report.Unlock()
	}
	return nil
}

// SendConsole sends operator input to device's console.
func (g *Gateway) SendConsole(device string, data []byte) error {
	s := g.session(device)
	if s == nil {
		return fmt.Errorf("console of %s: %w", device, ErrNotConnected)
	}
	return s.conn.Notify(protocol.TypeConsole, &protocol.Console{Data: data})
}
