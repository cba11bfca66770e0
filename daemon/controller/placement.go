package controller

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
)

// Placement decides which gateway each device belongs to and notices
// gateways that stopped heartbeating. It runs on the leader only.
//
// A device belongs to the gateway named by its status.gateway: that
// daemon runs its board (for an emulated device) and holds its session.
// A new device is claimed by the gateway its spec names, or by the
// leader's when it names none (see Devices). Placement moves a device
// when its gateway is unhealthy (offline, or silent for three heartbeat
// intervals) to the one its spec names if that one is healthy, otherwise
// to the healthy gateway with the fewest devices; and back to the gateway
// its spec names once that one is healthy again. A device that is not
// emulated and is online on a healthy gateway stays there: it dialled it.
type Placement struct {
	Store    store.Store
	Interval time.Duration // gateways' heartbeat interval; default 10s
	Recorder Recorder
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	healthy map[string]bool // as the last Reconcile found them
	load    map[string]int  // devices per gateway, kept up to date by Pick
}

// Pick names the healthy gateway with the fewest devices for a new
// emulated device, and counts the device there; "" before the first
// Reconcile or when no gateway is healthy. The leader's Devices controller
// places new devices with it, without a list of the fleet.
func (c *Placement) Pick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	best := leastLoaded(c.healthy, c.load)
	if best != "" {
		c.load[best]++
	}
	return best
}

// Run places devices every interval until ctx ends.
func (c *Placement) Run(ctx context.Context) error {
	if c.Interval <= 0 {
		c.Interval = DefaultHeartbeat
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	log := c.Logger.With("controller", "placement")
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		if err := c.Reconcile(ctx); err != nil && ctx.Err() == nil {
			log.Info("placement", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Reconcile marks silent gateways offline and moves the devices of
// unhealthy gateways once.
func (c *Placement) Reconcile(ctx context.Context) error {
	gws, err := c.Store.Gateways().List(ctx)
	if err != nil {
		return err
	}
	healthy := map[string]bool{}
	for _, gw := range gws {
		if c.isHealthy(gw) {
			healthy[gw.Name] = true
			continue
		}
		if gw.Status.Online || !meta.IsStatusConditionFalse(gw.Status.Conditions, "Ready") {
			gw.Status.Online = false
			meta.SetStatusCondition(&gw.Status.Conditions, metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse,
				Reason: "HeartbeatMissed", Message: "no heartbeat for three intervals", ObservedGeneration: gw.Generation})
			if _, err := c.Store.Gateways().UpdateStatus(ctx, gw); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			record(c.Recorder, gw, EventWarning, "GatewayOffline", "no heartbeat for three intervals")
		}
	}
	devs, err := c.Store.Devices().List(ctx)
	if err != nil {
		return err
	}
	load := map[string]int{}
	for _, d := range devs {
		load[d.Status.Gateway]++
	}
	var errs []error
	for _, d := range devs {
		cur := d.Status.Gateway
		want := place(d, healthy, load)
		// The session of a device on a silent gateway is not known to be
		// up: it is Unknown at once, not Online until it is moved.
		lost := cur != "" && !healthy[cur] && d.Status.Phase == v1alpha1.DeviceOnline
		if (want == cur || want == "") && !lost {
			continue
		}
		if lost {
			d.Status.Phase = v1alpha1.DeviceUnknown
		}
		if want != "" {
			d.Status.Gateway = want
		}
		if _, err := c.Store.Devices().UpdateStatus(ctx, d); err != nil {
			if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		if want == "" || want == cur {
			continue
		}
		load[cur]--
		load[want]++
		if cur != "" {
			record(c.Recorder, d, EventNormal, "Reassigned", "gateway %s is unhealthy or not the one asked for; moved to %s", cur, want)
		}
	}
	c.mu.Lock()
	c.healthy, c.load = healthy, load
	c.mu.Unlock()
	return errors.Join(errs...)
}

// isHealthy reports whether gw is online and heartbeating.
func (c *Placement) isHealthy(gw *v1alpha1.Gateway) bool {
	hb := gw.Status.LastHeartbeat
	// Heartbeat times are stored to the second.
	return gw.Status.Online && hb != nil && c.Now().Sub(hb.Time) <= 3*c.Interval+time.Second
}

// place returns the gateway d should be on: "" to leave it where it is.
// A device that is not placed yet and names no gateway is left to the
// leader's Devices controller, which places it with Pick without a round
// trip.
func place(d *v1alpha1.Device, healthy map[string]bool, load map[string]int) string {
	cur, asked := d.Status.Gateway, d.Spec.Gateway
	switch {
	case cur != "" && healthy[cur] && d.Spec.Emulation == nil && d.Status.Phase == v1alpha1.DeviceOnline:
		// A device of its own dialled that gateway and is online there:
		// it is where it is (moving it would only fight its session).
		return cur
	case asked != "" && healthy[asked]:
		return asked
	case cur == "" && asked == "":
		return ""
	case cur != "" && healthy[cur]:
		return cur
	}
	return leastLoaded(healthy, load)
}

// leastLoaded names the healthy gateway with the fewest devices, the first
// by name among equals; "" when none is healthy.
func leastLoaded(healthy map[string]bool, load map[string]int) string {
	names := make([]string, 0, len(healthy))
	for n := range healthy {
		names = append(names, n)
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	best := names[0]
	for _, n := range names[1:] {
		if load[n] < load[best] {
			best = n
		}
	}
	return best
}
