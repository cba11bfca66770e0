package controller

import (
	"fmt"
	"strings"
	"time"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// Per-device rollout states, as GET /applications/{name}/devices serves
// them and ApplicationStatus counts them.
const (
	RolloutPending      = "Pending"      // waiting for its batch
	RolloutWaiting      = "Waiting"      // device offline
	RolloutTransferring = "Transferring" // module on its way
	RolloutRunning      = "Running"
	RolloutExited       = "Exited" // ran to completion
	RolloutStopped      = "Stopped"
	RolloutFailed       = "Failed"
)

// Wanted is the revision app's devices are being moved to: the spec's,
// or after an aborted rollout the stable revision it returned to. ok is
// false when an aborted rollout had no stable revision to return to: the
// devices are meant to run nothing of the app.
func Wanted(app *v1alpha1.Application) (spec v1alpha1.ApplicationSpec, ok bool) {
	return wanted(app, &app.Status)
}

// wanted is Wanted of app with st for its status.
func wanted(app *v1alpha1.Application, st *v1alpha1.ApplicationStatus) (spec v1alpha1.ApplicationSpec, ok bool) {
	spec = app.Spec
	a := st.Aborted
	if a == nil || a.Generation != app.Generation {
		return spec, true
	}
	if r := FindRevision(st.History, a.RolledBackTo); r != nil {
		spec.Version, spec.Module = r.Version, r.Module
		return spec, true
	}
	return spec, false
}

// FindRevision is the newest revision of history named version, or nil.
func FindRevision(h []v1alpha1.Revision, version string) *v1alpha1.Revision {
	for i := len(h) - 1; i >= 0 && version != ""; i-- {
		if h[i].Version == version {
			return &h[i]
		}
	}
	return nil
}

// DeviceRollout is device d's part of the rollout of app towards want,
// from what d's status says: the row GET /applications/{name}/devices
// serves.
func DeviceRollout(app string, want v1alpha1.ApplicationSpec, d *v1alpha1.Device) v1alpha1.DeviceRollout {
	row := v1alpha1.DeviceRollout{Device: d.Name, Target: want.Version}
	rep := reported(d, app)
	if rep != nil {
		row.Version, row.Since = rep.Version, rep.Since
	}
	switch {
	case rep != nil && holds(rep, want):
		switch rep.State {
		case protocol.StateRunning.String():
			row.State = RolloutRunning
			switch {
			case unhealthy(rep, time.Duration(want.Rollout.HealthySeconds)*time.Second):
				row.State, row.Reason = RolloutFailed, rep.Unhealthy
			case d.Status.Phase != v1alpha1.DeviceOnline:
				// What it last reported is not what it does now: it counts
				// as running again once it is back.
				row.State = RolloutWaiting
				row.Reason = "device is " + strings.ToLower(string(orPending(d.Status.Phase))) + "; it last ran this version"
			}
		case protocol.StateExited.String():
			row.State = RolloutExited
		case protocol.StateStopped.String():
			row.State = RolloutStopped
		case protocol.StateFailed.String():
			row.State, row.Reason = RolloutFailed, rep.Reason
		default:
			row.State = RolloutTransferring
		}
	case rep != nil && rep.Target == want.Version && rep.TargetFailed != "":
		// The device refused the delivery and runs what it ran before.
		row.State, row.Reason = RolloutFailed, rep.TargetFailed
	case rep != nil && rep.Target == want.Version && d.Status.Phase == v1alpha1.DeviceOnline:
		row.State = RolloutTransferring
	case d.Status.Phase != v1alpha1.DeviceOnline:
		row.State, row.Reason = RolloutWaiting, "device is "+strings.ToLower(string(orPending(d.Status.Phase)))
	default:
		row.State = RolloutPending
	}
	if row.State != RolloutFailed && rep != nil && !holds(rep, want) {
		row.Since = nil // the state is not the reported app's
	}
	return row
}

// holds reports whether a device's app is want: its module, under its
// version name and limits. The same module under another name or limits
// is not: the device is sent the deploy again, which relabels it.
func holds(rep *v1alpha1.DeviceApp, want v1alpha1.ApplicationSpec) bool {
	limits := v1alpha1.Limits{}
	if rep.Limits != nil {
		limits = *rep.Limits
	}
	return rep.SHA256 == want.Module.SHA256 && rep.Version == want.Version && limits == want.Limits
}

// revision names what a deploy delivers, to tell deploys and their results
// apart: module, version name and limits.
func revision(sha, version string, l v1alpha1.Limits) string {
	return fmt.Sprintf("%s %s %d/%d/%d", sha, version, l.MemoryPages, l.CallTimeoutMillis, l.PeriodMillis)
}

// reported is app as d reports it, or nil.
func reported(d *v1alpha1.Device, app string) *v1alpha1.DeviceApp {
	for i := range d.Status.Apps {
		if d.Status.Apps[i].Name == app {
			return &d.Status.Apps[i]
		}
	}
	return nil
}

func orPending(p v1alpha1.DevicePhase) v1alpha1.DevicePhase {
	if p == "" {
		return v1alpha1.DevicePending
	}
	return p
}

// runs reports whether the device reports app running.
func runs(d *v1alpha1.Device, app string) bool {
	a := reported(d, app)
	return a != nil && a.State == protocol.StateRunning.String()
}
