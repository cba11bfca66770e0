package renode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// Boot config block: how the renode backend hands a board's gateway endpoint
// and device name to its firmware. The Renode script writes the block into
// the board's RAM at its config address (renodeBoard.ConfigAddr) after the
// firmware ELF is loaded and before the CPU starts. docs/boards.md ("renode
// backend") has the byte layout; this file is its reference implementation.
const (
	// BootConfigMagic opens every boot config block.
	BootConfigMagic = "WBCF"
	// BootConfigVersion is the layout version this package writes and reads.
	BootConfigVersion = 1
	// BootConfigSize is the size of a version 1 block in bytes: a whole
	// number of 32-bit words, since the script writes it word by word.
	BootConfigSize = 52
	// BootConfigMaxName is the longest device name a block holds, in bytes.
	BootConfigMaxName = 32
	// DefaultBootConfigAddr is where the block goes on boards whose RAM
	// starts at 0x20000000 (most Cortex-M parts): 4 KiB into RAM.
	DefaultBootConfigAddr = 0x20001000
)

// Offsets of the fields of a version 1 block.
const (
	bcMagic   = 0  // 4 bytes, "WBCF"
	bcVersion = 4  // uint16, little-endian
	bcSize    = 6  // uint16, little-endian: BootConfigSize
	bcIPv4    = 8  // 4 bytes, network order
	bcPort    = 12 // uint16, little-endian
	bcNameLen = 14 // uint8
	bcReserve = 15 // uint8, zero
	bcName    = 16 // BootConfigMaxName bytes, zero padded
	bcCRC     = 48 // uint32, little-endian: CRC-32 (IEEE) of bytes 0-47
)

// Errors of boot config blocks, for callers that branch on them.
var (
	// ErrBootConfig is wrapped by every error of MarshalBinary and
	// ParseBootConfig.
	ErrBootConfig = errors.New("boot config block")
	// ErrBootConfigVersion is wrapped by ParseBootConfig for a block of
	// another layout version.
	ErrBootConfigVersion = errors.New("unsupported boot config version")
)

// BootConfig is what a board's firmware learns from its boot config block.
type BootConfig struct {
	// Gateway is the IPv4 address and TCP port of the gateway's TLS
	// listener, as the board reaches it over its emulated network, or
	// NoNetwork (0.0.0.0, port 0).
	Gateway netip.AddrPort
	// Device is the device name: a DNS label of at most BootConfigMaxName
	// bytes.
	Device string
}

func (c BootConfig) validate() error {
	if err := checkBootDevice(c.Device); err != nil {
		return err
	}
	return checkBootGateway(c.Gateway)
}

func checkBootDevice(name string) error {
	if len(name) > BootConfigMaxName {
		return fmt.Errorf("%w: device name %q is %d bytes; the block holds at most %d", ErrBootConfig, name, len(name), BootConfigMaxName)
	}
	if !validName(name) {
		return fmt.Errorf("%w: device name %q is not a DNS label (lowercase ASCII letters, digits and '-')", ErrBootConfig, name)
	}
	return nil
}

// NoNetwork is the gateway of a boot config block for a board that has no
// network: its serial link reaches the gateway through a board link on
// the host (the qemu backend's boards).
var NoNetwork = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)

func checkBootGateway(gw netip.AddrPort) error {
	ip := gw.Addr()
	switch {
	case gw == NoNetwork:
		return nil
	case !ip.Is4():
		return fmt.Errorf("%w: gateway %s is not an IPv4 address", ErrBootConfig, gw)
	case ip.IsUnspecified(), ip.IsLoopback(), ip.IsMulticast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%w: gateway %s cannot be dialled from a board: give the gateway's address on the board's network", ErrBootConfig, gw)
	case gw.Port() == 0:
		return fmt.Errorf("%w: gateway %s has no port", ErrBootConfig, gw)
	}
	return nil
}

