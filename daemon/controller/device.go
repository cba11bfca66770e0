package controller

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
	"wasmbed.io/wasmbed/renode"
)

// DefaultBackend runs emulated boards when a device names no backend.
const DefaultBackend = "sim"

// lastSeenRefresh bounds how stale the stored last-seen time of an online
// device may grow. Round trips and last-seen times change with every
// heartbeat: they are hot state, which the gateway's session registry
// holds and the API merges into what it serves. The store is written when
// a device comes online, goes offline, changes what it runs or its
// certificate, and, for last-seen, once in a while, so that readers of the
// store alone (kubectl) see that the device was online recently. Each
// device refreshes at an offset of its own in [lastSeenRefresh/2,
// lastSeenRefresh), so that a fleet that came online together does not
// write together: 10,000 devices write about 4 times a second.
const lastSeenRefresh = time.Hour

// Devices reconciles Device resources: it provisions and runs emulated
// boards through their backends and mirrors what the gateway knows of each
// device into its status.
type Devices struct {
	Store       store.Store
	Gateway     *gateway.Gateway
	GatewayName string // this daemon's Gateway resource
	GatewayAddr string // host:port boards dial
	ServerName  string // name in the gateway certificate
	CA          *pki.Authority
	Backends    map[string]renode.Backend
	// IdentityDir keeps pre-provisioned board identities, one folder per
	// device, so a board keeps its certificate across restarts.
	IdentityDir string
	Resync      time.Duration // default 10s
	Recorder    Recorder      // events on devices; nil records none
	Logger      *slog.Logger
	// Leading reports whether this daemon leads (places the devices that
	// name no gateway); nil means it always does, as a sole daemon.
	Leading func() bool
	// Pick names the gateway a new emulated device that names none goes
	// to (Placement.Pick, on the leader); nil, or "", means this one.
	Pick func() string

	loop *loop

	mu     sync.Mutex
	ended  map[string]time.Time // last-seen times of sessions that ended, until stored
	health health
}

// Telemetry checks what a device's app reported against the app's health
// gate, and reconciles the device when it marked a breach.
func (c *Devices) Telemetry(device string, t *protocol.Telemetry, at time.Time) {
	module := func() []byte {
		s, _ := c.Gateway.Session(device)
		for _, a := range s.Apps {
			if a.App == t.App {
				return a.SHA256
			}
		}
		return nil
	}
	if c.health.observe(device, t, at, module) {
		c.Enqueue(device)
	}
}

// Enqueue asks for device to be reconciled (e.g. on a gateway event).
func (c *Devices) Enqueue(device string) {
	if c.loop != nil {
		c.loop.Enqueue(device)
	}
}

// SessionEnded records when an ended session last heard from its device,
// which the device's status then keeps, and reconciles the device.
func (c *Devices) SessionEnded(device string, lastSeen time.Time) {
	c.mu.Lock()
	if c.ended == nil {
		c.ended = map[string]time.Time{}
	}
	c.ended[device] = lastSeen
	c.mu.Unlock()
	c.Enqueue(device)
}

// endedAt returns, and forgets, what SessionEnded recorded for device.
func (c *Devices) endedAt(device string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.ended[device]
	delete(c.ended, device)
	return t, ok
}

// Run reconciles until ctx ends.
func (c *Devices) Run(ctx context.Context) error {
	if c.Resync <= 0 {
		c.Resync = 10 * time.Second
	}
	c.loop = newLoop("devices", c.Logger)
	// Only boards change without telling, and unplaced devices wait for a
	// daemon to lead (which may come after their first reconcile): the
	// periodic resync looks at those alone. Every other change arrives as
	// a store or gateway event, and the last-seen refresh is scheduled per
	// device.
	go watch(ctx, c.Store.Devices(), c.Resync, func(d *v1alpha1.Device) { c.loop.Enqueue(d.Name) }, nil,
		func(d *v1alpha1.Device) bool { return d.Spec.Emulation != nil || d.Status.Gateway == "" })
	// Every daemon's gateway forgets a deleted application, whoever leads,
	// and every daemon checks its devices' telemetry against the apps'
	// health gates.
	go watch(ctx, c.Store.Applications(), c.Resync,
		func(a *v1alpha1.Application) { c.health.setGate(a.Name, a.Spec.Rollout.Health) },
		func(a *v1alpha1.Application) {
			c.Gateway.ForgetApp(a.Name)
			c.health.forgetApp(a.Name)
		}, func(*v1alpha1.Application) bool { return false })
	// Reconciles wait on the store (a round trip each with Kubernetes):
	// several run at once.
	c.loop.run(ctx, 8, c.reconcile)
	return nil
}

