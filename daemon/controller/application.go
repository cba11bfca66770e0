package controller

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// Per-device rollout states written to ApplicationStatus.Devices.
const (
	RolloutPending      = "Pending"      // waiting for its batch
	RolloutWaiting      = "Waiting"      // device offline
	RolloutTransferring = "Transferring" // module on its way
	RolloutRunning      = "Running"
	RolloutExited       = "Exited" // ran to completion
	RolloutStopped      = "Stopped"
	RolloutFailed       = "Failed"
)

// historyLimit bounds ApplicationStatus.History.
const historyLimit = 10

// Applications reconciles Application resources: it works out the targeted
// devices, rolls the module out in batches through the gateway behind a
// health gate, and rolls back by itself when more devices fail than the
// rollout allows.
type Applications struct {
	Store         store.Store
	Gateway       Sessions
	Resync        time.Duration // default 10s
	DeployTimeout time.Duration // one device's deploy; default 2m
	Recorder      Recorder      // events on applications; nil records none
	Logger        *slog.Logger

	mu       sync.Mutex
	loop     *loop
	ctx      context.Context     // Run's, for deploys that outlive one reconcile
	inflight map[key]*deployment // deploys under way
	results  map[key]result      // how the last deploy of a module to a device ended
	known    map[string]selector // the targets of the apps seen by the watch, by app
}

// selector is an app's target, ready to match devices.
type selector struct {
	names  map[string]bool
	labels labels.Selector // nil: none
}

func newSelector(t v1alpha1.Target) selector {
	s := selector{names: make(map[string]bool, len(t.Devices))}
	for _, n := range t.Devices {
		s.names[n] = true
	}
	if t.Selector != nil {
		// A bad selector matches nothing here; the app's reconcile says why.
		s.labels, _ = metav1.LabelSelectorAsSelector(t.Selector)
	}
	return s
}

func (s selector) matches(d *v1alpha1.Device) bool {
	return s.names[d.Name] || (s.labels != nil && s.labels.Matches(labels.Set(d.Labels)))
}

// Sessions reach devices' sessions: a *gateway.Gateway for the devices of
// this daemon's gateway, or a router that also reaches the gateways of
// the other daemons of a cluster.
type Sessions interface {
	Deploy(ctx context.Context, device string, mod gateway.Module) error
	Start(ctx context.Context, device, app string) error
	Stop(ctx context.Context, device, app string) error
}

// key names one app on one device.
type key struct{ app, device string }

type deployment struct {
	sha        string
	sent, size uint64
	cancel     context.CancelFunc
}

type result struct {
	sha    string
	reason string // empty for success
}

// Enqueue asks for app to be reconciled.
func (c *Applications) Enqueue(app string) {
	c.mu.Lock()
	l := c.loop
	c.mu.Unlock()
	if l != nil {
		l.Enqueue(app)
	}
}

// DeviceChanged reconciles the apps a device's change concerns: those
// whose target selects the device, those it reports (named in reported, or
// in its stored status), whose rollouts its reports move on or which it
// runs as a stray. Its cost does not grow with the fleet: one read of the
// device and a match per app, cheap enough for the gateway's session
// goroutines.
func (c *Applications) DeviceChanged(device string, reported ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := c.Store.Devices().Get(ctx, device)
	c.mu.Lock()
	var names []string
	for n, sel := range c.known {
		if err == nil && sel.matches(d) {
			names = append(names, n)
		}
	}
	c.mu.Unlock()
	names = append(names, reported...)
	if err == nil {
		for _, a := range d.Status.Apps {
			names = append(names, a.Name)
		}
	}
	for _, n := range names {
		c.Enqueue(n)
	}
}

// seen records an app's target from the watch and reconciles the app.
func (c *Applications) seen(app *v1alpha1.Application) {
	c.mu.Lock()
	c.known[app.Name] = newSelector(app.Spec.Target)
	c.mu.Unlock()
	c.Enqueue(app.Name)
}

// Progress records transfer progress reported by the gateway.
func (c *Applications) Progress(app, device string, sent, total uint64) {
	c.mu.Lock()
	if d := c.inflight[key{app, device}]; d != nil {
		d.sent, d.size = sent, total
	}
	c.mu.Unlock()
	c.Enqueue(app)
}

