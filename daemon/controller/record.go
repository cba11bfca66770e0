package controller

import (
	"k8s.io/apimachinery/pkg/runtime"
)

// Event types, as Kubernetes Events have them.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// A Recorder records what users should see happen to a resource: with the
// Kubernetes store, Events beside it; with the embedded store, the same
// Events as log events on the daemon's event stream.
type Recorder interface {
	Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any)
}

// record records an event when r is set.
func record(r Recorder, obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	if r != nil {
		r.Eventf(obj, eventtype, reason, messageFmt, args...)
	}
}
