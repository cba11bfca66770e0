package renode

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func goldenContainerSpec(b Board) ContainerSpec {
	device := b.Name + "-1"
	return ContainerSpec{
		Device:       device,
		Board:        b,
		Daemon:       "gw-1",
		FirmwareFile: "/var/lib/wasmbed/firmware/" + b.Firmware,
		ScriptDir:    "/var/lib/wasmbed/renode/" + device,
		Labels:       map[string]string{"site": "lab", "wasmbed.io/device": "spoofed"},
	}
}

func TestContainerGolden(t *testing.T) {
	for _, b := range renodeCatalog(t) {
		t.Run(b.Name, func(t *testing.T) {
			plan, err := RenodeContainer(goldenContainerSpec(b))
			if err != nil {
				t.Fatalf("RenodeContainer(%s) error: %v", b.Name, err)
			}
			got, err := json.MarshalIndent(plan, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			renodeCheckGolden(t, filepath.Join("testdata", "renode", b.Name+".json"), append(got, '\n'))
		})
	}
}

func TestContainerPlan(t *testing.T) {
	for _, b := range renodeCatalog(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := goldenContainerSpec(b)
			p, err := RenodeContainer(s)
			if err != nil {
				t.Fatal(err)
			}
			if p.Image != DefaultRenodeImage {
				t.Errorf("image = %q, want %q", p.Image, DefaultRenodeImage)
			}
			wantCmd := []string{"renode", "--disable-xwt", "--console", "-e", "include @/wasmbed/" + s.Device + ".resc"}
			if !slices.Equal(p.Command, wantCmd) {
				t.Errorf("command = %q, want %q", p.Command, wantCmd)
			}
			wantLabels := map[string]string{LabelBackend: "renode", LabelDaemon: "gw-1", LabelDevice: s.Device, LabelBoard: b.Name, "site": "lab"}
			if len(p.Labels) != len(wantLabels) {
				t.Errorf("labels = %v, want %v", p.Labels, wantLabels)
			}
			for k, v := range wantLabels {
				if p.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, p.Labels[k], v)
				}
			}
			for _, m := range p.Mounts {
				if !m.ReadOnly {
					t.Errorf("mount %+v is writable", m)
				}
			}
			if len(p.Mounts) != 2 || p.Mounts[0].Target != RenodeFirmwarePath || p.Mounts[0].Source != s.FirmwareFile || p.Mounts[1].Target != RenodeScriptDir || p.Mounts[1].Source != s.ScriptDir {
				t.Errorf("mounts = %+v, want the firmware at %s and the script directory at %s", p.Mounts, RenodeFirmwarePath, RenodeScriptDir)
			}
			if want := []PortBinding{{ContainerPort: RenodeUARTPort, HostIP: "127.0.0.1", Protocol: "tcp"}}; !slices.Equal(p.Ports, want) {
				t.Errorf("ports = %+v, want %+v (loopback only)", p.Ports, want)
			}
			eth := b.HasCapability(CapEthernet)
			if got := slices.Equal(p.CapAdd, []string{"NET_ADMIN"}) && slices.Equal(p.Devices, []string{"/dev/net/tun"}); got != eth {
				t.Errorf("capAdd %v, devices %v; want NET_ADMIN and /dev/net/tun exactly when the board has ethernet (%v)", p.CapAdd, p.Devices, eth)
			}
			if !eth && (len(p.CapAdd) != 0 || len(p.Devices) != 0) {
				t.Errorf("board without ethernet gets capAdd %v, devices %v", p.CapAdd, p.Devices)
			}
			if p.MemoryBytes != DefaultRenodeMemory || p.NanoCPUs != 1e9 {
				t.Errorf("limits = %d bytes, %d nano CPUs; want the defaults", p.MemoryBytes, p.NanoCPUs)
			}
		})
	}
}

func TestContainerOptions(t *testing.T) {
	b, err := LookupBoard("nrf52840-dk")
	if err != nil {
		t.Fatal(err)
	}
	s := goldenContainerSpec(b)
	s.Image = "registry.example/renode:custom"
	s.MemoryBytes = 512 << 20
	s.CPUs = 0.5
	p, err := RenodeContainer(s)
	if err != nil {
		t.Fatal(err)
	}
	if p.Image != s.Image || p.MemoryBytes != 512<<20 || p.NanoCPUs != 5e8 {
		t.Errorf("plan = image %q, %d bytes, %d nano CPUs; want %q, %d, %d", p.Image, p.MemoryBytes, p.NanoCPUs, s.Image, 512<<20, int64(5e8))
	}
}

func TestContainerErrors(t *testing.T) {
	b, err := LookupBoard("stm32f4-disco")
	if err != nil {
		t.Fatal(err)
	}
	esp, err := LookupBoard("esp32-devkitc")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		edit    func(*ContainerSpec)
		wantErr string
	}{
		{"device", func(s *ContainerSpec) { s.Device = "Dev 1" }, "invalid device name"},
		{"daemon", func(s *ContainerSpec) { s.Daemon = "" }, "invalid daemon name"},
		{"no platform", func(s *ContainerSpec) { s.Board = esp }, "no Renode platform"},
		{"relative firmware", func(s *ContainerSpec) { s.FirmwareFile = "fw.elf" }, "firmware file"},
		{"relative script dir", func(s *ContainerSpec) { s.ScriptDir = "renode" }, "script directory"},
		{"negative memory", func(s *ContainerSpec) { s.MemoryBytes = -1 }, "negative"},
		{"image with space", func(s *ContainerSpec) { s.Image = "renode latest" }, "invalid image name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := goldenContainerSpec(b)
			tt.edit(&s)
			if _, err := RenodeContainer(s); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("RenodeContainer(%+v) error = %v, want one containing %q", s, err, tt.wantErr)
			}
		})
	}
}
