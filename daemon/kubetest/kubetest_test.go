//go:build linux

package kubetest

import (
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// TestManifests starts the real API server and creates every manifest of
// deploy/kubernetes and crds/ in it: the server validates each object
// (schemas, RBAC references, workload specs) as `kubectl apply` would.
func TestManifests(t *testing.T) {
	c := Start(t)
	root := filepath.Join("..", "..")
	k := filepath.Join(root, "deploy", "kubernetes")
	Apply(t, c.Admin(), filepath.Join(k, "namespace.yaml"))
	InstallCRDs(t, c.Admin(), filepath.Join(root, "crds"))
	Apply(t, c.Admin(), filepath.Join(k, "rbac.yaml"), filepath.Join(k, "daemonset.yaml"), filepath.Join(k, "services.yaml"))

	dyn, err := dynamic.NewForConfig(c.Admin())
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dyn.Resource(GVR("apps", "v1", "daemonsets")).Namespace("wasmbed").Get(t.Context(), "wasmbedd", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the DaemonSet was not created: %v", err)
	}
	if sa, _, _ := unstructured.NestedString(ds.Object, "spec", "template", "spec", "serviceAccountName"); sa != "wasmbedd" {
		t.Errorf("DaemonSet runs as %q, want the wasmbedd ServiceAccount", sa)
	}
}