// Run reconciles until ctx ends.
func (c *Applications) Run(ctx context.Context) error {
	if c.Resync <= 0 {
		c.Resync = 10 * time.Second
	}
	if c.DeployTimeout <= 0 {
		c.DeployTimeout = 2 * time.Minute
	}
	// Run may run again (when this daemon leads again): it starts afresh.
	c.mu.Lock()
	c.ctx = ctx
	c.inflight = make(map[key]*deployment)
	c.results = make(map[key]result)
	c.known = make(map[string]selector)
	c.loop = newLoop("applications", c.Logger)
	c.mu.Unlock()
	go watch(ctx, c.Store.Applications(), c.Resync, c.seen, func(a *v1alpha1.Application) { c.deleted(ctx, a) }, nil)
	go c.sweep(ctx)
	c.loop.run(ctx, 2, c.reconcile)
	return nil
}

// deleted stops a deleted app wherever it runs.
func (c *Applications) deleted(ctx context.Context, app *v1alpha1.Application) {
	c.mu.Lock()
	for k, d := range c.inflight {
		if k.app == app.Name {
			d.cancel()
		}
	}
	c.mu.Unlock()
	for _, row := range app.Status.Devices {
		if row.State == RolloutRunning || row.State == RolloutTransferring {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = c.Gateway.Stop(sctx, row.Device, app.Name)
			cancel()
		}
	}
}

func (c *Applications) reconcile(ctx context.Context, name string) error {
	app, err := c.Store.Applications().Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		c.forget(name)
		devices, err := c.Store.Devices().List(ctx)
		if err != nil {
			return err
		}
		c.stopStrays(ctx, name, devices, nil)
		return nil
	}
	if err != nil {
		return err
	}
	devices, err := c.Store.Devices().List(ctx)
	if err != nil {
		return err
	}
	targets, err := selectTargets(app.Spec.Target, devices)
	if err == nil {
		c.stopStrays(ctx, name, devices, targets)
	}
	if err != nil {
		return c.writeStatus(ctx, app, func(st *v1alpha1.ApplicationStatus) {
			st.Phase = v1alpha1.AppFailed
			setCondition(st, app, "Progressing", metav1.ConditionFalse, "BadTarget", err.Error())
		})
	}
	now := time.Now()
	spec := app.Spec
	st := app.Status.DeepCopy()
	st.ObservedGeneration = app.Generation
	started := recordRevision(st, spec, now)
	was := app.Status.Phase

	prev := make(map[string]v1alpha1.DeviceRollout, len(st.Devices))
	for _, r := range st.Devices {
		prev[r.Device] = r
	}
	rows := make([]v1alpha1.DeviceRollout, 0, len(targets))
	for _, d := range targets {
		row := c.rowFor(app, d)
		if p, ok := prev[d.Name]; ok && p.State == row.State && p.Version == row.Version && p.Since != nil {
			row.Since = p.Since
		} else {
			row.Since = &metav1.Time{Time: now.Truncate(time.Second)}
		}
		rows = append(rows, row)
	}
	st.Devices = rows
	st.Targeted, st.Transferring, st.Running, st.Failed = int32(len(rows)), 0, 0, 0
	var failures []string
	for _, r := range rows {
		switch r.State {
		case RolloutTransferring:
			st.Transferring++
		case RolloutRunning, RolloutExited:
			st.Running++
		case RolloutFailed:
			st.Failed++
			failures = append(failures, r.Device+": "+r.Reason)
		}
	}

	switch {
	case spec.Stopped:
		c.stopAll(ctx, app.Name, rows)
		st.Phase = v1alpha1.AppStopped
		setCondition(st, app, "Progressing", metav1.ConditionFalse, "Stopped", "the app is stopped on every device")
	case st.Failed > spec.Rollout.MaxFailures:
		return c.rollBack(ctx, app, st, failures)
	case spec.Paused:
		st.Phase = v1alpha1.AppPaused
		setCondition(st, app, "Progressing", metav1.ConditionFalse, "Paused", "the rollout is paused")
	default:
		c.advance(ctx, app, st, now)
	}
	if st.RolledBack != nil && st.RolledBack.Generation == app.Generation && !spec.Stopped {
		st.Phase = v1alpha1.AppRolledBack
	}
	if err := c.writeStatus(ctx, app, func(s *v1alpha1.ApplicationStatus) { *s = *st }); err != nil {
		return err
	}
	if started {
		record(c.Recorder, app, EventNormal, "RolloutStarted", "rolling version %s out to %d devices", spec.Version, st.Targeted)
	}
	if st.Phase == v1alpha1.AppRunning && was != v1alpha1.AppRunning {
		record(c.Recorder, app, EventNormal, "RolloutComplete", "version %s runs on %d of %d devices", spec.Version, st.Running, st.Targeted)
	}
	return nil
}