func (c *Devices) reconcile(ctx context.Context, name string) error {
	dev, err := c.Store.Devices().Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return c.cleanup(ctx, name)
	}
	if err != nil {
		return err
	}
	here := c.placedHere(dev)
	if here && dev.Status.Gateway == "" && dev.Spec.Gateway == "" && dev.Spec.Emulation != nil && c.Pick != nil {
		if gw := c.Pick(); gw != "" && gw != c.GatewayName {
			// Placed on the least loaded gateway, whose daemon runs it.
			dev.Status.Gateway = gw
			_, err := c.Store.Devices().UpdateStatus(ctx, dev)
			return err
		}
	}
	if !here {
		// Another gateway runs this device: whatever of it runs here goes.
		c.stopBoards(ctx, name, "")
		c.Gateway.UnregisterBoard(name)
		return nil
	}
	if s, ok := c.Gateway.Session(name); ok && s.DeviceUID != "" && s.DeviceUID != string(dev.UID) {
		// The device was deleted and created again under its name: what
		// holds a session is the earlier one, with a certificate bound to
		// that one's UID. It goes, with its board, so that the new device
		// starts from a new identity.
		c.stopBoards(ctx, name, "")
		c.Gateway.Disconnect(name, protocol.Errorf(protocol.CodeRevoked,
			"certificate %s was issued for an earlier device named %s", s.CertSerial, name))
	}
	board, boardErr := c.syncBoard(ctx, dev)
	st := dev.Status.DeepCopy()
	st.ObservedGeneration = dev.Generation
	st.Board = board
	st.Gateway = c.GatewayName
	st.RTTMicros = 0 // hot state: served from the session, never stored
	if s, ok := c.Gateway.Session(name); ok {
		refresh := refreshAfter(name)
		if st.Phase != v1alpha1.DeviceOnline || st.LastSeen == nil || s.LastSeen.Sub(st.LastSeen.Time) >= refresh {
			st.LastSeen = &metav1.Time{Time: s.LastSeen.Truncate(time.Second)}
		}
		// Look again when the stored last-seen time is due.
		c.loop.queue.AddAfter(name, time.Until(st.LastSeen.Add(refresh)))
		st.Phase = v1alpha1.DeviceOnline
		st.Firmware = s.Firmware
		st.Capabilities = s.Capabilities
		st.CertificateExpiry = &metav1.Time{Time: s.CertExpiry}
		st.Apps = deviceApps(dev.Status.Apps, s.Apps, c.Gateway.Deliveries(name), time.Now(), s.ConnectedAt)
		c.health.stampUnhealthy(name, st.Apps, s.Apps)
		st.AppCount = int32(len(st.Apps))
	} else {
		if t, ok := c.endedAt(name); ok && st.Phase == v1alpha1.DeviceOnline {
			st.LastSeen = &metav1.Time{Time: t.Truncate(time.Second)}
		}
		switch {
		case st.Phase == v1alpha1.DeviceOnline || st.Phase == v1alpha1.DeviceUnknown || st.LastSeen != nil:
			st.Phase = v1alpha1.DeviceOffline
		case board != nil && board.State == string(renode.Failed):
			st.Phase = v1alpha1.DeviceFailed
		case board != nil:
			st.Phase = v1alpha1.DeviceProvisioning
		case c.CA.Enrolled(name):
			st.Phase = v1alpha1.DeviceEnrolled
		default:
			st.Phase = v1alpha1.DevicePending
		}
	}
	setReady(st, boardErr)
	if equality.Semantic.DeepEqual(st, &dev.Status) {
		return boardErr
	}
	was := dev.Status.Phase
	dev.Status = *st
	if _, err := c.Store.Devices().UpdateStatus(ctx, dev); err != nil {
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			record(c.Recorder, dev, EventWarning, "StatusWriteFailed", "the status could not be written: %v", err)
		}
		return err
	}
	switch {
	case st.Phase == v1alpha1.DeviceOnline && was != v1alpha1.DeviceOnline:
		record(c.Recorder, dev, EventNormal, "Online", "session on gateway %s", c.GatewayName)
	case st.Phase == v1alpha1.DeviceOffline && was == v1alpha1.DeviceOnline:
		record(c.Recorder, dev, EventWarning, "Offline", "the device's session on gateway %s ended", c.GatewayName)
	}
	return boardErr
}