// MarshalBinary encodes c as a version 1 block of BootConfigSize bytes. It
// fails for a device name that is not a DNS label of at most
// BootConfigMaxName bytes, and for a gateway that is not a unicast IPv4
// address other than loopback with a port.
func (c BootConfig) MarshalBinary() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, BootConfigSize)
	copy(b[bcMagic:], BootConfigMagic)
	binary.LittleEndian.PutUint16(b[bcVersion:], BootConfigVersion)
	binary.LittleEndian.PutUint16(b[bcSize:], BootConfigSize)
	ip := c.Gateway.Addr().As4()
	copy(b[bcIPv4:], ip[:])
	binary.LittleEndian.PutUint16(b[bcPort:], c.Gateway.Port())
	b[bcNameLen] = byte(len(c.Device))
	copy(b[bcName:], c.Device)
	binary.LittleEndian.PutUint32(b[bcCRC:], crc32.ChecksumIEEE(b[:bcCRC]))
	return b, nil
}

// ParseBootConfig decodes a version 1 block. It accepts exactly the blocks
// MarshalBinary writes: b must be BootConfigSize bytes with the magic, the
// version (else the error wraps ErrBootConfigVersion), the size and a
// matching CRC, zero padding and reserved bytes, and valid fields.
func ParseBootConfig(b []byte) (BootConfig, error) {
	if len(b) != BootConfigSize {
		return BootConfig{}, fmt.Errorf("%w: %d bytes, want %d", ErrBootConfig, len(b), BootConfigSize)
	}
	if string(b[bcMagic:bcMagic+4]) != BootConfigMagic {
		return BootConfig{}, fmt.Errorf("%w: bad magic % x", ErrBootConfig, b[bcMagic:bcMagic+4])
	}
	if v := binary.LittleEndian.Uint16(b[bcVersion:]); v != BootConfigVersion {
		return BootConfig{}, fmt.Errorf("%w: %w %d", ErrBootConfig, ErrBootConfigVersion, v)
	}
	if n := binary.LittleEndian.Uint16(b[bcSize:]); n != BootConfigSize {
		return BootConfig{}, fmt.Errorf("%w: size field %d, want %d", ErrBootConfig, n, BootConfigSize)
	}
	if got, want := binary.LittleEndian.Uint32(b[bcCRC:]), crc32.ChecksumIEEE(b[:bcCRC]); got != want {
		return BootConfig{}, fmt.Errorf("%w: CRC 0x%08x, want 0x%08x", ErrBootConfig, got, want)
	}
	if b[bcReserve] != 0 {
		return BootConfig{}, fmt.Errorf("%w: reserved byte is 0x%02x, want 0", ErrBootConfig, b[bcReserve])
	}
	n := int(b[bcNameLen])
	if n > BootConfigMaxName {
		return BootConfig{}, fmt.Errorf("%w: name length %d exceeds %d", ErrBootConfig, n, BootConfigMaxName)
	}
	for _, c := range b[bcName+n : bcCRC] {
		if c != 0 {
			return BootConfig{}, fmt.Errorf("%w: name padding is not zero", ErrBootConfig)
		}
	}
	c := BootConfig{
		Gateway: netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[bcIPv4:bcIPv4+4])), binary.LittleEndian.Uint16(b[bcPort:])),
		Device:  string(b[bcName : bcName+n]),
	}
	if err := c.validate(); err != nil {
		return BootConfig{}, err
	}
	return c, nil
}

// renodeBoard is how the renode backend wires one board of the catalog in
// Renode: peripheral names as the board's platform description (.repl)
// gives them, and where its boot config block goes.
type renodeBoard struct {
	// ConsoleUART is the sysbus peripheral of the UART the board's
	// firmware uses as its console (Zephyr's zephyr,console).
	ConsoleUART string
	// Ethernet is the sysbus peripheral of the board's Ethernet MAC; ""
	// for a board without CapEthernet.
	Ethernet string
	// ConfigAddr is the address of the boot config block. It lies in
	// Memory, a RAM of the board that starts at MemoryBase and holds
	// MemorySize bytes.
	ConfigAddr             uint32
	Memory                 string
	MemoryBase, MemorySize uint32
}

