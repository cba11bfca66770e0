// Package v1alpha1 holds the Wasmbed resource types of API group
// wasmbed.io, version v1alpha1: Device, Application and Gateway. Each is
// plain data in Kubernetes style (metadata, a desired spec, a reported
// status with conditions and observedGeneration) with generated deep-copy
// methods; the same types serve the daemon's embedded store and the
// Kubernetes custom resources.
//
// +kubebuilder:object:generate=true
// +groupName=wasmbed.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version of these resources.
const (
	Group   = "wasmbed.io"
	Version = "v1alpha1"
)

// GroupVersion is the API group and version of these types.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// Kinds.
const (
	KindDevice      = "Device"
	KindApplication = "Application"
	KindGateway     = "Gateway"
)
