package tui

import (
	"encoding/json"
	"strconv"
	"time"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
)

// Bounds of what the cache keeps of the event stream.
const (
	maxEvents       = 2000 // the events view's history
	recentPerDevice = 20   // a device detail's recent events
	rttSamples      = 40   // a device detail's heartbeat round trips
)

// cache is the console's copy of the daemon's state: the resources as
// the initial lists and then the event stream report them, what device
// events tell beyond the resources, and the latest events. Objects in it
// are replaced, never changed in place, so a view may keep pointers to
// them. It is used only from the program's Update goroutine.
type cache struct {
	devices  map[string]*v1alpha1.Device
	apps     map[string]*v1alpha1.Application
	gateways map[string]*v1alpha1.Gateway
	live     map[string]*deviceLive

	// events holds the latest events, oldest first; at most maxEvents
	// are visible (the slice is trimmed in bulk).
	events  []api.Event
	lastSeq uint64

	// rev changes whenever anything in the cache does; views rebuild
	// what they derive from it when it moved.
	rev uint64
}

// deviceLive is what device events (online, offline, app, progress,
// telemetry) tell about one device between resource updates.
type deviceLive struct {
	online   bool
	known    bool      // an online or offline event was seen
	since    time.Time // of the last online or offline event
	reason   string    // why it went offline
	apps     map[string]api.AppEvent
	telem    map[string]telemetry // by app
	recent   []api.Event          // newest last
	lastSeen time.Time            // of its last event

	// rtt holds the device's last heartbeat round trips, microseconds,
	// oldest first, at most rttSamples: a sample is taken when a device
	// update brings a round trip or a last-seen time other than the
	// previous sample's.
	rtt       []int64
	rttSeenAt time.Time // status.lastSeen of the last sample
}

// inTransfer reports whether ev, an app's latest event on a device,
// is a module on its way: a progress event of a transfer not yet
// complete. The device's report of the module (an app event) ends it.
func inTransfer(ev api.AppEvent) bool { return ev.Total > 0 && ev.Sent < ev.Total }

// telemetry is the last values an app reported.
type telemetry struct {
	values map[string]float64
	time   time.Time
}

func newCache() *cache {
	return &cache{
		devices:  map[string]*v1alpha1.Device{},
		apps:     map[string]*v1alpha1.Application{},
		gateways: map[string]*v1alpha1.Gateway{},
		live:     map[string]*deviceLive{},
	}
}

// reset replaces the resources with freshly listed ones. fresh says the
// daemon is not the one the cache was filled from (or the first one):
// what the event stream told is dropped too.
func (c *cache) reset(devs []v1alpha1.Device, apps []v1alpha1.Application, gws []v1alpha1.Gateway, fresh bool) {
	c.devices = make(map[string]*v1alpha1.Device, len(devs))
	for i := range devs {
		c.devices[devs[i].Name] = &devs[i]
	}
	c.apps = make(map[string]*v1alpha1.Application, len(apps))
	for i := range apps {
		c.apps[apps[i].Name] = &apps[i]
	}
	c.gateways = make(map[string]*v1alpha1.Gateway, len(gws))
	for i := range gws {
		c.gateways[gws[i].Name] = &gws[i]
	}
	if fresh {
		c.live = map[string]*deviceLive{}
		c.events = nil
		c.lastSeq = 0
	}
	// Only devices with a history take a sample here: starting one for
	// each of 10,000 devices would double the time to the first frame, and
	// rttHistory adds a device's current round trip when it is not
	// sampled yet.
	for name := range c.live {
		if d := c.devices[name]; d != nil {
			c.sampleRTT(d)
		}
	}
	c.rev++
}

// newerVersion reports whether an object at resourceVersion event may
// replace one cached at resourceVersion cached. Versions that are both
// numbers (the embedded store's revision counter, etcd's revisions)
// compare as numbers, so a replayed old event cannot undo a newer list;
// anything else is taken as newer.
func newerVersion(event, cached string) bool {
	a, errA := strconv.ParseUint(event, 10, 64)
	b, errB := strconv.ParseUint(cached, 10, 64)
	if errA != nil || errB != nil {
		return true
	}
	return a >= b
}

