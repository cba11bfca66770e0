package renode

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestCatalog(t *testing.T) {
	boards := Boards()
	if len(boards) != 13 {
		t.Fatalf("Boards() has %d boards, want 13", len(boards))
	}
	doc, err := os.ReadFile("../docs/boards.md")
	if err != nil {
		t.Fatalf("read the board documentation: %v", err)
	}
	known := []string{CapEthernet, CapWiFi, CapBLE, CapThread, CapUSB, CapNone}
	seen := map[string]bool{}
	for i, b := range boards {
		t.Run(b.Name, func(t *testing.T) {
			if !validName(b.Name) {
				t.Errorf("name %q is not a DNS label", b.Name)
			}
			if seen[b.Name] {
				t.Errorf("name %q appears twice", b.Name)
			}
			seen[b.Name] = true
			if i > 0 && boards[i-1].Name >= b.Name {
				t.Errorf("Boards() not sorted: %q before %q", boards[i-1].Name, b.Name)
			}
			if b.Title == "" || b.Vendor == "" || b.MCU == "" || b.Core == "" {
				t.Errorf("title, vendor, MCU or core missing: %+v", b)
			}
			if b.FlashKiB <= 0 || b.RAMKiB <= 0 {
				t.Errorf("flash %d KiB, RAM %d KiB; want both > 0", b.FlashKiB, b.RAMKiB)
			}
			if b.RenodePlatform == "" && b.QEMUMachine == "" {
				t.Error("neither a Renode platform nor a QEMU machine")
			}
			if b.RenodePlatform != "" && (!strings.HasPrefix(b.RenodePlatform, "platforms/") || !strings.HasSuffix(b.RenodePlatform, ".repl")) {
				t.Errorf("Renode platform %q is not a platforms/**/*.repl path", b.RenodePlatform)
			}
			if (b.QEMUMachine == "") != (b.QEMUSystem() == "") {
				t.Errorf("QEMU machine %q but QEMUSystem() = %q", b.QEMUMachine, b.QEMUSystem())
			}
			if !strings.HasSuffix(b.Firmware, ".elf") || strings.HasPrefix(b.Firmware, "/") {
				t.Errorf("firmware %q is not a relative ELF path", b.Firmware)
			}
			if len(b.Capabilities) == 0 {
				t.Error("no capabilities")
			}
			for _, c := range b.Capabilities {
				if !slices.Contains(known, c) {
					t.Errorf("unknown capability %q", c)
				}
			}
			if b.HasCapability(CapNone) && len(b.Capabilities) != 1 {
				t.Errorf("capabilities %v: %q must stand alone", b.Capabilities, CapNone)
			}
			if !strings.Contains(string(doc), "`"+b.Name+"`") {
				t.Errorf("docs/boards.md does not list `%s`", b.Name)
			}
		})
	}
}

func TestLookupBoard(t *testing.T) {
	tests := []struct {
		name    string
		wantErr bool
		core    string
	}{
		{name: "stm32f746g-disco", core: "Cortex-M7"},
		{name: "mps2-an385", core: "Cortex-M3"},
		{name: "esp32-devkitc", core: "Xtensa LX6"},
		{name: "arduino-nano-33-ble", core: "Cortex-M4F"},
		{name: "stm32f4-disco", core: "Cortex-M4F"},
		{name: "nope", wantErr: true},
		{name: "", wantErr: true},
		{name: "STM32F746G-DISCO", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := LookupBoard(tt.name)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownBoard) {
					t.Fatalf("LookupBoard(%q) error = %v, want ErrUnknownBoard", tt.name, err)
				}
				if !strings.Contains(err.Error(), "frdm-k64f") {
					t.Errorf("LookupBoard(%q) error %q does not list the valid names", tt.name, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LookupBoard(%q) = %v", tt.name, err)
			}
			if b.Name != tt.name || b.Core != tt.core {
				t.Errorf("LookupBoard(%q) = %s (%s), want core %s", tt.name, b.Name, b.Core, tt.core)
			}
		})
	}
}

func TestBoardsAreCopies(t *testing.T) {
	Boards()[0].Capabilities[0] = "changed"
	b, _ := LookupBoard(Boards()[0].Name)
	b.Capabilities[0] = "changed too"
	if c := Boards()[0].Capabilities[0]; c == "changed" || c == "changed too" {
		t.Fatalf("catalog changed through a returned board: capability %q", c)
	}
}

func TestBoardFacts(t *testing.T) {
	tests := []struct {
		name, qemuSystem string
		caps             []string
	}{
		{"stm32f746g-disco", "", []string{CapEthernet}},
		{"frdm-k64f", "", []string{CapEthernet}},
		{"esp32-devkitc", "qemu-system-xtensa", []string{CapWiFi, CapBLE}},
		{"arduino-nano-33-ble", "", []string{CapBLE}},
		{"stm32f4-disco", "", []string{CapNone}},
		{"nrf52840-dk", "", []string{CapBLE, CapThread}},
		{"mps2-an385", "qemu-system-arm", []string{CapEthernet}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := LookupBoard(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.QEMUSystem(); got != tt.qemuSystem {
				t.Errorf("QEMUSystem() = %q, want %q", got, tt.qemuSystem)
			}
			if !slices.Equal(b.Capabilities, tt.caps) {
				t.Errorf("Capabilities = %v, want %v", b.Capabilities, tt.caps)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"dev-1", true},
		{"0abc9", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"-a", false},
		{"a-", false},
		{"A", false},
		{"a_b", false},
		{"a.b", false},
		{"a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := validName(tt.in); got != tt.want {
				t.Errorf("validName(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