// rowFor works out one device's part of the rollout.
func (c *Applications) rowFor(app *v1alpha1.Application, d *v1alpha1.Device) v1alpha1.DeviceRollout {
	sha := app.Spec.Module.SHA256
	row := v1alpha1.DeviceRollout{Device: d.Name, Version: app.Spec.Version}
	k := key{app.Name, d.Name}
	c.mu.Lock()
	var dep *deployment
	if d := c.inflight[k]; d != nil {
		cp := *d // Progress writes it under c.mu
		dep = &cp
	}
	res, hasRes := c.results[k]
	c.mu.Unlock()
	var rep *v1alpha1.DeviceApp
	for i := range d.Status.Apps {
		if d.Status.Apps[i].Name == app.Name {
			rep = &d.Status.Apps[i]
		}
	}
	switch {
	case dep != nil && dep.sha == sha:
		row.State, row.Progress = RolloutTransferring, int64(dep.sent)
	case hasRes && res.sha == sha && res.reason != "":
		row.State, row.Reason = RolloutFailed, res.reason
	case rep != nil && rep.SHA256 == sha:
		switch rep.State {
		case protocol.StateRunning.String():
			row.State = RolloutRunning
		case protocol.StateExited.String():
			row.State = RolloutExited
		case protocol.StateStopped.String():
			row.State = RolloutStopped
		case protocol.StateFailed.String():
			row.State, row.Reason = RolloutFailed, rep.Reason
		default:
			row.State = RolloutTransferring
		}
	case d.Status.Phase != v1alpha1.DeviceOnline:
		row.State, row.Reason = RolloutWaiting, "device is "+strings.ToLower(string(orPending(d.Status.Phase)))
	default:
		row.State = RolloutPending
	}
	return row
}

func orPending(p v1alpha1.DevicePhase) v1alpha1.DevicePhase {
	if p == "" {
		return v1alpha1.DevicePending
	}
	return p
}

// advance starts deploys for the next devices as the batch allows: a
// device counts against the batch until its app has run HealthySeconds
// without failing.
func (c *Applications) advance(ctx context.Context, app *v1alpha1.Application, st *v1alpha1.ApplicationStatus, now time.Time) {
	gate := time.Duration(app.Spec.Rollout.HealthySeconds) * time.Second
	healthy := func(r v1alpha1.DeviceRollout) bool {
		return r.State == RolloutExited || (r.State == RolloutRunning && now.Sub(r.Since.Time) >= gate)
	}
	batch := batchSize(app.Spec.Rollout, len(st.Devices))
	active, done, waiting := 0, 0, false
	for _, r := range st.Devices {
		switch {
		case healthy(r):
			done++
		case r.State == RolloutRunning:
			active++
			// Look again when it passes the health gate.
			c.loop.queue.AddAfter(app.Name, gate-now.Sub(r.Since.Time)+100*time.Millisecond)
		case r.State == RolloutTransferring:
			active++
		case r.State == RolloutStopped:
			c.command(ctx, r.Device, app.Name, c.Gateway.Start)
		case r.State == RolloutWaiting:
			waiting = true
		}
	}
	var mod *gateway.Module
	for i := range st.Devices {
		r := &st.Devices[i]
		if r.State != RolloutPending || active >= batch {
			continue
		}
		if mod == nil {
			m, err := Module(ctx, c.Store.Modules(), app.Name, app.Spec)
			if err != nil {
				setCondition(st, app, "Progressing", metav1.ConditionFalse, "ModuleMissing", err.Error())
				st.Phase = v1alpha1.AppFailed
				return
			}
			mod = &m
		}
		c.deploy(app.Name, r.Device, *mod)
		r.State = RolloutTransferring
		st.Transferring++
		active++
	}
	if done == len(st.Devices) && len(st.Devices) > 0 {
		st.Phase = v1alpha1.AppRunning
		setCondition(st, app, "Progressing", metav1.ConditionTrue, "RolledOut",
			fmt.Sprintf("version %s runs on all %d devices", app.Spec.Version, done))
		return
	}
	st.Phase = v1alpha1.AppRollingOut
	msg := fmt.Sprintf("%d of %d devices healthy, batch of %d", done, len(st.Devices), batch)
	if waiting {
		msg += "; some devices are offline"
	}
	if len(st.Devices) == 0 {
		st.Phase, msg = v1alpha1.AppPending, "no device matches the target"
	}
	setCondition(st, app, "Progressing", metav1.ConditionTrue, "RollingOut", msg)
}

func batchSize(r v1alpha1.Rollout, targeted int) int {
	n := int(r.BatchSize)
	if r.BatchPercent > 0 {
		n = (targeted*int(r.BatchPercent) + 99) / 100
	}
	if n <= 0 {
		n = targeted
	}
	return max(n, 1)
}

