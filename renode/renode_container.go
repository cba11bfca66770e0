package renode

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"strings"
)

// Renode container defaults.
const (
	// DefaultRenodeImage is the container image of Renode the renode
	// backend runs when none is configured: Antmicro's official image.
	// The backend never pulls it; it must already be on the host.
	DefaultRenodeImage = "antmicro/renode:1.15.3"
	// DefaultRenodeMemory is a board container's memory limit in bytes
	// when none is configured. Renode runs on .NET and needs a few
	// hundred MiB for one small machine.
	DefaultRenodeMemory = 1 << 30
	// DefaultRenodeCPUs is a board container's CPU limit, in CPUs, when
	// none is configured.
	DefaultRenodeCPUs = 1.0
	// RenodeUARTPort is the container port of the console UART's server
	// socket terminal; the plan publishes it on the host loopback.
	RenodeUARTPort = 3456
	// RenodeFirmwarePath is where a board container sees the firmware ELF.
	RenodeFirmwarePath = "/firmware/wasmbed.elf"
	// RenodeScriptDir is where a board container sees the directory that
	// holds its script, <device>.resc.
	RenodeScriptDir = "/wasmbed"
)

// Labels of the containers the container backends (docker, renode) create,
// and read back to recognize their boards.
const (
	LabelBackend = "wasmbed.io/backend" // "docker" or "renode": backends share the daemon label
	LabelDaemon  = "wasmbed.io/daemon"  // the daemon instance that owns the container
	LabelDevice  = "wasmbed.io/device"  // the device whose board runs in it
	LabelBoard   = "wasmbed.io/board"   // the board type
)

// ContainerSpec is the input of RenodeContainer.
type ContainerSpec struct {
	// Device is the device whose board the container runs: a DNS label.
	Device string
	// Board is the catalog entry of the board; it needs a RenodePlatform.
	Board Board
	// Daemon names the daemon instance that owns the container (its
	// LabelDaemon): a DNS label, stable across restarts of that daemon.
	Daemon string
	// Image is the Renode image; "" means DefaultRenodeImage.
	Image string
	// FirmwareFile is the host path of the board's firmware ELF; it is
	// mounted read-only at RenodeFirmwarePath.
	FirmwareFile string
	// ScriptDir is the host directory holding <Device>.resc; it is
	// mounted read-only at RenodeScriptDir.
	ScriptDir string
	// MemoryBytes and CPUs limit the container; zero means
	// DefaultRenodeMemory and DefaultRenodeCPUs.
	MemoryBytes int64
	CPUs        float64
	// Labels are the Device's labels, added to the container's labels;
	// keys under wasmbed.io/ are ignored, as the backend owns them.
	Labels map[string]string
}

// ContainerPlan is a container to create, as plain data: everything a
// container runtime needs, and nothing specific to one runtime.
type ContainerPlan struct {
	// Name is the container's name: wasmbed-renode-<daemon>-<device>.
	Name  string `json:"name"`
	Image string `json:"image"`
	// Command is the command run in the container, argv style (no shell).
	Command []string `json:"command"`
	// Env is the container's environment, KEY=value, sorted.
	Env    []string          `json:"env"`
	Labels map[string]string `json:"labels"`
	Mounts []Mount           `json:"mounts"`
	// Ports are the container ports published on the host.
	Ports []PortBinding `json:"ports"`
	// CapAdd are capabilities added to the runtime's default set, and
	// Devices host devices made available in the container at the same
	// path; both only for boards with Ethernet (the tap interface).
	CapAdd  []string `json:"capAdd,omitempty"`
	Devices []string `json:"devices,omitempty"`
	// MemoryBytes caps the container's memory, bytes; NanoCPUs its CPU
	// time, in billionths of a CPU.
	MemoryBytes int64 `json:"memoryBytes"`
	NanoCPUs    int64 `json:"nanoCPUs"`
	// Interactive keeps the container's standard input open and TTY gives
	// it a terminal: Renode's console Monitor ends when its input closes.
	Interactive bool `json:"interactive"`
	TTY         bool `json:"tty"`
}

