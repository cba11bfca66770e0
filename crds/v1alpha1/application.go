package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Application is a WebAssembly module, in one version, rolled out to the
// devices its target selects.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=app,categories=wasmbed
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Targeted",type=integer,JSONPath=`.status.targeted`
// +kubebuilder:printcolumn:name="Running",type=integer,JSONPath=`.status.running`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Stable",type=string,JSONPath=`.status.stableRevision`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type Application struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ApplicationSpec   `json:"spec"`
	Status ApplicationStatus `json:"status,omitempty"`
}

// ApplicationSpec is the desired state of an Application.
type ApplicationSpec struct {
	// Module is the uploaded module to run.
	Module ModuleRef `json:"module"`
	// Version names this revision of the app, e.g. "1.2.0".
	// +kubebuilder:validation:MinLength=1
	Version string  `json:"version"`
	Target  Target  `json:"target"`
	Rollout Rollout `json:"rollout,omitempty"`
	Limits  Limits  `json:"limits,omitempty"`
	// Paused holds the rollout where it is.
	Paused bool `json:"paused,omitempty"`
	// Stopped stops the app on every device.
	Stopped bool `json:"stopped,omitempty"`
}

// ModuleRef names an uploaded module by content.
type ModuleRef struct {
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Target selects devices by name, by labels, or both (the union).
type Target struct {
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	Devices  []string              `json:"devices,omitempty"`
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// Rollout is how an Application reaches its devices.
type Rollout struct {
	// BatchSize is how many devices are updated at once; BatchPercent, when
	// set, is the same as a percentage of the targeted devices. Both 0
	// means all at once.
	// +kubebuilder:validation:Minimum=0
	BatchSize int32 `json:"batchSize,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	BatchPercent int32 `json:"batchPercent,omitempty"`
	// MaxFailures is how many devices may fail before the rollout is
	// aborted and the devices return to the stable revision.
	// +kubebuilder:validation:Minimum=0
	MaxFailures int32 `json:"maxFailures,omitempty"`
	// HealthySeconds is how long an app must run without a trap to count as
	// healthy.
	// +kubebuilder:validation:Minimum=0
	HealthySeconds int32 `json:"healthySeconds,omitempty"`
	// Health, when set, also fails a device whose app reports the metric
	// out of bounds within its first HealthySeconds on the revision.
	// +optional
	Health *HealthGate `json:"health,omitempty"`
}

// HealthGate bounds one telemetry value an app reports: a device whose app
// reports Metric below Min or above Max while it proves itself healthy
// fails the revision, as a trap would.
type HealthGate struct {
	// Metric is the name the app reports the value under.
	// +kubebuilder:validation:MinLength=1
	Metric string `json:"metric"`
	// +optional
	Max *resource.Quantity `json:"max,omitempty"`
	// +optional
	Min *resource.Quantity `json:"min,omitempty"`
}

// Limits bound the app on each device.
type Limits struct {
	MemoryPages       int32 `json:"memoryPages,omitempty"`
	CallTimeoutMillis int32 `json:"callTimeoutMillis,omitempty"`
	PeriodMillis      int32 `json:"periodMillis,omitempty"`
}

// ApplicationPhase summarizes a rollout.
// +kubebuilder:validation:Enum=Pending;RollingOut;Running;Paused;Stopped;Failed;RolledBack
type ApplicationPhase string

// Application phases.
const (
	AppPending    ApplicationPhase = "Pending"
	AppRollingOut ApplicationPhase = "RollingOut"
	AppRunning    ApplicationPhase = "Running"
	AppPaused     ApplicationPhase = "Paused"
	AppStopped    ApplicationPhase = "Stopped"
	AppFailed     ApplicationPhase = "Failed"
	AppRolledBack ApplicationPhase = "RolledBack"
)

// ApplicationStatus is the reported state of an Application. Its size
// does not grow with the fleet: each device's part of the rollout lives on
// the Device (status.apps) and is served per application by the API
// (GET /api/v1/applications/{name}/devices).
type ApplicationStatus struct {
	ObservedGeneration int64            `json:"observedGeneration,omitempty"`
	Phase              ApplicationPhase `json:"phase,omitempty"`
	// The targeted devices, and how many are in each rollout state.
	Targeted     int32 `json:"targeted"`
	Pending      int32 `json:"pending,omitempty"` // waiting for their batch
	Waiting      int32 `json:"waiting,omitempty"` // offline
	Transferring int32 `json:"transferring"`
	Running      int32 `json:"running"` // running or ran to completion
	Stopped      int32 `json:"stopped,omitempty"`
	Failed       int32 `json:"failed"`
	// CurrentRevision is the version the devices are being moved to: the
	// spec's, or the stable one after an aborted rollout.
	CurrentRevision string `json:"currentRevision,omitempty"`
	// StableRevision is the last version that passed the health gate on
	// every targeted device; an aborted rollout returns to it.
	StableRevision string `json:"stableRevision,omitempty"`
	// History lists the revisions rolled out, newest last, at most ten.
	History []Revision `json:"history,omitempty"`
	// FailedDevices names some of the failed devices (at most 10, by name)
	// and why; status.failed counts them all.
	FailedDevices []DeviceFailure `json:"failedDevices,omitempty"`
	// Aborted is set when the rollout of the spec's generation failed on
	// more devices than it allows. The spec is left as its owner wrote
	// it: nothing more of the aborted revision is sent until the spec
	// changes.
	Aborted *Abort `json:"aborted,omitempty"`
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DeviceFailure is one failed device of a rollout.
type DeviceFailure struct {
	Device  string `json:"device"`
	Version string `json:"version,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// DeviceRollout is one device's part of a rollout, as the API serves it
// from the device's status (it is not stored on the Application).
type DeviceRollout struct {
	Device string `json:"device"`
	// Version is the version the device runs; Target the one it is meant
	// to run.
	Version string       `json:"version,omitempty"`
	Target  string       `json:"target,omitempty"`
	State   string       `json:"state"`
	Reason  string       `json:"reason,omitempty"`
	Since   *metav1.Time `json:"since,omitempty"`
}

// DeviceRolloutList is a page of an application's devices.
type DeviceRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DeviceRollout `json:"items"`
}

// Revision is one version an Application has rolled out.
type Revision struct {
	Version string      `json:"version"`
	Module  ModuleRef   `json:"module"`
	Time    metav1.Time `json:"time"`
	// Devices is how many targeted devices run it.
	Devices int32 `json:"devices"`
}

// Abort records a rollout stopped by its failures.
type Abort struct {
	// Generation is the spec generation whose rollout was aborted.
	Generation int64 `json:"generation"`
	// Version is the revision abandoned.
	Version string `json:"version"`
	// RolledBackTo is the stable revision the devices were returned to;
	// empty when there was none, and the app was stopped.
	RolledBackTo string      `json:"rolledBackTo,omitempty"`
	Reason       string      `json:"reason"`
	Time         metav1.Time `json:"time"`
}

// ApplicationList is a list of Applications.
//
// +kubebuilder:object:root=true
type ApplicationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Application `json:"items"`
}