// Module is what a gateway deploys for app's spec: its module's bytes
// from mods, with the version and limits of the spec.
func Module(ctx context.Context, mods store.Modules, app string, spec v1alpha1.ApplicationSpec) (gateway.Module, error) {
	data, err := mods.Get(ctx, spec.Module.SHA256)
	if err != nil {
		return gateway.Module{}, fmt.Errorf("module %s: %w", spec.Module.SHA256, err)
	}
	sum, err := hex.DecodeString(spec.Module.SHA256)
	if err != nil {
		return gateway.Module{}, fmt.Errorf("module sha256 %q: %w", spec.Module.SHA256, err)
	}
	l := spec.Limits
	return gateway.Module{App: app, Version: spec.Version, SHA256: sum, Data: data,
		Limits: protocol.Limits{MemoryPages: uint32(l.MemoryPages), CallMS: uint32(l.CallTimeoutMillis), PeriodMS: uint32(l.PeriodMillis)},
	}, nil
}

// deploy sends mod to device in the background and reconciles the app
// again when it ends. A device that goes away mid-way is not a failure: it
// is deployed to again when it is back.
func (c *Applications) deploy(app, device string, mod gateway.Module) {
	ctx, cancel := context.WithTimeout(c.ctx, c.DeployTimeout)
	sha := hex.EncodeToString(mod.SHA256)
	k := key{app, device}
	c.mu.Lock()
	c.inflight[k] = &deployment{sha: sha, size: uint64(len(mod.Data)), cancel: cancel}
	c.mu.Unlock()
	go func() {
		defer cancel()
		err := c.Gateway.Deploy(ctx, device, mod)
		c.mu.Lock()
		delete(c.inflight, k)
		var de *gateway.DeployError
		switch {
		case err == nil:
			c.results[k] = result{sha: sha}
		case errors.As(err, &de):
			c.results[k] = result{sha: sha, reason: de.Reason}
		}
		c.mu.Unlock()
		if err != nil {
			c.loop.log.Info("deploy ended", "app", app, "device", device, "err", err)
		}
		c.Enqueue(app)
	}()
}

// command runs a Start or Stop of app on device, bounded in time; an
// offline device is skipped (it is dealt with when it is back).
func (c *Applications) command(ctx context.Context, device, app string, f func(context.Context, string, string) error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := f(ctx, device, app); err != nil && !errors.Is(err, gateway.ErrNotConnected) {
		c.loop.log.Info("app command", "app", app, "device", device, "err", err)
	}
}

// stopStrays stops app on the devices that run it but are not among its
// targets: devices that left its target, and every device once the app is
// deleted (targets nil). An offline one is stopped when it is back.
func (c *Applications) stopStrays(ctx context.Context, app string, devices, targets []*v1alpha1.Device) {
	targeted := make(map[string]bool, len(targets))
	for _, d := range targets {
		targeted[d.Name] = true
	}
	for _, d := range devices {
		if !targeted[d.Name] && runs(d, app) {
			c.loop.log.Info("stopping an app the device is no longer meant to run", "app", app, "device", d.Name)
			c.command(ctx, d.Name, app, c.Gateway.Stop)
		}
	}
}

// runs reports whether the device reports app running.
func runs(d *v1alpha1.Device, app string) bool {
	for _, a := range d.Status.Apps {
		if a.Name == app && a.State == protocol.StateRunning.String() {
			return true
		}
	}
	return false
}

// sweep enqueues, every Resync, the apps devices run that this controller
// has not seen: apps deleted while no daemon led, or brought by a device
// that was re-created under an old name. Their reconcile stops them.
func (c *Applications) sweep(ctx context.Context) {
	t := time.NewTicker(c.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		devices, err := c.Store.Devices().List(ctx)
		if err != nil {
			continue
		}
		c.mu.Lock()
		var unknown []string
		for _, d := range devices {
			for _, a := range d.Status.Apps {
				if _, known := c.known[a.Name]; a.State == protocol.StateRunning.String() && !known {
					unknown = append(unknown, a.Name)
				}
			}
		}
		c.mu.Unlock()
		for _, name := range unknown {
			c.Enqueue(name)
		}
	}
}

func (c *Applications) stopAll(ctx context.Context, app string, rows []v1alpha1.DeviceRollout) {
	c.mu.Lock()
	for k, d := range c.inflight {
		if k.app == app {
			d.cancel()
		}
	}
	c.mu.Unlock()
	for _, r := range rows {
		if r.State == RolloutRunning {
			c.command(ctx, r.Device, app, c.Gateway.Stop)
		}
	}
}

