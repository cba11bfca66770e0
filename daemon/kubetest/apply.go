//go:build linux

package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Objects reads every object of the YAML files (several documents each);
// a file that holds none is an error.
func Objects(files ...string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		n := len(out)
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var obj unstructured.Unstructured
			err := dec.Decode(&obj.Object)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if len(obj.Object) == 0 {
				continue
			}
			out = append(out, &obj)
		}
		if len(out) == n {
			return nil, fmt.Errorf("%s: no object in it", f)
		}
	}
	return out, nil
}

// Apply creates the objects of the YAML files in order, as kubectl create
// -f would, and waits for any CRD among them to be established.
func Apply(t testing.TB, cfg *rest.Config, files ...string) {
	t.Helper()
	objs, err := Objects(files...)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	ctx := context.Background()
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			// A kind defined by a CRD created just before.
			mapper.Reset()
			if m, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				t.Fatalf("apply %s %s: %v", gvk.Kind, obj.GetName(), err)
			}
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("apply %s %s: %v", gvk.Kind, obj.GetName(), err)
		}
		if gvk.Kind == "CustomResourceDefinition" {
			if err := waitServed(ctx, dyn, ri, obj); err != nil {
				t.Fatalf("CRD %s: %v", obj.GetName(), err)
			}
			mapper.Reset()
		}
	}
}

// InstallCRDs applies the CRDs in crdDir (the repository's crds/).
func InstallCRDs(t testing.TB, cfg *rest.Config, crdDir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(crdDir, "wasmbed.io_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRD manifests in %s (%v)", crdDir, err)
	}
	Apply(t, cfg, files...)
}

// waitServed waits until the CRD is established and its resources can be
// listed (the server's handlers for them run a little after).
func waitServed(ctx context.Context, dyn dynamic.Interface, crds dynamic.ResourceInterface, crd *unstructured.Unstructured) error {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	if len(versions) == 0 {
		return errors.New("the CRD has no versions")
	}
	version, _ := versions[0].(map[string]any)["name"].(string)
	deadline := time.Now().Add(30 * time.Second)
	var last error = errNotEstablished
	for time.Now().Before(deadline) {
		got, err := crds.Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if established(got) {
			if _, last = dyn.Resource(GVR(group, version, plural)).List(ctx, metav1.ListOptions{Limit: 1}); last == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// errNotEstablished is returned while a CRD is not yet established.
var errNotEstablished = errors.New("not established")

// GVR is a shorthand for tests that read resources with a dynamic client.
func GVR(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}