// Mount binds a host path into the container.
type Mount struct {
	Source   string `json:"source"` // host path, absolute
	Target   string `json:"target"` // container path, absolute
	ReadOnly bool   `json:"readOnly"`
}

// PortBinding publishes a container TCP port on a host address. HostPort 0
// lets the runtime choose a free port, which it reports once the container
// has started.
type PortBinding struct {
	ContainerPort int    `json:"containerPort"`
	HostIP        string `json:"hostIP"`
	HostPort      int    `json:"hostPort"`
	Protocol      string `json:"protocol"`
}

// RenodeContainer plans the container that runs s.Board in Renode: the
// image with
//
//	renode --disable-xwt --console -e "include @/wasmbed/<device>.resc"
//
// the firmware ELF and the script directory mounted read-only, the console
// UART's socket terminal (RenodeUARTPort) published on 127.0.0.1 at a port
// the runtime chooses, the labels LabelBackend, LabelDaemon, LabelDevice
// and LabelBoard, memory and CPU limits, and for a board with CapEthernet
// CAP_NET_ADMIN and /dev/net/tun for the tap interface. It is a pure
// function of s.
func RenodeContainer(s ContainerSpec) (ContainerPlan, error) {
	if !validName(s.Device) {
		return ContainerPlan{}, fmt.Errorf("renode container: invalid device name %q", s.Device)
	}
	if !validName(s.Daemon) {
		return ContainerPlan{}, fmt.Errorf("renode container: invalid daemon name %q", s.Daemon)
	}
	if s.Board.RenodePlatform == "" {
		return ContainerPlan{}, fmt.Errorf("renode container: board %s has no Renode platform", s.Board.Name)
	}
	for _, p := range []struct{ what, path string }{{"firmware file", s.FirmwareFile}, {"script directory", s.ScriptDir}} {
		if !filepath.IsAbs(p.path) {
			return ContainerPlan{}, fmt.Errorf("renode container: %s %q is not an absolute path", p.what, p.path)
		}
	}
	if s.MemoryBytes < 0 || s.CPUs < 0 {
		return ContainerPlan{}, errors.New("renode container: negative memory or CPU limit")
	}
	image := s.Image
	if image == "" {
		image = DefaultRenodeImage
	}
	if strings.ContainsAny(image, " \t\r\n") {
		return ContainerPlan{}, fmt.Errorf("renode container: invalid image name %q", image)
	}
	mem, cpus := s.MemoryBytes, s.CPUs
	if mem == 0 {
		mem = DefaultRenodeMemory
	}
	if cpus == 0 {
		cpus = DefaultRenodeCPUs
	}
	labels := map[string]string{}
	for k, v := range s.Labels {
		if !strings.HasPrefix(k, "wasmbed.io/") {
			labels[k] = v
		}
	}
	maps.Copy(labels, map[string]string{
		LabelBackend: "renode",
		LabelDaemon:  s.Daemon,
		LabelDevice:  s.Device,
		LabelBoard:   s.Board.Name,
	})
	p := ContainerPlan{
		Name:  "wasmbed-renode-" + s.Daemon + "-" + s.Device,
		Image: image,
		Command: []string{
			"renode", "--disable-xwt", "--console",
			"-e", "include @" + path.Join(RenodeScriptDir, s.Device+".resc"),
		},
		Env:    []string{"WASMBED_BOARD=" + s.Board.Name, "WASMBED_DEVICE=" + s.Device},
		Labels: labels,
		Mounts: []Mount{
			{Source: s.FirmwareFile, Target: RenodeFirmwarePath, ReadOnly: true},
			{Source: s.ScriptDir, Target: RenodeScriptDir, ReadOnly: true},
		},
		Ports:       []PortBinding{{ContainerPort: RenodeUARTPort, HostIP: "127.0.0.1", Protocol: "tcp"}},
		MemoryBytes: mem,
		NanoCPUs:    int64(cpus * 1e9),
		Interactive: true,
		TTY:         true,
	}
	if s.Board.HasCapability(CapEthernet) {
		p.CapAdd = []string{"NET_ADMIN"}
		p.Devices = []string{"/dev/net/tun"}
	}
	return p, nil
}
