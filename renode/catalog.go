// Package renode owns emulated boards: the board catalog, and the backends
// that run a board for a Device (sim today; container, Renode and QEMU
// backends join behind the same interface).
//
// The catalog (Boards, LookupBoard) is the closed set of board types a Device
// may name in spec.board. A Backend runs the board of one device from a Spec
// and keeps its console (Console): the byte stream of the board's UART, with
// scrollback, live subscribers and typed input. Sim, the default backend, runs
// every board as a Linux-class wasmbed-device process under a
// pseudo-terminal. docs/boards.md describes the catalog and which backend can
// run which board.
package renode

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Board capabilities: the connectivity a board has besides its console. A
// board without any reports only CapNone.
const (
	CapEthernet = "ethernet"
	CapWiFi     = "wifi"
	CapBLE      = "ble"
	CapThread   = "thread"
	CapUSB      = "usb"
	CapNone     = "none"
)

// Board is one board type of the catalog. Boards and LookupBoard return
// copies: changing one does not change the catalog.
type Board struct {
	// Name is the board type a Device names in spec.board: a DNS label.
	Name string
	// Title is the board's marketing name; Vendor makes it.
	Title, Vendor string
	// MCU is the microcontroller or SoC; Core its processor core.
	MCU, Core string
	// FlashKiB and RAMKiB are the board's flash and RAM sizes in KiB
	// (1024 bytes), counting external memory where the board carries it.
	FlashKiB, RAMKiB int
	// RenodePlatform is the path of the board's platform description
	// (.repl) inside a Renode installation, as given to
	// "machine LoadPlatformDescription @<path>"; "" when Renode has no
	// model of the board.
	RenodePlatform string
	// Firmware is the path of the board's firmware ELF relative to the
	// firmware/ directory, as the Renode and QEMU backends load it.
	Firmware string
	// Capabilities are the board's connectivity, from CapEthernet, CapWiFi,
	// CapBLE, CapThread, CapUSB, or just CapNone.
	Capabilities []string
	// QEMUMachine is the machine name QEMU's -M option takes for the board
	// in the emulator QEMUSystem names; "" when QEMU has no model of it.
	QEMUMachine string
}

// QEMUSystem returns the QEMU system emulator that has the board's
// QEMUMachine: qemu-system-arm for Arm cores, qemu-system-riscv32 for
// 32-bit RISC-V cores, and qemu-system-xtensa for the ESP32, whose machine
// exists only in Espressif's QEMU. It returns "" when QEMUMachine is "".
func (b Board) QEMUSystem() string {
	switch {
	case b.QEMUMachine == "":
		return ""
	case strings.HasPrefix(b.Core, "Xtensa"):
		return "qemu-system-xtensa"
	case strings.Contains(b.Core, "RV32"):
		return "qemu-system-riscv32"
	}
	return "qemu-system-arm"
}

// HasCapability reports whether the board has the capability c.
func (b Board) HasCapability(c string) bool { return slices.Contains(b.Capabilities, c) }

func (b Board) clone() Board {
	b.Capabilities = slices.Clone(b.Capabilities)
	return b
}