// renodeBoards holds the Renode wiring of every catalog board with a
// RenodePlatform, keyed by board name; docs/boards.md lists the same table.
var renodeBoards = map[string]renodeBoard{
	"arduino-nano-33-ble": {ConsoleUART: "uart0", ConfigAddr: DefaultBootConfigAddr, Memory: "ram", MemoryBase: 0x20000000, MemorySize: 256 << 10},
	"frdm-k64f":           {ConsoleUART: "uart0", Ethernet: "eth", ConfigAddr: DefaultBootConfigAddr, Memory: "sram", MemoryBase: 0x20000000, MemorySize: 192 << 10},
	// LiteX maps SPI flash at 0x20000000 and runs Zephyr from DDR at
	// 0x40000000; the SoC's own SRAM at 0x10000000 is free for the block.
	"litex-vexriscv": {ConsoleUART: "uart", Ethernet: "eth", ConfigAddr: 0x10001000, Memory: "sram", MemoryBase: 0x10000000, MemorySize: 256 << 10},
	"mimxrt1064-evk": {ConsoleUART: "lpuart1", Ethernet: "enet", ConfigAddr: DefaultBootConfigAddr, Memory: "dtcm", MemoryBase: 0x20000000, MemorySize: 512 << 10},
	"nrf52840-dk":    {ConsoleUART: "uart0", ConfigAddr: DefaultBootConfigAddr, Memory: "ram", MemoryBase: 0x20000000, MemorySize: 256 << 10},
	"nucleo-h753zi":  {ConsoleUART: "usart3", Ethernet: "ethernet", ConfigAddr: DefaultBootConfigAddr, Memory: "dtcm", MemoryBase: 0x20000000, MemorySize: 128 << 10},
	// The ATSAME70Q21's SRAM starts at 0x20400000 (Renode maps a larger
	// window from 0x20000000; the block stays inside the real SRAM).
	"sam-e70-xplained": {ConsoleUART: "usart1", Ethernet: "gem", ConfigAddr: 0x20401000, Memory: "sram", MemoryBase: 0x20400000, MemorySize: 384 << 10},
	"sltb004a":         {ConsoleUART: "usart0", ConfigAddr: DefaultBootConfigAddr, Memory: "sram", MemoryBase: 0x20000000, MemorySize: 256 << 10},
	"stm32f072b-disco": {ConsoleUART: "usart1", ConfigAddr: DefaultBootConfigAddr, Memory: "sram", MemoryBase: 0x20000000, MemorySize: 16 << 10},
	"stm32f4-disco":    {ConsoleUART: "usart2", ConfigAddr: DefaultBootConfigAddr, Memory: "sram", MemoryBase: 0x20000000, MemorySize: 192 << 10},
	"stm32f746g-disco": {ConsoleUART: "usart1", Ethernet: "ethernet", ConfigAddr: DefaultBootConfigAddr, Memory: "sram", MemoryBase: 0x20000000, MemorySize: 320 << 10},
}

// Names the generated script gives to what it creates in Renode.
const (
	scriptTerminal = "term" // the console UART's server socket terminal
	scriptSwitch   = "net"  // the board's Ethernet switch
	scriptTap      = "tap0" // the tap interface, in the container's network namespace
)

// ScriptSpec is the input of Script.
type ScriptSpec struct {
	// Device names the Renode machine and goes into the boot config
	// block: a DNS label of at most BootConfigMaxName bytes.
	Device string
	// Board is the catalog entry of the board; it needs a RenodePlatform.
	Board Board
	// FirmwarePath is the firmware ELF's absolute path as Renode sees it
	// (inside the container, e.g. /firmware/wasmbed.elf).
	FirmwarePath string
	// UARTPort is the TCP port, 1 to 65535, of the server socket terminal
	// that carries the console UART.
	UARTPort int
	// Gateway is the gateway's IPv4 host:port as the board dials it.
	Gateway string
	// Ethernet connects the board's Ethernet MAC to a switch and a tap
	// interface; set it from the board's CapEthernet.
	Ethernet bool
}