// deviceApps is what a device runs, for its status: the apps its session
// reports, each with the version being delivered to it when that is
// another and why that failed if it did, and since when each has been in
// its state (from was, the apps as stored) in this session: an app is
// not known to have run while its device was away, so a session that
// began later (connected) restarts the clock, and with it the rollout's
// healthy window.
func deviceApps(was []v1alpha1.DeviceApp, reported []protocol.AppInfo, deliveries []gateway.Delivery, now, connected time.Time) []v1alpha1.DeviceApp {
	out := make([]v1alpha1.DeviceApp, 0, len(reported))
	for _, a := range reported {
		out = append(out, v1alpha1.DeviceApp{
			Name: a.App, Version: a.Version, SHA256: hex.EncodeToString(a.SHA256),
			State: a.State.String(), Reason: a.Reason, Previous: a.Previous, Limits: specLimits(a.Limits),
		})
	}
	for _, d := range deliveries {
		i := slices.IndexFunc(out, func(a v1alpha1.DeviceApp) bool { return a.Name == d.App })
		switch {
		case i >= 0 && i < len(reported) && d.HeldBy(reported[i]):
			continue
		case i < 0 && d.Failed == "":
			continue // on its way: the device reports it as it arrives
		case i < 0:
			// It runs nothing of the app: its only attempt failed.
			out = append(out, v1alpha1.DeviceApp{Name: d.App, State: protocol.StateFailed.String(), Reason: d.Failed})
			i = len(out) - 1
		}
		out[i].Target, out[i].TargetFailed = d.Version, d.Failed
	}
	slices.SortFunc(out, func(a, b v1alpha1.DeviceApp) int { return strings.Compare(a.Name, b.Name) })
	since := &metav1.Time{Time: now.Truncate(time.Second)}
	for i := range out {
		out[i].Since = since
		for _, w := range was {
			if w.Since != nil && w.Name == out[i].Name && w.SHA256 == out[i].SHA256 && w.State == out[i].State && w.Target == out[i].Target && w.TargetFailed == out[i].TargetFailed {
				out[i].Since = w.Since
				if s := connected.Truncate(time.Second); w.Since.Time.Before(s) {
					out[i].Since = &metav1.Time{Time: s}
				}
			}
		}
	}
	return out
}

// specLimits are the limits a device reports as a spec writes them; nil
// for the device's defaults.
func specLimits(l protocol.Limits) *v1alpha1.Limits {
	if l == (protocol.Limits{}) {
		return nil
	}
	return &v1alpha1.Limits{MemoryPages: int32(l.MemoryPages), CallTimeoutMillis: int32(l.CallMS), PeriodMillis: int32(l.PeriodMS)}
}

// refreshAfter is how long the stored last-seen time of device may lag
// while it is online: its own offset in [lastSeenRefresh/2,
// lastSeenRefresh), from a hash of its name.
func refreshAfter(device string) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(device))
	half := lastSeenRefresh / 2
	// The hash scaled onto [0, half), in milliseconds.
	offset := time.Duration(uint64(h.Sum32())*uint64(half/time.Millisecond)>>32) * time.Millisecond
	return half + offset
}

// placedHere reports whether this daemon runs dev (see Placement): it is
// placed here, or unplaced and asks for this gateway (or for none, and
// this daemon leads), or it is a device of its own that dialled this
// gateway.
func (c *Devices) placedHere(dev *v1alpha1.Device) bool {
	switch owner, asked := dev.Status.Gateway, dev.Spec.Gateway; {
	case owner == c.GatewayName:
		return true
	case owner == "" && (asked == c.GatewayName || asked == "" && (c.Leading == nil || c.Leading())):
		return true
	}
	_, online := c.Gateway.Session(dev.Name)
	return online && dev.Spec.Emulation == nil
}

func setReady(st *v1alpha1.DeviceStatus, boardErr error) {
	cond := metav1.Condition{Type: "Ready", ObservedGeneration: st.ObservedGeneration}
	switch {
	case st.Phase == v1alpha1.DeviceOnline:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "Online", "the device holds a gateway session"
	case boardErr != nil:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "BoardError", boardErr.Error()
	case st.Board != nil && st.Board.Reason != "":
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "Board"+st.Board.State, st.Board.Reason
	default:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, string(st.Phase), "the device has no gateway session"
	}
	apimeta.SetStatusCondition(&st.Conditions, cond)
}

