package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Gateway is one daemon's device gateway: where devices connect.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=gw,categories=wasmbed
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.endpoint`
// +kubebuilder:printcolumn:name="Online",type=boolean,JSONPath=`.status.online`
// +kubebuilder:printcolumn:name="Devices",type=integer,JSONPath=`.status.connectedDevices`
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.lastHeartbeat`
type Gateway struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   GatewaySpec   `json:"spec"`
	Status GatewayStatus `json:"status,omitempty"`
}

// GatewaySpec is the desired state of a Gateway.
type GatewaySpec struct {
	// Endpoint is the host:port devices dial.
	// +kubebuilder:validation:MinLength=3
	Endpoint string `json:"endpoint"`
	// APIEndpoint is the host:port of the HTTP API of the daemon that runs
	// the gateway: the daemons of a cluster reach the devices on each
	// other's gateways through it.
	APIEndpoint string `json:"apiEndpoint,omitempty"`
	// Capacity is the most devices the gateway takes; 0 means no limit.
	Capacity int32 `json:"capacity,omitempty"`
}

// GatewayStatus is the reported state of a Gateway.
type GatewayStatus struct {
	ObservedGeneration int64        `json:"observedGeneration,omitempty"`
	Online             bool         `json:"online"`
	ConnectedDevices   int32        `json:"connectedDevices"`
	LastHeartbeat      *metav1.Time `json:"lastHeartbeat,omitempty"`
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// GatewayList is a list of Gateways.
//
// +kubebuilder:object:root=true
type GatewayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Gateway `json:"items"`
}