// Script returns the Renode script (.resc) that runs spec's board: it
// creates a machine named after the device, loads the board's platform and
// the firmware ELF, serves the console UART on a raw TCP server socket
// terminal at UARTPort, writes the boot config block into RAM, with
// Ethernet joins the board to a switch bridged to the tap interface tap0,
// and starts the emulation. The output depends on spec only.
//
// A board without a RenodePlatform is refused with an error naming the
// backends that run it.
func Script(s ScriptSpec) (string, error) {
	if s.Board.RenodePlatform == "" {
		others := "sim"
		if s.Board.QEMUMachine != "" {
			others = "sim or qemu"
		}
		return "", fmt.Errorf("board %s has no Renode platform: run it on the %s backend", s.Board.Name, others)
	}
	rb, ok := renodeBoards[s.Board.Name]
	if !ok {
		return "", fmt.Errorf("board %s has no Renode wiring (console UART, boot config address)", s.Board.Name)
	}
	if err := checkBootDevice(s.Device); err != nil {
		return "", err
	}
	gw, err := parseBootGateway(s.Gateway)
	if err != nil {
		return "", err
	}
	if err := checkScriptPath(s.FirmwarePath); err != nil {
		return "", fmt.Errorf("firmware path: %w", err)
	}
	if err := checkScriptWord(s.Board.RenodePlatform); err != nil {
		return "", fmt.Errorf("board %s platform: %w", s.Board.Name, err)
	}
	if s.UARTPort < 1 || s.UARTPort > 65535 {
		return "", fmt.Errorf("UART port %d is not a TCP port", s.UARTPort)
	}
	if s.Ethernet && rb.Ethernet == "" {
		return "", fmt.Errorf("board %s has no Ethernet peripheral in Renode", s.Board.Name)
	}
	block, err := BootConfig{Gateway: gw, Device: s.Device}.MarshalBinary()
	if err != nil {
		return "", err
	}

	var w strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	line("# Renode script of device %s (board %s), written by the wasmbed renode backend.", s.Device, s.Board.Name)
	line("# Regenerated at every start: edits are lost.")
	line("")
	line("# Console: %s as a raw TCP server socket terminal (no telnet negotiation).", "sysbus."+rb.ConsoleUART)
	line("emulation CreateServerSocketTerminal %d %q false", s.UARTPort, scriptTerminal)
	if s.Ethernet {
		line("")
		line("# Network: a switch bridged to the tap interface %s, which needs", scriptTap)
		line("# /dev/net/tun and CAP_NET_ADMIN where Renode runs.")
		line("emulation CreateSwitch %q", scriptSwitch)
		line("emulation CreateTap %q %q", scriptTap, "tap")
		line("connector Connect host.tap %s", scriptSwitch)
	}
	line("")
	line("mach create %q", s.Device)
	line("machine LoadPlatformDescription @%s", s.Board.RenodePlatform)
	line("sysbus LoadELF @%s", s.FirmwarePath)
	line("connector Connect sysbus.%s %s", rb.ConsoleUART, scriptTerminal)
	if s.Ethernet {
		line("connector Connect sysbus.%s %s", rb.Ethernet, scriptSwitch)
	}
	line("")
	line("# Boot config block v%d at 0x%08x (%d bytes, docs/boards.md): gateway %s, device %s.", BootConfigVersion, rb.ConfigAddr, len(block), gw, s.Device)
	for i := 0; i < len(block); i += 4 {
		line("sysbus WriteDoubleWord 0x%08x 0x%08x", rb.ConfigAddr+uint32(i), binary.LittleEndian.Uint32(block[i:]))
	}
	line("")
	line("start")
	return w.String(), nil
}

// parseBootGateway parses a gateway "a.b.c.d:port" for the boot config
// block, which has no room for a host name.
func parseBootGateway(hostport string) (netip.AddrPort, error) {
	host, portText, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: gateway %q: %w", ErrBootConfig, hostport, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: gateway %q: bad port %q", ErrBootConfig, hostport, portText)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: gateway %q: the block takes an IPv4 address, not a host name", ErrBootConfig, hostport)
	}
	gw := netip.AddrPortFrom(ip.Unmap(), uint16(port))
	if err := checkBootGateway(gw); err != nil {
		return netip.AddrPort{}, err
	}
	return gw, nil
}

// checkScriptPath accepts an absolute, clean path that checkScriptWord
// accepts.
func checkScriptPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return fmt.Errorf("%q is not a clean absolute path", p)
	}
	return checkScriptWord(p)
}

// checkScriptWord accepts a non-empty word that a Renode "@path" argument
// carries as is: printable ASCII without spaces, quotes, comment or escape
// characters.
func checkScriptWord(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	for _, c := range p {
		if c <= ' ' || c > '~' || strings.ContainsRune(`"'#;\`, c) {
			return fmt.Errorf("%q holds %q, which a Renode script cannot carry unquoted", p, c)
		}
	}
	return nil
}
