package agent

import (
	"context"
	"encoding/hex"
	"os"
	"sort"
	"sync"
	"time"

	"wasmbed.io/wasmbed/firmware/sandbox"
	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// appManager owns the apps of one device: transfers, installs, the running
// sandboxes and their records in the state directory.
type appManager struct {
	a *Agent

	installMu sync.Mutex // serializes verify+install so two versions never race

	mu        sync.Mutex
	recs      map[string]*appRecord
	running   map[string]*sandbox.App
	transfers map[string]*transfer // by app
}

// transfer is a module being received.
type transfer struct {
	d        protocol.Deploy
	sha      string
	received uint64
}

func newAppManager(a *Agent) (*appManager, error) {
	recs, err := a.state.loadApps()
	if err != nil {
		return nil, err
	}
	return &appManager{a: a, recs: recs, running: make(map[string]*sandbox.App), transfers: make(map[string]*transfer)}, nil
}

// info describes app for hello and app-status.
func (r *appRecord) info(app string) protocol.AppInfo {
	sha, _ := hex.DecodeString(r.Current.SHA256)
	in := protocol.AppInfo{App: app, Version: r.Current.Version, SHA256: sha, State: r.State, Reason: r.Reason,
		Limits: r.Current.Limits}
	if r.Previous != nil {
		in.Previous = r.Previous.Version
	}
	return in
}

// report lists every app and unfinished transfer, sorted by name.
func (m *appManager) report() []protocol.AppInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []protocol.AppInfo
	for name, r := range m.recs {
		out = append(out, r.info(name))
	}
	for name, t := range m.transfers {
		if m.recs[name] == nil {
			out = append(out, protocol.AppInfo{App: name, Version: t.d.Version, SHA256: t.d.SHA256,
				State: protocol.StateTransferring, Received: t.received})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// deploy answers a Deploy: how many bytes of the module the device holds.
func (m *appManager) deploy(d *protocol.Deploy) (*protocol.DeployStatus, error) {
	if err := pki.ValidDeviceName(d.App); err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "app name: %v", err)
	}
	if len(d.SHA256) != 32 || d.Version == "" || d.Size == 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "deploy needs a version, a 32-byte sha256 and a size")
	}
	if d.Size > uint64(m.a.cfg.MaxModule) {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "module of %d bytes exceeds this device's limit of %d", d.Size, m.a.cfg.MaxModule)
	}
	sha := hex.EncodeToString(d.SHA256)
	st := &protocol.DeployStatus{App: d.App, Version: d.Version, SHA256: d.SHA256, Received: d.Size}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.recs[d.App]; r != nil && r.Current.SHA256 == sha {
		// Installed already: deploying twice installs once. The same bytes
		// under a new version name are relabelled, and under new limits
		// restarted if running, not installed again.
		st.State = r.State
		m.relabelLocked(d.App, r, d)
		return st, nil
	}
	if _, err := os.Stat(m.a.state.modulePath(sha)); err == nil {
		st.State = protocol.StateVerifying // held for rollback or by another app
		go m.install(*d)
		return st, nil
	}
	if old := m.transfers[d.App]; old != nil && old.sha != sha {
		m.a.state.dropPartial(old.sha)
	}
	t := &transfer{d: *d, sha: sha, received: m.a.state.partialSize(sha)}
	if t.received > d.Size {
		m.a.state.dropPartial(sha)
		t.received = 0
	}
	m.transfers[d.App] = t
	st.State, st.Received = protocol.StateTransferring, t.received
	if t.received == d.Size {
		delete(m.transfers, d.App)
		go m.install(t.d)
	}
	return st, nil
}

// relabelLocked applies the version name and limits of a deploy of the
// module app runs already, and reports the change; the same manifest
// again changes nothing.
func (m *appManager) relabelLocked(app string, r *appRecord, d *protocol.Deploy) {
	limited := r.Current.Limits != d.Limits
	if r.Current.Version == d.Version && !limited {
		return
	}
	r.Current.Version, r.Current.Limits = d.Version, d.Limits
	m.saveLocked()
	if _, running := m.running[app]; limited && running {
		go func() {
			m.stopApp(app)
			m.startApp(app) // reports the app under its new limits
		}()
		return
	}
	info := r.info(app)
	go m.a.send(protocol.TypeAppStatus, &info)
}