// apply takes one event of the stream into the cache and reports whether
// the cache changed. An event at or below the last sequence number seen
// is a replay of one already applied and is skipped.
func (c *cache) apply(e api.Event) bool {
	if e.Seq != 0 {
		if e.Seq <= c.lastSeq {
			return false
		}
		c.lastSeq = e.Seq
	}
	c.record(e)
	switch e.Type {
	case api.EventResource:
		c.applyResource(e)
	case api.EventOnline, api.EventOffline:
		l := c.liveOf(e.Device)
		l.known, l.online, l.since = true, e.Type == api.EventOnline, e.Time
		l.reason = ""
		if e.Type == api.EventOffline {
			l.reason = e.Reason
		}
	case api.EventApp, api.EventProgress:
		if e.App != nil && e.Device != "" {
			l := c.liveOf(e.Device)
			if l.apps == nil {
				l.apps = map[string]api.AppEvent{}
			}
			l.apps[e.App.Name] = *e.App
			if e.App.State == api.AppRemoved {
				delete(l.apps, e.App.Name)
			}
		}
	case api.EventTelemetry:
		if e.Device != "" {
			l := c.liveOf(e.Device)
			if l.telem == nil {
				l.telem = map[string]telemetry{}
			}
			app := ""
			if e.App != nil {
				app = e.App.Name
			}
			l.telem[app] = telemetry{values: e.Values, time: e.Time}
		}
	}
	c.rev++
	return true
}

// record keeps e in the event history and in its device's recent events.
func (c *cache) record(e api.Event) {
	c.events = append(c.events, e)
	if len(c.events) >= 2*maxEvents {
		c.events = append([]api.Event(nil), c.events[len(c.events)-maxEvents:]...)
	}
	dev := e.Device
	if dev == "" && e.Kind == v1alpha1.KindDevice {
		dev = e.Name
	}
	if dev == "" {
		return
	}
	l := c.liveOf(dev)
	l.lastSeen = e.Time
	if e.Type == api.EventTelemetry || e.Type == api.EventResource && e.Action == "MODIFIED" ||
		e.Type == api.EventProgress && e.App != nil && e.App.Total > 0 {
		// Frequent, and shown otherwise: telemetry as the last values,
		// status changes as the device's state, the bytes of a transfer
		// (one event a chunk) as its app's percentage. What the device
		// says of a deploy (verifying, failed) stays.
		return
	}
	l.recent = append(l.recent, e)
	if len(l.recent) > recentPerDevice {
		l.recent = append(l.recent[:0:0], l.recent[len(l.recent)-recentPerDevice:]...)
	}
}

// eventLog returns the latest events, oldest first, at most maxEvents.
func (c *cache) eventLog() []api.Event {
	if len(c.events) > maxEvents {
		return c.events[len(c.events)-maxEvents:]
	}
	return c.events
}

func (c *cache) liveOf(device string) *deviceLive {
	l := c.live[device]
	if l == nil {
		l = &deviceLive{}
		c.live[device] = l
	}
	return l
}

func (c *cache) applyResource(e api.Event) {
	deleted := e.Action == "DELETED"
	switch e.Kind {
	case v1alpha1.KindDevice:
		was := c.devices[e.Name]
		applyObject(c.devices, e, deleted, func(d *v1alpha1.Device) string { return d.ResourceVersion })
		if d := c.devices[e.Name]; d != nil && was != nil && d != was {
			keepLive(was, d)
		}
		if d := c.devices[e.Name]; d != nil {
			c.sampleRTT(d)
		} else if deleted {
			delete(c.live, e.Name)
		}
	case v1alpha1.KindApplication:
		applyObject(c.apps, e, deleted, func(a *v1alpha1.Application) string { return a.ResourceVersion })
	case v1alpha1.KindGateway:
		applyObject(c.gateways, e, deleted, func(g *v1alpha1.Gateway) string { return g.ResourceVersion })
	}
}

// rttHistory returns d's round trips from its live state l (nil when it
// has none), oldest first, ending with its current one.
func rttHistory(d *v1alpha1.Device, l *deviceLive) []int64 {
	var h []int64
	if l != nil {
		h = l.rtt
	}
	if us := d.Status.RTTMicros; us > 0 && (len(h) == 0 || h[len(h)-1] != us) {
		h = append(h[:len(h):len(h)], us)
	}
	return h
}

