package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Device is one embedded device, real or emulated, that runs WebAssembly
// apps. Its labels are what Application targets select on.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dev,categories=wasmbed
// +kubebuilder:printcolumn:name="Board",type=string,JSONPath=`.spec.board`
// +kubebuilder:printcolumn:name="Gateway",type=string,JSONPath=`.status.gateway`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Last Seen",type=date,JSONPath=`.status.lastSeen`
// +kubebuilder:printcolumn:name="Apps",type=integer,JSONPath=`.status.appCount`
type Device struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DeviceSpec   `json:"spec"`
	Status DeviceStatus `json:"status,omitempty"`
}

// DeviceSpec is the desired state of a Device.
type DeviceSpec struct {
	// Board is the board or MCU type, a name from the board catalog
	// (renode.Boards; a test keeps this enum equal to it).
	// +kubebuilder:validation:Enum=arduino-nano-33-ble;esp32-devkitc;frdm-k64f;litex-vexriscv;mimxrt1064-evk;mps2-an385;nrf52840-dk;nucleo-h753zi;sam-e70-xplained;sltb004a;stm32f072b-disco;stm32f4-disco;stm32f746g-disco
	Board string `json:"board"`
	// Gateway is the Gateway the device should connect to; empty lets the
	// daemon choose.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	Gateway string `json:"gateway,omitempty"`
	// Emulation, when set, makes the daemon run the device as an emulated
	// board.
	Emulation *Emulation `json:"emulation,omitempty"`
}

// Emulation describes how the daemon runs an emulated board.
type Emulation struct {
	// Backend runs the board: sim (a wasmbed-device process, the default),
	// docker, renode or qemu (the Wasmbed MCU firmware in QEMU).
	// +kubebuilder:validation:Enum=sim;docker;renode;qemu
	Backend string `json:"backend,omitempty"`
	// Enabled starts the board; false keeps it stopped.
	Enabled bool `json:"enabled"`
	// MemoryMiB and CPUMillis limit a container backend's board; 0 means no
	// limit.
	MemoryMiB int32 `json:"memoryMiB,omitempty"`
	CPUMillis int32 `json:"cpuMillis,omitempty"`
}

// DevicePhase summarizes where a device is in its life.
// +kubebuilder:validation:Enum=Pending;Provisioning;Enrolled;Online;Offline;Unknown;Failed
type DevicePhase string

// Device phases.
const (
	DevicePending      DevicePhase = "Pending"      // known, nothing done yet
	DeviceProvisioning DevicePhase = "Provisioning" // identity or board being prepared
	DeviceEnrolled     DevicePhase = "Enrolled"     // has a certificate, never connected
	DeviceOnline       DevicePhase = "Online"       // has a live gateway session
	DeviceOffline      DevicePhase = "Offline"      // session ended
	DeviceUnknown      DevicePhase = "Unknown"      // its gateway stopped heartbeating: nobody knows
	DeviceFailed       DevicePhase = "Failed"       // see the Ready condition
)

// DeviceStatus is the reported state of a Device.
type DeviceStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Phase              DevicePhase `json:"phase,omitempty"`
	// Gateway is the gateway holding (or last holding) the device's session.
	Gateway  string       `json:"gateway,omitempty"`
	LastSeen *metav1.Time `json:"lastSeen,omitempty"`
	// RTTMicros is the last heartbeat round trip, microseconds.
	RTTMicros    int64    `json:"rttMicros,omitempty"`
	Firmware     string   `json:"firmware,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
	// Apps is what the device reports it runs, sorted by name.
	Apps     []DeviceApp `json:"apps,omitempty"`
	AppCount int32       `json:"appCount,omitempty"`
	// CertificateExpiry is when the device's current certificate expires.
	CertificateExpiry *metav1.Time `json:"certificateExpiry,omitempty"`
	// Board is the emulated board's state when the device is emulated.
	Board *BoardStatus `json:"board,omitempty"`
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DeviceApp is one app as a device reports it.
type DeviceApp struct {
	Name     string `json:"name"`
	Version  string `json:"version,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	Previous string `json:"previous,omitempty"`
	// Limits are those the version runs under; absent for the device's
	// defaults.
	Limits *Limits `json:"limits,omitempty"`
	// Target is the version being delivered to the device when it is not
	// the one it runs.
	Target string `json:"target,omitempty"`
	// TargetFailed says why the device refused Target, or it could not be
	// sent; the device runs what Version and State say.
	TargetFailed string `json:"targetFailed,omitempty"`
	// Unhealthy says how the app broke its rollout's health gate on this
	// version (see HealthGate), and UnhealthyAt when.
	Unhealthy   string       `json:"unhealthy,omitempty"`
	UnhealthyAt *metav1.Time `json:"unhealthyAt,omitempty"`
	// Since is when the app entered State (or its version changed).
	Since *metav1.Time `json:"since,omitempty"`
}

// BoardStatus is an emulated board's state.
type BoardStatus struct {
	Backend string `json:"backend"`
	// State is Stopped, Starting, Running or Failed.
	State   string       `json:"state"`
	Reason  string       `json:"reason,omitempty"`
	Started *metav1.Time `json:"started,omitempty"`
	// ID identifies the board in its backend: a process id, a container id.
	ID string `json:"id,omitempty"`
}

// DeviceList is a list of Devices.
//
// +kubebuilder:object:root=true
type DeviceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Device `json:"items"`
}
