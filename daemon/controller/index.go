package controller

import (
	"context"
	"maps"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
)

// index is the Applications controller's view of the fleet, kept from
// the devices' watch the way an informer keeps its cache: the devices,
// decoded, and two indexes over them, so that a device's change costs a
// match per app and an app's reconcile reads the devices it targets
// without a store round trip. Its maps are guarded by Applications.mu;
// the devices in it are never modified, only replaced.
type index struct {
	devices map[string]*v1alpha1.Device
	targets map[string]map[string]bool // app -> the devices its target selects
	reports map[string]map[string]bool // app -> the devices that report it
	specs   map[string]v1alpha1.Target // app -> the target the index was built for
	known   map[string]selector        // app -> its target, ready to match
	// sorted holds targets[app]'s names in order, until the set changes:
	// a reconcile reads the targets in order, and most device changes
	// leave them as they were.
	sorted map[string][]string
}

func newIndex() index {
	return index{
		devices: make(map[string]*v1alpha1.Device),
		targets: make(map[string]map[string]bool),
		reports: make(map[string]map[string]bool),
		specs:   make(map[string]v1alpha1.Target),
		known:   make(map[string]selector),
		sorted:  make(map[string][]string),
	}
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

// setApp indexes app's target, reading every device only when the target
// changed, and reports whether it did.
func (x *index) setApp(app *v1alpha1.Application) bool {
	if prev, ok := x.specs[app.Name]; ok && equality.Semantic.DeepEqual(prev, app.Spec.Target) {
		return false
	}
	sel := newSelector(app.Spec.Target)
	x.specs[app.Name] = *app.Spec.Target.DeepCopy()
	x.known[app.Name] = sel
	set := make(map[string]bool)
	for _, d := range x.devices {
		if sel.matches(d) {
			set[d.Name] = true
		}
	}
	x.targets[app.Name] = set
	delete(x.sorted, app.Name)
	return true
}

// dropApp forgets a deleted app's target; what devices report of it stays
// indexed, for its strays to be stopped.
func (x *index) dropApp(app string) {
	delete(x.specs, app)
	delete(x.known, app)
	delete(x.targets, app)
	delete(x.sorted, app)
}

// setDevice indexes d (nil: the device named name was deleted) and
// returns the apps the change concerns: those whose target selects it,
// selected it before, or that it reports or reported. A change that moves
// no rollout (a refreshed last-seen time, a board's state) concerns none.
func (x *index) setDevice(name string, d *v1alpha1.Device) []string {
	if old := x.devices[name]; old != nil && d != nil && !rolloutChange(old, d) {
		x.devices[name] = d
		return nil
	}
	var apps []string
	for app, sel := range x.known {
		set := x.targets[app]
		in := d != nil && sel.matches(d)
		if in || set[name] {
			apps = append(apps, app)
		}
		if in != set[name] {
			delete(x.sorted, app)
		}
		if in {
			set[name] = true
		} else {
			delete(set, name)
		}
	}
	if old := x.devices[name]; old != nil {
		for _, a := range old.Status.Apps {
			delete(x.reports[a.Name], name)
			if len(x.reports[a.Name]) == 0 {
				delete(x.reports, a.Name)
			}
			apps = append(apps, a.Name)
		}
	}
	if d == nil {
		delete(x.devices, name)
		return apps
	}
	x.devices[name] = d
	for _, a := range d.Status.Apps {
		if x.reports[a.Name] == nil {
			x.reports[a.Name] = make(map[string]bool)
		}
		x.reports[a.Name][name] = true
		apps = append(apps, a.Name)
	}
	return apps
}

// rolloutChange reports whether a device's change can move a rollout:
// its labels (what selects it), its phase (offline devices wait), or what
// it reports of its apps.
func rolloutChange(old, d *v1alpha1.Device) bool {
	return old.Status.Phase != d.Status.Phase ||
		!equality.Semantic.DeepEqual(old.Labels, d.Labels) ||
		!equality.Semantic.DeepEqual(old.Status.Apps, d.Status.Apps)
}

// targeted returns the devices app's target selects, sorted by name.
func (x *index) targeted(app string) []*v1alpha1.Device {
	names, ok := x.sorted[app]
	if !ok {
		names = slices.Sorted(maps.Keys(x.targets[app]))
		x.sorted[app] = names
	}
	out := make([]*v1alpha1.Device, len(names))
	for i, name := range names {
		out[i] = x.devices[name]
	}
	return out
}

// strays names the devices that report app but are not in targeted (nil:
// every device that reports it).
func (x *index) strays(app string, targeted map[string]bool) []string {
	var out []string
	for name := range x.reports[app] {
		if !targeted[name] {
			out = append(out, name)
		}
	}
	return out
}

// unknownApps lists the apps devices report that no indexed app names:
// apps deleted while no daemon led, or brought by a device re-created
// under an old name.
func (x *index) unknownApps() []string {
	var out []string
	for app := range x.reports {
		if _, ok := x.known[app]; !ok {
			out = append(out, app)
		}
	}
	return out
}

// watchDevices keeps the index from the devices' watch until ctx ends,
// closing synced once it holds every stored device. A watch that ends
// (the store closed it, or it fell behind) is opened again, and what was
// deleted meanwhile is dropped.
func (c *Applications) watchDevices(ctx context.Context, synced chan<- struct{}) {
	devices := c.Store.Devices()
	for ctx.Err() == nil {
		if err := c.relist(ctx, devices); err != nil {
			c.loop.log.Info("listing devices", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		if synced != nil {
			close(synced)
			synced = nil
		}
		ch, err := devices.Watch(ctx)
		if err != nil {
			continue
		}
		for e := range ch {
			if e.Type == store.Deleted {
				c.deviceChanged(e.Object.Name, nil)
			} else {
				c.deviceChanged(e.Object.Name, e.Object)
			}
		}
	}
}

// relist makes the index hold exactly the stored devices.
func (c *Applications) relist(ctx context.Context, devices store.Resource[*v1alpha1.Device]) error {
	list, err := devices.List(ctx)
	if err != nil {
		return err
	}
	stored := make(map[string]bool, len(list))
	for _, d := range list {
		stored[d.Name] = true
		c.deviceChanged(d.Name, d)
	}
	c.mu.Lock()
	var gone []string
	for name := range c.idx.devices {
		if !stored[name] {
			gone = append(gone, name)
		}
	}
	c.mu.Unlock()
	for _, name := range gone {
		c.deviceChanged(name, nil)
	}
	return nil
}

// deviceChanged indexes a device's change and reconciles the apps it
// concerns.
func (c *Applications) deviceChanged(name string, d *v1alpha1.Device) {
	c.mu.Lock()
	apps := c.idx.setDevice(name, d)
	c.mu.Unlock()
	for _, app := range apps {
		c.enqueueSoon(app)
	}
}
