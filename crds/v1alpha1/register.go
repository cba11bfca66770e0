package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// AddToScheme registers the types with a runtime.Scheme, for clients of a
// Kubernetes API server.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Device{}, &DeviceList{},
		&Application{}, &ApplicationList{},
		&Gateway{}, &GatewayList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