// chunk stores the bytes of a Chunk. A chunk already held is acked again
// (retransmissions are harmless); one that leaves a gap is refused.
func (m *appManager) chunk(c *protocol.Chunk) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.transfers[c.App]
	if t == nil || t.sha != hex.EncodeToString(c.SHA256) {
		return protocol.Errorf(protocol.CodeBadRequest, "no transfer of that module for app %q: send deploy first", c.App)
	}
	if c.Offset > t.d.Size || uint64(len(c.Data)) > t.d.Size-c.Offset {
		return protocol.Errorf(protocol.CodeBadRequest, "chunk of %d bytes at %d is past the module's %d bytes", len(c.Data), c.Offset, t.d.Size)
	}
	end := c.Offset + uint64(len(c.Data))
	switch {
	case end <= t.received:
		return nil
	case c.Offset != t.received:
		return protocol.Errorf(protocol.CodeBadRequest, "chunk at offset %d, expected %d", c.Offset, t.received)
	}
	if err := m.a.state.appendPartial(t.sha, c.Offset, c.Data); err != nil {
		return protocol.Errorf(protocol.CodeInternal, "store chunk: %v", err)
	}
	t.received = end
	if end == t.d.Size {
		delete(m.transfers, c.App)
		go m.install(t.d)
	}
	return nil
}

// install verifies a complete module and makes it the app's running
// version; the previous one is kept for rollback. A module that fails
// verification or validation is reported and the running version stays.
func (m *appManager) install(d protocol.Deploy) {
	m.installMu.Lock()
	defer m.installMu.Unlock()
	sha := hex.EncodeToString(d.SHA256)
	m.a.send(protocol.TypeDeployStatus, &protocol.DeployStatus{App: d.App, Version: d.Version, SHA256: d.SHA256,
		State: protocol.StateVerifying, Received: d.Size})
	data, err := m.a.state.readModule(sha)
	if err != nil {
		data, err = m.a.state.finishPartial(sha)
	}
	if err == nil {
		err = sandbox.Validate(context.Background(), data, sandboxLimits(d.Limits))
	}
	if err != nil {
		m.refuse(d, err)
		return
	}
	m.mu.Lock()
	old := m.recs[d.App]
	if old != nil && old.Current.SHA256 == sha {
		m.mu.Unlock()
		return // a second deploy of a module just installed
	}
	r := &appRecord{Current: version{Version: d.Version, SHA256: sha, Size: d.Size, Limits: d.Limits}}
	if old != nil {
		prev := old.Current
		r.Previous = &prev
	}
	m.recs[d.App] = r
	m.mu.Unlock()
	m.stopApp(d.App)
	m.startApp(d.App)
	m.a.log.Info("app installed", "app", d.App, "version", d.Version)
}

// refuse reports a deployment that failed before it ran, then the state of
// the version still installed, if any.
func (m *appManager) refuse(d protocol.Deploy, err error) {
	reason := err.Error()
	m.a.log.Info("deploy refused", "app", d.App, "version", d.Version, "reason", reason)
	m.a.send(protocol.TypeDeployStatus, &protocol.DeployStatus{App: d.App, Version: d.Version, SHA256: d.SHA256,
		State: protocol.StateFailed, Reason: reason})
	m.a.send(protocol.TypeAppStatus, &protocol.AppInfo{App: d.App, Version: d.Version, SHA256: d.SHA256,
		State: protocol.StateFailed, Reason: reason})
	m.mu.Lock()
	r := m.recs[d.App]
	var cur protocol.AppInfo
	if r != nil {
		cur = r.info(d.App)
	}
	m.mu.Unlock()
	if r != nil {
		m.a.send(protocol.TypeAppStatus, &cur)
	}
}

func sandboxLimits(l protocol.Limits) sandbox.Limits {
	return sandbox.Limits{
		MemoryPages: l.MemoryPages,
		CallTimeout: time.Duration(l.CallMS) * time.Millisecond,
		Period:      time.Duration(l.PeriodMS) * time.Millisecond,
	}
}