// syncBoard starts or stops the device's emulated board as its spec asks
// and returns the board's status (nil for a device that is not emulated).
func (c *Devices) syncBoard(ctx context.Context, dev *v1alpha1.Device) (*v1alpha1.BoardStatus, error) {
	em := dev.Spec.Emulation
	if em == nil {
		c.stopBoards(ctx, dev.Name, "")
		c.Gateway.UnregisterBoard(dev.Name)
		return nil, nil
	}
	name := em.Backend
	if name == "" {
		name = DefaultBackend
	}
	c.stopBoards(ctx, dev.Name, name)
	b, ok := c.Backends[name]
	if !ok {
		return &v1alpha1.BoardStatus{Backend: name, State: string(renode.Failed), Reason: "backend not available on this daemon"},
			fmt.Errorf("device %s: emulation backend %q is not available", dev.Name, name)
	}
	var err error
	if em.Enabled {
		err = c.startBoard(ctx, b, dev)
	} else {
		err = b.Stop(ctx, dev.Name)
		c.Gateway.UnregisterBoard(dev.Name)
	}
	s := b.Status(dev.Name)
	bs := &v1alpha1.BoardStatus{Backend: name, State: string(s.State), Reason: s.Reason, ID: s.ID}
	if !s.Started.IsZero() {
		bs.Started = &metav1.Time{Time: s.Started.Truncate(time.Second)}
	}
	if err != nil {
		bs.State, bs.Reason = string(renode.Failed), err.Error()
	}
	return bs, err
}

func (c *Devices) startBoard(ctx context.Context, b renode.Backend, dev *v1alpha1.Device) error {
	if s := b.Status(dev.Name); s.State == renode.Running || s.State == renode.Starting {
		return nil
	}
	board, err := renode.LookupBoard(dev.Spec.Board)
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := c.identity(dev.Name, string(dev.UID))
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("identity of %s: %w", dev.Name, err)
	}
	// The gateway learns the board before it boots, and refuses a session
	// under this name that does not match.
	c.Gateway.RegisterBoard(gateway.Board{
		Device: dev.Name, Serial: cert.Leaf.SerialNumber, Board: board.Name,
		Capabilities: board.Capabilities, Backend: b.Name(), Endpoint: c.GatewayAddr,
	})
	return b.Start(ctx, renode.Spec{
		Device: dev.Name, Board: board, Gateway: c.GatewayAddr, ServerName: c.ServerName,
		CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: c.CA.CACertPEM(), Labels: boardLabels(dev),
	})
}

// boardLabels are the device's labels plus the emulation limits that
// container backends read from them.
func boardLabels(dev *v1alpha1.Device) map[string]string {
	l := make(map[string]string, len(dev.Labels)+2)
	for k, v := range dev.Labels {
		l[k] = v
	}
	if em := dev.Spec.Emulation; em != nil {
		if em.MemoryMiB > 0 {
			l[renode.LabelMemoryMiB] = strconv.Itoa(int(em.MemoryMiB))
		}
		if em.CPUMillis > 0 {
			l[renode.LabelCPUMillis] = strconv.Itoa(int(em.CPUMillis))
		}
	}
	return l
}

// stopBoards stops the device's board on every backend but keep.
func (c *Devices) stopBoards(ctx context.Context, device, keep string) {
	for name, b := range c.Backends {
		if name == keep {
			continue
		}
		if s := b.Status(device); s.State != renode.Stopped {
			if err := b.Stop(ctx, device); err != nil {
				c.loop.log.Info("stop board", "device", device, "backend", name, "err", err)
			}
		}
	}
}

// identity returns the board's pre-provisioned certificate and key,
// issuing them on first use and again when a third of the lifetime is left.
func (c *Devices) identity(device, uid string) (certPEM, keyPEM []byte, err error) {
	dir := filepath.Join(c.IdentityDir, device)
	certPEM, err1 := os.ReadFile(filepath.Join(dir, "device.crt"))
	keyPEM, err2 := os.ReadFile(filepath.Join(dir, "device.key"))
	if err1 == nil && err2 == nil {
		if cert, err := tls.X509KeyPair(certPEM, keyPEM); err == nil && cert.Leaf != nil {
			life := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore)
			if time.Until(cert.Leaf.NotAfter) > life/3 && !c.CA.Revoked(cert.Leaf.SerialNumber) &&
				pki.DeviceUID(cert.Leaf) == uid {
				return certPEM, keyPEM, nil
			}
		}
	}
	if certPEM, keyPEM, err = c.CA.ProvisionDeviceFor(device, uid); err != nil {
		return nil, nil, fmt.Errorf("provision %s: %w", device, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "device.crt"), certPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "device.key"), keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// cleanup runs when a device is gone: its board stops and its state is
// deleted, its certificates are revoked (which cuts a live session) and
// its identity is forgotten. A device created again starts clean.
func (c *Devices) cleanup(ctx context.Context, device string) error {
	c.health.forgetDevice(device)
	c.stopBoards(ctx, device, "")
	for name, b := range c.Backends {
		if f, ok := b.(renode.Forgetter); ok {
			if err := f.Forget(ctx, device); err != nil {
				return fmt.Errorf("forget the %s board of %s: %w", name, device, err)
			}
		}
	}
	c.Gateway.UnregisterBoard(device)
	if err := c.Gateway.RevokeDevice(device); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(c.IdentityDir, device))
}
