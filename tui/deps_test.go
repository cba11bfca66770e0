package tui

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the console a client of the daemon's API: it may import
// the API types, the typed client and the resource types, never the
// daemon's internals, the gateway, the boards, the Kubernetes or Docker
// clients, the sandbox, the store's database or the SSH server.
func TestDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the dependencies with")
	}
	out, err := exec.Command(goTool, "list", "-deps", "wasmbed.io/wasmbed/tui/...", "wasmbed.io/wasmbed/cmd/wasmbed-tui").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"wasmbed.io/wasmbed/daemon/store",
		"wasmbed.io/wasmbed/daemon/apiserver",
		"wasmbed.io/wasmbed/daemon/controller",
		"wasmbed.io/wasmbed/daemon/events",
		"wasmbed.io/wasmbed/gateway",
		"wasmbed.io/wasmbed/renode",
		"wasmbed.io/wasmbed/firmware",
		"k8s.io/client-go",
		"github.com/docker/",
		"github.com/moby/",
		"github.com/tetratelabs/wazero",
		"go.etcd.io/bbolt",
		"github.com/prometheus/",
		// Served over SSH by daemon/sshconsole; the console itself
		// knows nothing of SSH.
		"github.com/charmbracelet/wish",
		"github.com/charmbracelet/ssh",
	}
	deps := strings.Fields(string(out))
	for _, dep := range deps {
		if dep == "wasmbed.io/wasmbed/daemon" {
			t.Errorf("the console depends on the daemon itself")
		}
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/") {
				t.Errorf("the console depends on %s", dep)
			}
		}
	}
	for _, want := range []string{"wasmbed.io/wasmbed/daemon/client", "github.com/charmbracelet/bubbletea"} {
		found := false
		for _, dep := range deps {
			found = found || dep == want
		}
		if !found {
			t.Errorf("go list -deps does not list %s: the list is not what this test expects", want)
		}
	}
}