// rollBack makes the previous revision the app's spec after too many
// failures, and records why.
func (c *Applications) rollBack(ctx context.Context, app *v1alpha1.Application, st *v1alpha1.ApplicationStatus, failures []string) error {
	reason := fmt.Sprintf("%d of %d devices failed (limit %d): %s", st.Failed, st.Targeted, app.Spec.Rollout.MaxFailures, strings.Join(failures, "; "))
	prev := previousRevision(st.History, app.Spec)
	if prev == nil {
		record(c.Recorder, app, EventWarning, "RolloutFailed", "%s; no earlier version to roll back to", reason)
		return c.writeStatus(ctx, app, func(s *v1alpha1.ApplicationStatus) {
			*s = *st
			s.Phase = v1alpha1.AppFailed
			setCondition(s, app, "Progressing", metav1.ConditionFalse, "RolloutFailed", reason+"; no earlier version to roll back to")
		})
	}
	c.loop.log.Info("rolling back", "app", app.Name, "from", app.Spec.Version, "to", prev.Version, "reason", reason)
	from := app.Spec.Version
	app.Spec.Module, app.Spec.Version = prev.Module, prev.Version
	updated, err := c.Store.Applications().Update(ctx, app)
	if err != nil {
		return err
	}
	record(c.Recorder, updated, EventWarning, "RolledBack", "from version %s to %s: %s", from, prev.Version, reason)
	return c.writeStatus(ctx, updated, func(s *v1alpha1.ApplicationStatus) {
		*s = *st
		s.ObservedGeneration = updated.Generation
		s.RolledBack = &v1alpha1.Rollback{From: from, To: prev.Version, Reason: reason, Time: metav1.Now(), Generation: updated.Generation}
		s.Phase = v1alpha1.AppRolledBack
		setCondition(s, updated, "Progressing", metav1.ConditionTrue, "RolledBack", reason)
	})
}

// previousRevision is the newest revision before the spec's one.
func previousRevision(h []v1alpha1.Revision, spec v1alpha1.ApplicationSpec) *v1alpha1.Revision {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Module.SHA256 != spec.Module.SHA256 {
			r := h[i]
			return &r
		}
	}
	return nil
}

// recordRevision adds the spec to the history unless it is the newest
// revision there, and reports whether it did (a rollout starts).
func recordRevision(st *v1alpha1.ApplicationStatus, spec v1alpha1.ApplicationSpec, now time.Time) bool {
	if n := len(st.History); n > 0 && st.History[n-1].Module.SHA256 == spec.Module.SHA256 && st.History[n-1].Version == spec.Version {
		return false
	}
	st.History = append(st.History, v1alpha1.Revision{Version: spec.Version, Module: spec.Module, Time: metav1.Time{Time: now.Truncate(time.Second)}})
	if len(st.History) > historyLimit {
		st.History = st.History[len(st.History)-historyLimit:]
	}
	return true
}

func setCondition(st *v1alpha1.ApplicationStatus, app *v1alpha1.Application, typ string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: app.Generation,
	})
}

// writeStatus applies change to a copy of app's status and writes it when
// it differs.
func (c *Applications) writeStatus(ctx context.Context, app *v1alpha1.Application, change func(*v1alpha1.ApplicationStatus)) error {
	st := app.Status.DeepCopy()
	change(st)
	if equality.Semantic.DeepEqual(st, &app.Status) {
		return nil
	}
	app.Status = *st
	_, err := c.Store.Applications().UpdateStatus(ctx, app)
	return err
}

// forget drops what the controller holds for a deleted app.
func (c *Applications) forget(app string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.known, app)
	for k, d := range c.inflight {
		if k.app == app {
			d.cancel()
			delete(c.inflight, k)
		}
	}
	for k := range c.results {
		if k.app == app {
			delete(c.results, k)
		}
	}
}

// selectTargets returns the devices an app targets, sorted by name.
func selectTargets(t v1alpha1.Target, devices []*v1alpha1.Device) ([]*v1alpha1.Device, error) {
	names := make(map[string]bool, len(t.Devices))
	for _, n := range t.Devices {
		names[n] = true
	}
	var match func(map[string]string) bool
	if t.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(t.Selector)
		if err != nil {
			return nil, fmt.Errorf("target selector: %w", err)
		}
		match = func(l map[string]string) bool { return sel.Matches(labels.Set(l)) }
	}
	var out []*v1alpha1.Device
	for _, d := range devices {
		if names[d.Name] || (match != nil && match(d.Labels)) {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