// catalog is sorted by Name; docs/boards.md lists the same boards.
var catalog = []Board{
	{
		Name: "arduino-nano-33-ble", Title: "Arduino Nano 33 BLE", Vendor: "Arduino",
		MCU: "nRF52840", Core: "Cortex-M4F", FlashKiB: 1024, RAMKiB: 256,
		RenodePlatform: "platforms/boards/arduino_nano_33_ble.repl",
		Firmware:       "zephyr/arduino_nano_33_ble/wasmbed.elf",
		Capabilities:   []string{CapBLE},
	},
	{
		Name: "esp32-devkitc", Title: "Espressif ESP32-DevKitC", Vendor: "Espressif",
		MCU: "ESP32 (ESP32-WROOM-32)", Core: "Xtensa LX6", FlashKiB: 4096, RAMKiB: 520,
		Firmware:     "zephyr/esp32_devkitc_wroom/wasmbed.elf",
		Capabilities: []string{CapWiFi, CapBLE},
		QEMUMachine:  "esp32",
	},
	{
		Name: "frdm-k64f", Title: "NXP FRDM-K64F", Vendor: "NXP",
		MCU: "MK64FN1M0VLL12", Core: "Cortex-M4F", FlashKiB: 1024, RAMKiB: 256,
		RenodePlatform: "platforms/cpus/nxp-k6xf.repl",
		Firmware:       "zephyr/frdm_k64f/wasmbed.elf",
		Capabilities:   []string{CapEthernet},
	},
	{
		Name: "litex-vexriscv", Title: "LiteX VexRiscv on Digilent Arty A7", Vendor: "Digilent",
		MCU: "LiteX SoC (Artix-7 35T)", Core: "VexRiscv (RV32IM)", FlashKiB: 16384, RAMKiB: 262144,
		RenodePlatform: "platforms/boards/arty_litex_vexriscv.repl",
		Firmware:       "zephyr/litex_vexriscv/wasmbed.elf",
		Capabilities:   []string{CapEthernet},
	},
	{
		Name: "mimxrt1064-evk", Title: "NXP MIMXRT1064-EVK", Vendor: "NXP",
		MCU: "MIMXRT1064DVL6A", Core: "Cortex-M7", FlashKiB: 4096, RAMKiB: 1024,
		RenodePlatform: "platforms/boards/mimxrt1064_evk.repl",
		Firmware:       "zephyr/mimxrt1064_evk/wasmbed.elf",
		Capabilities:   []string{CapEthernet},
	},
	{
		Name: "mps2-an385", Title: "Arm MPS2+ AN385", Vendor: "Arm",
		MCU: "CMSDK Cortex-M3 (AN385 FPGA image)", Core: "Cortex-M3", FlashKiB: 4096, RAMKiB: 4096,
		Firmware:     "zephyr/mps2_an385/wasmbed.elf",
		Capabilities: []string{CapEthernet}, // LAN9118
		QEMUMachine:  "mps2-an385",
	},
	{
		Name: "nrf52840-dk", Title: "Nordic nRF52840 DK", Vendor: "Nordic Semiconductor",
		MCU: "nRF52840", Core: "Cortex-M4F", FlashKiB: 1024, RAMKiB: 256,
		RenodePlatform: "platforms/boards/nrf52840dk_nrf52840.repl",
		Firmware:       "zephyr/nrf52840dk_nrf52840/wasmbed.elf",
		Capabilities:   []string{CapBLE, CapThread},
	},
	{
		Name: "nucleo-h753zi", Title: "ST NUCLEO-H753ZI", Vendor: "STMicroelectronics",
		MCU: "STM32H753ZI", Core: "Cortex-M7", FlashKiB: 2048, RAMKiB: 1024,
		RenodePlatform: "platforms/boards/nucleo_h753zi.repl",
		Firmware:       "zephyr/nucleo_h753zi/wasmbed.elf",
		Capabilities:   []string{CapEthernet},
	},
	{
		Name: "sam-e70-xplained", Title: "Microchip SAM E70 Xplained", Vendor: "Microchip",
		MCU: "ATSAME70Q21", Core: "Cortex-M7", FlashKiB: 2048, RAMKiB: 384,
		RenodePlatform: "platforms/cpus/sam_e70.repl",
		Firmware:       "zephyr/sam_e70_xplained/wasmbed.elf",
		Capabilities:   []string{CapEthernet},
	},
	{
		Name: "sltb004a", Title: "Silicon Labs Thunderboard Sense 2 (SLTB004A)", Vendor: "Silicon Labs",
		MCU: "EFR32MG12P332F1024GL125", Core: "Cortex-M4F", FlashKiB: 1024, RAMKiB: 256,
		RenodePlatform: "platforms/boards/sltb004a.repl",
		Firmware:       "zephyr/efr32mg_sltb004a/wasmbed.elf",
		Capabilities:   []string{CapBLE, CapThread},
	},
	{
		Name: "stm32f072b-disco", Title: "ST 32F072BDISCOVERY", Vendor: "STMicroelectronics",
		MCU: "STM32F072RB", Core: "Cortex-M0", FlashKiB: 128, RAMKiB: 16,
		RenodePlatform: "platforms/boards/stm32f072b_discovery.repl",
		Firmware:       "zephyr/stm32f072b_disco/wasmbed.elf",
		Capabilities:   []string{CapUSB},
	},
	{
		Name: "stm32f4-disco", Title: "ST STM32F4DISCOVERY", Vendor: "STMicroelectronics",
		MCU: "STM32F407VG", Core: "Cortex-M4F", FlashKiB: 1024, RAMKiB: 192,
		RenodePlatform: "platforms/boards/stm32f4_discovery-kit.repl",
		Firmware:       "zephyr/stm32f4_disco/wasmbed.elf",
		Capabilities:   []string{CapNone},
	},
	{
		Name: "stm32f746g-disco", Title: "ST STM32F746G Discovery", Vendor: "STMicroelectronics",
		MCU: "STM32F746NG", Core: "Cortex-M7", FlashKiB: 1024, RAMKiB: 320,
		RenodePlatform: "platforms/boards/stm32f7_discovery-bb.repl",
		Firmware:       "zephyr/stm32f746g_disco/wasmbed.elf",
		Capabilities:   []string{CapEthernet},
	},
}

// ErrUnknownBoard is wrapped by LookupBoard's error for a name the catalog
// does not hold.
var ErrUnknownBoard = errors.New("unknown board")

// Boards returns every board of the catalog, sorted by Name. The slice and
// the boards are copies the caller may keep or modify.
func Boards() []Board {
	out := make([]Board, len(catalog))
	for i, b := range catalog {
		out[i] = b.clone()
	}
	return out
}

// LookupBoard returns a copy of the catalog's board called name. For a name
// the catalog does not hold, the error wraps ErrUnknownBoard and lists the
// valid names.
func LookupBoard(name string) (Board, error) {
	i, ok := slices.BinarySearchFunc(catalog, name, func(b Board, n string) int { return strings.Compare(b.Name, n) })
	if !ok {
		names := make([]string, len(catalog))
		for i, b := range catalog {
			names[i] = b.Name
		}
		return Board{}, fmt.Errorf("%w %q; valid boards: %s", ErrUnknownBoard, name, strings.Join(names, ", "))
	}
	return catalog[i].clone(), nil
}

// validName reports whether s is a DNS-1123 label: 1 to 63 characters, each
// a lowercase ASCII letter, a digit or '-', starting and ending with a letter
// or digit. Board and device names must be one, as they become directory
// names and Kubernetes object names.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