// sampleRTT adds the device's round trip to its history when it differs
// from the last sample's, or was measured at another last-seen time.
func (c *cache) sampleRTT(d *v1alpha1.Device) {
	us := d.Status.RTTMicros
	if us <= 0 {
		return
	}
	var seen time.Time
	if d.Status.LastSeen != nil {
		seen = d.Status.LastSeen.Time
	}
	l := c.liveOf(d.Name)
	if n := len(l.rtt); n > 0 && l.rtt[n-1] == us && l.rttSeenAt.Equal(seen) {
		return
	}
	l.rtt = append(l.rtt, us)
	if len(l.rtt) > rttSamples {
		l.rtt = append(l.rtt[:0:0], l.rtt[len(l.rtt)-rttSamples:]...)
	}
	l.rttSeenAt = seen
}

// keepLive carries the session facts (last seen, round trip) of the
// cached device was over to d when d is the same stored version with
// older ones: a replayed event, published before the heartbeats that the
// cached copy was read after. The store does not keep those facts, so a
// stored version does not date them.
func keepLive(was, d *v1alpha1.Device) {
	if d.ResourceVersion != was.ResourceVersion || was.Status.LastSeen == nil {
		return
	}
	if d.Status.LastSeen == nil || d.Status.LastSeen.Before(was.Status.LastSeen) {
		d.Status.LastSeen, d.Status.RTTMicros = was.Status.LastSeen, was.Status.RTTMicros
	}
}

// applyObject sets or deletes the object of a resource event in m, unless
// the cached object is newer. An object that does not decode is skipped:
// the next change to it brings it again.
func applyObject[T any](m map[string]*T, e api.Event, deleted bool, rv func(*T) string) {
	obj := new(T)
	if len(e.Object) > 0 {
		if err := json.Unmarshal(e.Object, obj); err != nil {
			return
		}
	} else if !deleted {
		return
	}
	name := e.Name
	if cur := m[name]; cur != nil && len(e.Object) > 0 && !newerVersion(rv(obj), rv(cur)) {
		return
	}
	if deleted {
		delete(m, name)
		return
	}
	m[name] = obj
}

// putApp stores an application an action answered with, unless the cache
// has a newer one.
func (c *cache) putApp(a *v1alpha1.Application) {
	if cur := c.apps[a.Name]; cur != nil && !newerVersion(a.ResourceVersion, cur.ResourceVersion) {
		return
	}
	c.apps[a.Name] = a
	c.rev++
}

// putDevice stores a device read with its live session facts, unless the
// cache has a newer one.
func (c *cache) putDevice(d *v1alpha1.Device) {
	if cur := c.devices[d.Name]; cur != nil && !newerVersion(d.ResourceVersion, cur.ResourceVersion) {
		return
	}
	c.devices[d.Name] = d
	c.sampleRTT(d)
	c.rev++
}

// summary counts what the header shows.
type summary struct {
	gwUp, gwTotal       int
	devOnline, devTotal int
	appRunning, appFail int
	appTotal            int
}

func (c *cache) summary() summary {
	var s summary
	for _, g := range c.gateways {
		s.gwTotal++
		if g.Status.Online {
			s.gwUp++
		}
	}
	for _, d := range c.devices {
		s.devTotal++
		if d.Status.Phase == v1alpha1.DeviceOnline {
			s.devOnline++
		}
	}
	for _, a := range c.apps {
		s.appTotal++
		switch a.Status.Phase {
		case v1alpha1.AppRunning:
			s.appRunning++
		case v1alpha1.AppFailed:
			s.appFail++
		}
	}
	return s
}

// devicePhase is the device's phase, Pending before any status.
func devicePhase(d *v1alpha1.Device) v1alpha1.DevicePhase {
	if d.Status.Phase == "" {
		return v1alpha1.DevicePending
	}
	return d.Status.Phase
}

// appPhase is the application's phase, Pending before any status.
func appPhase(a *v1alpha1.Application) v1alpha1.ApplicationPhase {
	if a.Status.Phase == "" {
		return v1alpha1.AppPending
	}
	return a.Status.Phase
}

// deviceGateway is the gateway holding the device's session, else the
// one its spec asks for, else "".
func deviceGateway(d *v1alpha1.Device) string {
	if d.Status.Gateway != "" {
		return d.Status.Gateway
	}
	return d.Spec.Gateway
}
