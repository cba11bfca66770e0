package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the client light: the console imports it, so it must not
// pull in the daemon's internals, storage, metrics or Kubernetes clients.
func TestDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the dependencies with")
	}
	out, err := exec.Command(goTool, "list", "-deps", "wasmbed.io/wasmbed/daemon/client").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"wasmbed.io/wasmbed/daemon/apiserver",
		"wasmbed.io/wasmbed/daemon/store",
		"wasmbed.io/wasmbed/daemon/events",
		"wasmbed.io/wasmbed/daemon/controller",
		"wasmbed.io/wasmbed/gateway",
		"wasmbed.io/wasmbed/renode",
		"github.com/prometheus/",
		"go.etcd.io/bbolt",
		"k8s.io/client-go",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/") {
				t.Errorf("daemon/client depends on %s", dep)
			}
		}
	}
}
