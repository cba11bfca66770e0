package controller

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// historyLimit bounds ApplicationStatus.History; failedLimit its
// FailedDevices.
const (
	historyLimit = 10
	failedLimit  = 10
)

// Applications reconciles Application resources: it works out the targeted
// devices, rolls the module out in batches through the gateway behind a
// health gate, and when more devices fail than the rollout allows aborts
// it and returns the devices to the stable revision. It never writes an
// Application's spec.
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
	idx      index
}

// Sessions reach devices' sessions: a *gateway.Gateway for the devices of
// this daemon's gateway, or a router that also reaches the gateways of
// the other daemons of a cluster.
type Sessions interface {
	Deploy(ctx context.Context, device string, mod gateway.Module) error
	Start(ctx context.Context, device, app string) error
	Stop(ctx context.Context, device, app string) error
	// Remove uninstalls app from device (see gateway.Gateway.Remove).
	Remove(ctx context.Context, device, app string) error
}

// key names one app on one device.
type key struct{ app, device string }

type deployment struct {
	rev    string // see revision
	cancel context.CancelFunc
}

type result struct {
	rev    string
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

// deviceCoalesce is how long an app's reconcile waits after a device's
// change: a rollout's thousands of device reports then make a pass every
// tenth of a second, not one after another, each over the whole target.
const deviceCoalesce = 100 * time.Millisecond

// enqueueSoon asks for app to be reconciled once the device changes of
// the next deviceCoalesce have come in.
func (c *Applications) enqueueSoon(app string) {
	c.mu.Lock()
	l := c.loop
	c.mu.Unlock()
	if l != nil {
		l.queue.AddAfter(app, deviceCoalesce)
	}
}

// DeviceChanged reconciles the apps a device's change concerns, before
// the change reaches the store: those whose target selects the device,
// and those it reports (named in reported, or indexed). Its cost does not
// grow with the fleet: a match per app, cheap enough for the gateway's
// session goroutines.
func (c *Applications) DeviceChanged(device string, reported ...string) {
	c.mu.Lock()
	names := reported
	if d := c.idx.devices[device]; d != nil {
		for n, sel := range c.idx.known {
			if sel.matches(d) {
				names = append(names, n)
			}
		}
		for _, a := range d.Status.Apps {
			names = append(names, a.Name)
		}
	}
	c.mu.Unlock()
	for _, n := range names {
		c.enqueueSoon(n)
	}
}

// seen indexes an app's target from the watch and reconciles the app.
func (c *Applications) seen(app *v1alpha1.Application) {
	c.mu.Lock()
	c.idx.setApp(app)
	c.mu.Unlock()
	c.Enqueue(app.Name)
}

// deleted forgets a deleted app and reconciles it once more: that
// reconcile, after the deletion, removes the app from its devices (and
// undoes a reconcile under way that read the app before it went).
func (c *Applications) deleted(app *v1alpha1.Application) {
	c.forget(app.Name)
	c.Enqueue(app.Name)
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
	c.idx = newIndex()
	c.loop = newLoop("applications", c.Logger)
	c.mu.Unlock()
	// Reconciles wait for the index to hold the fleet: an app read against
	// half of it would report half its devices.
	synced := make(chan struct{})
	go c.watchDevices(ctx, synced)
	select {
	case <-ctx.Done():
		return nil
	case <-synced:
	}
	go watch(ctx, c.Store.Applications(), c.Resync, c.seen, c.deleted, nil)
	go c.sweep(ctx)
	c.loop.run(ctx, 2, c.reconcile)
	return nil
}

// rollout is one reconcile's view of an app: its status as it is being
// rewritten, and its targeted devices' rows.
type rollout struct {
	app  *v1alpha1.Application
	st   *v1alpha1.ApplicationStatus
	want v1alpha1.ApplicationSpec // the revision the devices are moved to
	rows []v1alpha1.DeviceRollout
	now  time.Time
}

func (c *Applications) reconcile(ctx context.Context, name string) error {
	app, err := c.Store.Applications().Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		c.forget(name)
		c.removeStrays(ctx, name, nil)
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := metav1.LabelSelectorAsSelector(app.Spec.Target.Selector); err != nil {
		return c.writeStatus(ctx, app, func(st *v1alpha1.ApplicationStatus) {
			st.Phase = v1alpha1.AppFailed
			setConditions(st, app, metav1.ConditionFalse, "BadTarget", "target selector: "+err.Error())
		})
	}
	c.mu.Lock()
	c.idx.setApp(app)
	targets := c.idx.targeted(name)
	targeted := c.idx.targets[name]
	c.mu.Unlock()
	c.removeStrays(ctx, name, targeted)

	r := &rollout{app: app, st: app.Status.DeepCopy(), now: time.Now()}
	st := r.st
	st.ObservedGeneration = app.Generation
	if st.Aborted != nil && st.Aborted.Generation != app.Generation {
		st.Aborted = nil // a new spec starts a new rollout
	}
	started := recordRevision(st, app.Spec, r.now)
	was := app.Status.Phase
	want, ok := wanted(app, st)
	r.want = want
	r.rows = make([]v1alpha1.DeviceRollout, 0, len(targets))
	rev := revision(want.Module.SHA256, want.Version, want.Limits)
	c.mu.Lock()
	for _, d := range targets {
		r.rows = append(r.rows, c.rowForLocked(name, want, rev, d))
	}
	c.mu.Unlock()
	r.count()
	st.CurrentRevision = want.Version
	if !ok {
		st.CurrentRevision = ""
	}

	switch {
	case app.Spec.Stopped:
		c.stopAll(ctx, app.Name, targets)
		st.Phase = v1alpha1.AppStopped
		setConditions(st, app, metav1.ConditionFalse, "Stopped", "the app is stopped on every device")
	case st.Aborted == nil && st.Failed > app.Spec.Rollout.MaxFailures:
		c.abort(ctx, r)
	case !ok:
		// Aborted with no stable revision: nothing of the app runs.
		c.stopAll(ctx, app.Name, targets)
		st.Phase = v1alpha1.AppFailed
		setConditions(st, app, metav1.ConditionFalse, "RolloutAborted", st.Aborted.Reason+"; no stable revision to return to: the app is stopped")
	case app.Spec.Paused:
		st.Phase = v1alpha1.AppPaused
		setConditions(st, app, metav1.ConditionFalse, "Paused", "the rollout is paused")
	default:
		c.advance(ctx, r)
	}
	if err := c.writeStatus(ctx, app, func(s *v1alpha1.ApplicationStatus) { *s = *st }); err != nil {
		return err
	}
	if started {
		record(c.Recorder, app, EventNormal, "RolloutStarted", "rolling version %s out to %d devices", app.Spec.Version, st.Targeted)
	}
	if st.Phase == v1alpha1.AppRunning && was != v1alpha1.AppRunning {
		record(c.Recorder, app, EventNormal, "RolloutComplete", "version %s runs on %d of %d devices", app.Spec.Version, st.Running, st.Targeted)
	}
	return nil
}

// count sets the status's counts, failed devices and revision counts from
// the rows.
func (r *rollout) count() {
	st := r.st
	st.Targeted, st.Pending, st.Waiting, st.Transferring, st.Running, st.Stopped, st.Failed = int32(len(r.rows)), 0, 0, 0, 0, 0, 0
	st.FailedDevices = nil
	runningVersions := make(map[string]int32)
	for _, row := range r.rows {
		switch row.State {
		case RolloutPending:
			st.Pending++
		case RolloutWaiting:
			st.Waiting++
		case RolloutTransferring:
			st.Transferring++
		case RolloutRunning, RolloutExited:
			st.Running++
		case RolloutStopped:
			st.Stopped++
		case RolloutFailed:
			st.Failed++
			if len(st.FailedDevices) < failedLimit {
				st.FailedDevices = append(st.FailedDevices, v1alpha1.DeviceFailure{Device: row.Device, Version: row.Target, Reason: row.Reason})
			}
		}
		if row.Version != "" {
			runningVersions[row.Version]++
		}
	}
	for i := range st.History {
		st.History[i].Devices = runningVersions[st.History[i].Version]
	}
}

// rowForLocked works out one device's part of the rollout towards want
// (whose revision is rev): what its status says, moved on by the deploys
// this controller has under way or has seen end, which the device's
// status may not show yet. The caller holds c.mu.
func (c *Applications) rowForLocked(app string, want v1alpha1.ApplicationSpec, rev string, d *v1alpha1.Device) v1alpha1.DeviceRollout {
	row := DeviceRollout(app, want, d)
	k := key{app, d.Name}
	dep := c.inflight[k]
	res, hasRes := c.results[k]
	switch {
	case dep != nil && dep.rev == rev:
		row.State, row.Reason = RolloutTransferring, ""
	case hasRes && res.rev == rev && res.reason != "" && row.State != RolloutFailed:
		row.State, row.Reason = RolloutFailed, res.reason
	case hasRes && res.rev == rev && res.reason == "" && (row.State == RolloutPending || row.State == RolloutWaiting):
		// Deployed; the device's report is on its way to the store.
		row.State, row.Reason = RolloutTransferring, ""
	}
	return row
}

// advance starts deploys for the next devices as the batch allows: a
// device counts against the batch until its app has run HealthySeconds
// without failing. Returning to the stable revision is not batched.
func (c *Applications) advance(ctx context.Context, r *rollout) {
	app, st, now := r.app, r.st, r.now
	gate := time.Duration(app.Spec.Rollout.HealthySeconds) * time.Second
	healthy := func(row v1alpha1.DeviceRollout) bool {
		return row.State == RolloutExited ||
			(row.State == RolloutRunning && (row.Since == nil || now.Sub(row.Since.Time) >= gate))
	}
	batch := batchSize(app.Spec.Rollout, len(r.rows))
	if st.Aborted != nil {
		batch = len(r.rows)
	}
	active, done, waiting := 0, 0, false
	for _, row := range r.rows {
		switch {
		case healthy(row):
			done++
		case row.State == RolloutRunning:
			active++
			// Look again when it passes the health gate.
			c.loop.queue.AddAfter(app.Name, gate-now.Sub(row.Since.Time)+100*time.Millisecond)
		case row.State == RolloutTransferring:
			active++
		case row.State == RolloutStopped:
			c.command(ctx, row.Device, app.Name, c.Gateway.Start)
		case row.State == RolloutWaiting:
			waiting = true
		}
	}
	var mod *gateway.Module
	for i := range r.rows {
		row := &r.rows[i]
		if row.State != RolloutPending || active >= batch {
			continue
		}
		if mod == nil {
			m, err := Module(ctx, c.Store.Modules(), app.Name, r.want)
			if err != nil {
				st.Phase = v1alpha1.AppFailed
				setConditions(st, app, metav1.ConditionFalse, "ModuleMissing", err.Error())
				return
			}
			mod = &m
		}
		c.deploy(app.Name, row.Device, r.want, *mod)
		row.State = RolloutTransferring
		st.Pending--
		st.Transferring++
		active++
	}
	if st.Aborted != nil {
		c.rolledBack(r, done)
		return
	}
	if done == len(r.rows) && done > 0 {
		st.Phase = v1alpha1.AppRunning
		st.StableRevision = app.Spec.Version
		msg := fmt.Sprintf("version %s runs on all %d devices", app.Spec.Version, done)
		setCondition(st, app, "Progressing", metav1.ConditionTrue, "RolledOut", msg)
		setCondition(st, app, "Ready", metav1.ConditionTrue, "RolledOut", msg)
		return
	}
	st.Phase = v1alpha1.AppRollingOut
	msg := fmt.Sprintf("%d of %d devices healthy, batch of %d", done, len(r.rows), batch)
	if waiting {
		msg += "; some devices are offline"
	}
	if st.Failed > 0 {
		msg += fmt.Sprintf("; %d failed (limit %d)", st.Failed, app.Spec.Rollout.MaxFailures)
	}
	if len(r.rows) == 0 {
		st.Phase = v1alpha1.AppPending
		setConditions(st, app, metav1.ConditionFalse, "NoTargets", "no device matches the target")
		return
	}
	setCondition(st, app, "Progressing", metav1.ConditionTrue, "RollingOut", msg)
	setCondition(st, app, "Ready", metav1.ConditionFalse, "RollingOut", msg)
}

// rolledBack sets the status of an aborted rollout whose devices return
// to the stable revision.
func (c *Applications) rolledBack(r *rollout, done int) {
	app, st := r.app, r.st
	ab := st.Aborted
	switch {
	case st.Failed > 0:
		st.Phase = v1alpha1.AppFailed
		setConditions(st, app, metav1.ConditionFalse, "StableFailed", fmt.Sprintf(
			"%s; the stable version %s fails too on %d devices: nothing more is sent until the spec changes", ab.Reason, ab.RolledBackTo, st.Failed))
	case done == len(r.rows):
		st.Phase = v1alpha1.AppRolledBack
		setConditions(st, app, metav1.ConditionFalse, "RolloutAborted", fmt.Sprintf(
			"%s; all %d devices run the stable version %s", ab.Reason, done, ab.RolledBackTo))
	default:
		st.Phase = v1alpha1.AppRolledBack
		setConditions(st, app, metav1.ConditionFalse, "RollingBack", fmt.Sprintf(
			"%s; %d of %d devices back on the stable version %s", ab.Reason, done, len(r.rows), ab.RolledBackTo))
	}
}

// abort stops the rollout of the spec's generation: its deploys are
// cancelled and the devices return to the stable revision, or, with none,
// the app is stopped. The spec is left as its owner wrote it; a new
// generation starts a new rollout.
func (c *Applications) abort(ctx context.Context, r *rollout) {
	app, st := r.app, r.st
	var failed []string
	for _, f := range st.FailedDevices {
		failed = append(failed, f.Device+": "+f.Reason)
	}
	if int(st.Failed) > len(failed) {
		failed = append(failed, fmt.Sprintf("and %d more", int(st.Failed)-len(failed)))
	}
	reason := fmt.Sprintf("%d of %d devices failed version %s (limit %d): %s",
		st.Failed, st.Targeted, app.Spec.Version, app.Spec.Rollout.MaxFailures, strings.Join(failed, "; "))
	st.Aborted = &v1alpha1.Abort{Generation: app.Generation, Version: app.Spec.Version, Reason: reason, Time: metav1.Time{Time: r.now.Truncate(time.Second)}}
	if st.StableRevision != app.Spec.Version && FindRevision(st.History, st.StableRevision) != nil {
		st.Aborted.RolledBackTo = st.StableRevision
	}
	c.cancelDeploys(app.Name, nil)
	if to := st.Aborted.RolledBackTo; to != "" {
		c.loop.log.Info("rollout aborted; returning to the stable version", "app", app.Name, "version", app.Spec.Version, "stable", to, "reason", reason)
		record(c.Recorder, app, EventWarning, "RolloutAborted", "%s; returning to the stable version %s", reason, to)
		st.Phase = v1alpha1.AppRolledBack
		setConditions(st, app, metav1.ConditionFalse, "RollingBack", reason+"; returning to the stable version "+to)
	} else {
		c.loop.log.Info("rollout aborted; no stable version to return to", "app", app.Name, "version", app.Spec.Version, "reason", reason)
		record(c.Recorder, app, EventWarning, "RolloutAborted", "%s; no stable version to return to: the app is stopped", reason)
		st.Phase = v1alpha1.AppFailed
		setConditions(st, app, metav1.ConditionFalse, "RolloutAborted", reason+"; no stable revision to return to: the app is stopped")
	}
	// The next reconcile moves the devices.
	c.Enqueue(app.Name)
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

// deploy sends mod, spec's module, to device in the background and
// reconciles the app again when it ends. A device that goes away mid-way
// is not a failure: it is deployed to again when it is back.
func (c *Applications) deploy(app, device string, spec v1alpha1.ApplicationSpec, mod gateway.Module) {
	ctx, cancel := context.WithTimeout(c.ctx, c.DeployTimeout)
	rev := revision(spec.Module.SHA256, spec.Version, spec.Limits)
	k := key{app, device}
	c.mu.Lock()
	c.inflight[k] = &deployment{rev: rev, cancel: cancel}
	// The result of the deploy before is history: kept, it would pass for
	// this one's if this one is cancelled (a deploy of the same revision
	// again would then look done and never be sent).
	delete(c.results, k)
	c.mu.Unlock()
	go func() {
		defer cancel()
		err := c.Gateway.Deploy(ctx, device, mod)
		c.mu.Lock()
		if d := c.inflight[k]; d != nil && d.rev == rev {
			delete(c.inflight, k)
		}
		var de *gateway.DeployError
		switch {
		case err == nil:
			c.results[k] = result{rev: rev}
		case errors.As(err, &de):
			c.results[k] = result{rev: rev, reason: de.Reason}
		}
		c.mu.Unlock()
		if err != nil {
			c.loop.log.Info("deploy ended", "app", app, "device", device, "err", err)
		}
		c.enqueueSoon(app)
	}()
}

// command runs a Start, Stop or Remove of app on device, bounded in time; an
// offline device is skipped (it is dealt with when it is back).
func (c *Applications) command(ctx context.Context, device, app string, f func(context.Context, string, string) error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := f(ctx, device, app); err != nil && !errors.Is(err, gateway.ErrNotConnected) {
		c.loop.log.Info("app command", "app", app, "device", device, "err", err)
	}
}

// removeStrays removes app from the devices that report it but are not
// among its targets: devices that left its target, and every device once
// the app is deleted (targeted nil). The device stops it, deletes its
// module and frees its slot. An offline one is dealt with when it is
// back. It reads the devices that report the app, not the fleet.
func (c *Applications) removeStrays(ctx context.Context, app string, targeted map[string]bool) {
	c.mu.Lock()
	strays := c.idx.strays(app, targeted)
	c.mu.Unlock()
	if len(strays) > 0 {
		c.cancelDeploys(app, func(device string) bool { return !targeted[device] })
	}
	for _, d := range strays {
		c.loop.log.Info("removing an app the device is no longer meant to run", "app", app, "device", d)
		c.command(ctx, d, app, c.Gateway.Remove)
	}
}

// sweep enqueues, every Resync, the apps devices report that this
// controller has not seen (see index.unknownApps). Their reconcile
// removes them.
func (c *Applications) sweep(ctx context.Context) {
	t := time.NewTicker(c.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		unknown := c.idx.unknownApps()
		c.mu.Unlock()
		for _, name := range unknown {
			c.Enqueue(name)
		}
	}
}

// stopAll stops app on the devices that report it running, whatever
// version, after cancelling its deploys.
func (c *Applications) stopAll(ctx context.Context, app string, devices []*v1alpha1.Device) {
	c.cancelDeploys(app, nil)
	for _, d := range devices {
		if runs(d, app) {
			c.command(ctx, d.Name, app, c.Gateway.Stop)
		}
	}
}

// cancelDeploys cancels app's deploys under way to the devices only
// selects; nil selects all.
func (c *Applications) cancelDeploys(app string, only func(device string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, d := range c.inflight {
		if k.app == app && (only == nil || only(k.device)) {
			d.cancel()
		}
	}
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

// setConditions sets Progressing to status and Ready to False, both for
// the same reason: the app is not where its spec asks.
func setConditions(st *v1alpha1.ApplicationStatus, app *v1alpha1.Application, progressing metav1.ConditionStatus, reason, msg string) {
	setCondition(st, app, "Progressing", progressing, reason, msg)
	setCondition(st, app, "Ready", metav1.ConditionFalse, reason, msg)
}

// StatusFailure is the condition an Application carries while its status
// cannot be written (the store refuses it): True, with the store's error.
const StatusFailure = "StatusFailure"

// writeStatus applies change to a copy of app's status and writes it when
// it differs. A status the store refuses is said in a Warning Event and,
// on the status as last written, in the StatusFailure condition, so that
// the status does not freeze in silence; the next written status clears
// it.
func (c *Applications) writeStatus(ctx context.Context, app *v1alpha1.Application, change func(*v1alpha1.ApplicationStatus)) error {
	was := app.Status.DeepCopy()
	st := app.Status.DeepCopy()
	change(st)
	apimeta.RemoveStatusCondition(&st.Conditions, StatusFailure)
	if equality.Semantic.DeepEqual(st, &app.Status) {
		return nil
	}
	app.Status = *st
	_, err := c.Store.Applications().UpdateStatus(ctx, app)
	if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) || ctx.Err() != nil {
		return err
	}
	c.loop.log.Warn("application status not written", "app", app.Name, "err", err)
	record(c.Recorder, app, EventWarning, "StatusWriteFailed", "the status could not be written: %v", err)
	app.Status = *was
	setCondition(&app.Status, app, StatusFailure, metav1.ConditionTrue, "WriteRefused", "the status could not be written: "+err.Error())
	if !equality.Semantic.DeepEqual(&app.Status, was) {
		if _, err := c.Store.Applications().UpdateStatus(ctx, app); err != nil {
			c.loop.log.Warn("application status failure not written either", "app", app.Name, "err", err)
		}
	}
	return err
}

// forget drops what the controller holds for a deleted app, cancelling
// its deploys; its reconcile stops it where it still runs.
func (c *Applications) forget(app string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idx.dropApp(app)
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