// startApp runs the app's current version and watches it end.
func (m *appManager) startApp(name string) {
	m.mu.Lock()
	r := m.recs[name]
	m.mu.Unlock()
	if r == nil {
		return
	}
	data, err := m.a.state.readModule(r.Current.SHA256)
	var app *sandbox.App
	if err == nil {
		app, err = sandbox.Start(context.Background(), name, data, sandboxLimits(r.Current.Limits), m)
	}
	m.mu.Lock()
	if err != nil {
		r.State, r.Reason = protocol.StateFailed, err.Error()
	} else {
		r.State, r.Reason = protocol.StateRunning, ""
		m.running[name] = app
	}
	m.saveLocked()
	info := r.info(name)
	m.mu.Unlock()
	m.a.send(protocol.TypeAppStatus, &info)
	if app != nil {
		go m.watch(name, app)
	}
}

// watch records how a running app ended, unless it was stopped on purpose.
func (m *appManager) watch(name string, app *sandbox.App) {
	<-app.Done()
	m.mu.Lock()
	if m.running[name] != app {
		m.mu.Unlock()
		return // stopped or replaced; whoever did it reports
	}
	delete(m.running, name)
	r := m.recs[name]
	switch err := app.Err(); {
	case err != nil:
		r.State, r.Reason = protocol.StateFailed, err.Error()
	case app.Exited():
		r.State, r.Reason = protocol.StateExited, ""
	default:
		r.State, r.Reason = protocol.StateStopped, ""
	}
	m.saveLocked()
	info := r.info(name)
	m.mu.Unlock()
	m.a.log.Info("app ended", "app", name, "state", info.State.String(), "reason", info.Reason)
	m.a.send(protocol.TypeAppStatus, &info)
}

// stopApp stops the app's running sandbox, if any, and waits for it.
func (m *appManager) stopApp(name string) {
	m.mu.Lock()
	app := m.running[name]
	delete(m.running, name)
	m.mu.Unlock()
	if app != nil {
		app.Stop()
	}
}

// command carries out Start, Stop or Remove.
func (m *appManager) command(t protocol.Type, name string) error {
	if t == protocol.TypeRemove {
		m.remove(name)
		return nil
	}
	m.mu.Lock()
	r := m.recs[name]
	_, running := m.running[name]
	m.mu.Unlock()
	if r == nil {
		return protocol.Errorf(protocol.CodeUnknownApp, "no app %q on this device", name)
	}
	switch t {
	case protocol.TypeStart:
		if !running {
			go m.startApp(name)
		}
	case protocol.TypeStop:
		m.stopApp(name)
		m.mu.Lock()
		r.State, r.Reason = protocol.StateStopped, ""
		m.saveLocked()
		info := r.info(name)
		m.mu.Unlock()
		m.a.send(protocol.TypeAppStatus, &info)
	}
	return nil
}

// remove uninstalls an app: it stops it, forgets its record and transfer,
// and deletes the modules no other app holds. An app the device does not
// have is removed already.
func (m *appManager) remove(name string) {
	m.stopApp(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	_, installed := m.recs[name]
	if t := m.transfers[name]; t != nil {
		m.a.state.dropPartial(t.sha)
		delete(m.transfers, name)
	}
	if installed {
		delete(m.recs, name)
		m.saveLocked()
		m.a.log.Info("app removed", "app", name)
	}
}

// resume starts again the apps that were running when the device stopped.
func (m *appManager) resume() {
	m.mu.Lock()
	var names []string
	for name, r := range m.recs {
		if r.State == protocol.StateRunning {
			names = append(names, name)
		}
	}
	m.mu.Unlock()
	for _, name := range names {
		m.startApp(name)
	}
}

// stopAll stops every app without recording it, so that a restart resumes
// them.
func (m *appManager) stopAll() {
	m.mu.Lock()
	apps := m.running
	m.running = make(map[string]*sandbox.App)
	m.mu.Unlock()
	for _, app := range apps {
		app.Stop()
	}
}

func (m *appManager) saveLocked() {
	if err := m.a.state.saveApps(m.recs); err != nil {
		m.a.log.Error("save app state", "err", err)
	}
}

// Console implements sandbox.Host: app output goes to the device console.
func (m *appManager) Console(app string, p []byte) {
	m.a.cfg.Console.Write(p)
	m.a.send(protocol.TypeConsole, &protocol.Console{Data: p, App: app})
}

// Telemetry implements sandbox.Host.
func (m *appManager) Telemetry(app string, at time.Time, values map[string]float64) {
	m.a.send(protocol.TypeTelemetry, &protocol.Telemetry{App: app, Values: values, TimeMS: at.UnixMilli()})
}

var _ sandbox.Host = (*appManager)(nil)
