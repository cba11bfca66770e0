package renode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The -update flag rewrites the golden files under testdata/renode. Another
// test file of the package may define the same flag; then it is shared.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

func renodeUpdatingGoldens() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// renodeCheckGolden compares got with the golden file at path, or rewrites the
// file with -update.
func renodeCheckGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if renodeUpdatingGoldens() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./renode/ -run 'Script|Container' -update to write it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update and review the diff):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// renodeCatalog returns the catalog boards that have a Renode platform.
func renodeCatalog(t *testing.T) []Board {
	t.Helper()
	var out []Board
	for _, b := range Boards() {
		if b.RenodePlatform != "" {
			out = append(out, b)
		}
	}
	if len(out) != 11 {
		t.Fatalf("%d boards with a Renode platform, want 11", len(out))
	}
	return out
}

const renodeGoldenGateway = "192.168.100.1:8081"

func goldenScriptSpec(b Board) ScriptSpec {
	return ScriptSpec{
		Device:       b.Name + "-1",
		Board:        b,
		FirmwarePath: RenodeFirmwarePath,
		UARTPort:     RenodeUARTPort,
		Gateway:      renodeGoldenGateway,
		Ethernet:     b.HasCapability(CapEthernet),
	}
}

func TestScriptGolden(t *testing.T) {
	for _, b := range renodeCatalog(t) {
		t.Run(b.Name, func(t *testing.T) {
			got, err := Script(goldenScriptSpec(b))
			if err != nil {
				t.Fatalf("Script(%s) error: %v", b.Name, err)
			}
			renodeCheckGolden(t, filepath.Join("testdata", "renode", b.Name+".resc"), []byte(got))
		})
	}
}

var renodeWriteDoubleWord = regexp.MustCompile(`^sysbus WriteDoubleWord (0x[0-9a-f]{8}) (0x[0-9a-f]{8})$`)

// decodeScriptBlock reads the boot config block back from the
// WriteDoubleWord lines of a script, checking that they write consecutive
// words, and returns the block's address and bytes.
func decodeScriptBlock(t *testing.T, script string) (uint32, []byte) {
	t.Helper()
	var (
		addr  uint32
		block []byte
	)
	for _, line := range strings.Split(script, "\n") {
		m := renodeWriteDoubleWord.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a, _ := strconv.ParseUint(m[1], 0, 32)
		v, _ := strconv.ParseUint(m[2], 0, 32)
		if block == nil {
			addr = uint32(a)
		} else if want := addr + uint32(len(block)); uint32(a) != want {
			t.Fatalf("word written at 0x%08x, want 0x%08x (consecutive words)", a, want)
		}
		block = binary.LittleEndian.AppendUint32(block, uint32(v))
	}
	return addr, block
}

func TestScriptBootConfigRoundTrip(t *testing.T) {
	for _, b := range renodeCatalog(t) {
		t.Run(b.Name, func(t *testing.T) {
			spec := goldenScriptSpec(b)
			script, err := Script(spec)
			if err != nil {
				t.Fatal(err)
			}
			addr, block := decodeScriptBlock(t, script)
			if want := renodeBoards[b.Name].ConfigAddr; addr != want {
				t.Errorf("block written at 0x%08x, want the board's config address 0x%08x", addr, want)
			}
			got, err := ParseBootConfig(block)
			if err != nil {
				t.Fatalf("ParseBootConfig(block from script) error: %v", err)
			}
			want := BootConfig{Gateway: netip.MustParseAddrPort(renodeGoldenGateway), Device: spec.Device}
			if got != want {
				t.Errorf("ParseBootConfig(block from script) = %+v, want %+v", got, want)
			}
		})
	}
}

func TestScriptStructure(t *testing.T) {
	for _, b := range renodeCatalog(t) {
		t.Run(b.Name, func(t *testing.T) {
			spec := goldenScriptSpec(b)
			script, err := Script(spec)
			if err != nil {
				t.Fatal(err)
			}
			rb := renodeBoards[b.Name]
			wantLines := []string{
				fmt.Sprintf("emulation CreateServerSocketTerminal %d \"term\" false", RenodeUARTPort),
				fmt.Sprintf("mach create %q", spec.Device),
				"machine LoadPlatformDescription @" + b.RenodePlatform,
				"sysbus LoadELF @" + RenodeFirmwarePath,
				"connector Connect sysbus." + rb.ConsoleUART + " term",
			}
			netLines := []string{
				`emulation CreateSwitch "net"`,
				`emulation CreateTap "tap0" "tap"`,
				"connector Connect host.tap net",
				"connector Connect sysbus." + rb.Ethernet + " net",
			}
			lines := strings.Split(strings.TrimSuffix(script, "\n"), "\n")
			has := func(l string) bool {
				for _, x := range lines {
					if x == l {
						return true
					}
				}
				return false
			}
			for _, l := range wantLines {
				if !has(l) {
					t.Errorf("script lacks line %q", l)
				}
			}
			for _, l := range netLines {
				if has(l) != spec.Ethernet {
					t.Errorf("line %q present = %v, want %v (ethernet)", l, has(l), spec.Ethernet)
				}
			}
			if last := lines[len(lines)-1]; last != "start" {
				t.Errorf("last line = %q, want start", last)
			}
			// Memory is written after the ELF is loaded, so that loading
			// cannot overwrite the block.
			if strings.Index(script, "sysbus WriteDoubleWord") < strings.Index(script, "sysbus LoadELF") {
				t.Error("the boot config block is written before the ELF is loaded")
			}
		})
	}
}

func TestScriptErrors(t *testing.T) {
	board, err := LookupBoard("stm32f746g-disco")
	if err != nil {
		t.Fatal(err)
	}
	nordic, err := LookupBoard("nrf52840-dk")
	if err != nil {
		t.Fatal(err)
	}
	esp, err := LookupBoard("esp32-devkitc")
	if err != nil {
		t.Fatal(err)
	}
	ok := goldenScriptSpec(board)
	tests := []struct {
		name    string
		edit    func(*ScriptSpec)
		wantErr string
	}{
		{"no platform", func(s *ScriptSpec) { s.Board = esp }, "no Renode platform: run it on the sim or qemu backend"},
		{"unknown wiring", func(s *ScriptSpec) { s.Board.Name = "made-up"; s.Board.RenodePlatform = "platforms/x.repl" }, "no Renode wiring"},
		{"ethernet without MAC", func(s *ScriptSpec) { s.Board = nordic; s.Ethernet = true }, "no Ethernet peripheral"},
		{"device too long", func(s *ScriptSpec) { s.Device = strings.Repeat("a", 33) }, "is 33 bytes; the block holds at most 32"},
		{"device non-ASCII", func(s *ScriptSpec) { s.Device = "gerät" }, "not a DNS label"},
		{"device upper case", func(s *ScriptSpec) { s.Device = "Board1" }, "not a DNS label"},
		{"device empty", func(s *ScriptSpec) { s.Device = "" }, "not a DNS label"},
		{"device quote", func(s *ScriptSpec) { s.Device = `a"b` }, "not a DNS label"},
		{"gateway host name", func(s *ScriptSpec) { s.Gateway = "gateway.local:8081" }, "not a host name"},
		{"gateway no port", func(s *ScriptSpec) { s.Gateway = "192.168.100.1" }, "missing port"},
		{"gateway port zero", func(s *ScriptSpec) { s.Gateway = "192.168.100.1:0" }, "has no port"},
		{"gateway port too big", func(s *ScriptSpec) { s.Gateway = "192.168.100.1:65536" }, "bad port"},
		{"gateway IPv6", func(s *ScriptSpec) { s.Gateway = "[2001:db8::1]:8081" }, "not an IPv4 address"},
		{"gateway loopback", func(s *ScriptSpec) { s.Gateway = "127.0.0.1:8081" }, "cannot be dialled from a board"},
		{"gateway unspecified", func(s *ScriptSpec) { s.Gateway = "0.0.0.0:8081" }, "cannot be dialled from a board"},
		{"firmware relative", func(s *ScriptSpec) { s.FirmwarePath = "firmware/wasmbed.elf" }, "not a clean absolute path"},
		{"firmware space", func(s *ScriptSpec) { s.FirmwarePath = "/fw/my firmware.elf" }, "cannot carry unquoted"},
		{"firmware newline", func(s *ScriptSpec) { s.FirmwarePath = "/fw/x.elf\nstart" }, "cannot carry unquoted"},
		{"UART port zero", func(s *ScriptSpec) { s.UARTPort = 0 }, "not a TCP port"},
		{"UART port too big", func(s *ScriptSpec) { s.UARTPort = 70000 }, "not a TCP port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.edit(&s)
			got, err := Script(s)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Script(%+v) = %q, %v; want an error containing %q", s, got, err, tt.wantErr)
			}
		})
	}
}

func TestScriptNamesOtherBackends(t *testing.T) {
	b, err := LookupBoard("mps2-an385")
	if err != nil {
		t.Fatal(err)
	}
	b.QEMUMachine = ""
	_, err = Script(ScriptSpec{Device: "d", Board: b})
	if err == nil || !strings.Contains(err.Error(), "run it on the sim backend") {
		t.Errorf("Script(board without Renode platform or QEMU machine) error = %v, want one naming the sim backend", err)
	}
}

// TestRenodeWiring checks the per-board table against the catalog and the
// documentation.
func TestRenodeWiring(t *testing.T) {
	doc, err := os.ReadFile("../docs/boards.md")
	if err != nil {
		t.Fatal(err)
	}
	boards := renodeCatalog(t)
	if len(renodeBoards) != len(boards) {
		t.Errorf("renodeBoards has %d boards, want %d (one per board with a Renode platform)", len(renodeBoards), len(boards))
	}
	for _, b := range boards {
		t.Run(b.Name, func(t *testing.T) {
			rb, ok := renodeBoards[b.Name]
			if !ok {
				t.Fatal("no Renode wiring")
			}
			if rb.ConsoleUART == "" || strings.ContainsAny(rb.ConsoleUART, ". ") {
				t.Errorf("console UART %q is not a peripheral name", rb.ConsoleUART)
			}
			if (rb.Ethernet != "") != b.HasCapability(CapEthernet) {
				t.Errorf("Ethernet peripheral %q, but capability ethernet = %v", rb.Ethernet, b.HasCapability(CapEthernet))
			}
			if rb.ConfigAddr%4 != 0 {
				t.Errorf("config address 0x%08x is not word aligned", rb.ConfigAddr)
			}
			if rb.ConfigAddr < rb.MemoryBase || uint64(rb.ConfigAddr)+BootConfigSize > uint64(rb.MemoryBase)+uint64(rb.MemorySize) {
				t.Errorf("block at 0x%08x does not fit in %s (0x%08x, %d bytes)", rb.ConfigAddr, rb.Memory, rb.MemoryBase, rb.MemorySize)
			}
			eth := "—"
			if rb.Ethernet != "" {
				eth = "`sysbus." + rb.Ethernet + "`"
			}
			row := fmt.Sprintf("| `%s` | `sysbus.%s` | %s | `0x%08x` | %s at 0x%08x, %d KiB |",
				b.Name, rb.ConsoleUART, eth, rb.ConfigAddr, rb.Memory, rb.MemoryBase, rb.MemorySize>>10)
			if !strings.Contains(string(doc), row) {
				t.Errorf("docs/boards.md lacks the row\n%s", row)
			}
		})
	}
}

func TestScriptBootConfigLayout(t *testing.T) {
	c := BootConfig{Gateway: netip.MustParseAddrPort("10.1.2.3:8081"), Device: "dev-7"}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		'W', 'B', 'C', 'F', // magic
		1, 0, // version
		52, 0, // size
		10, 1, 2, 3, // IPv4
		0x91, 0x1f, // port 8081
		5, 0, // name length, reserved
		'd', 'e', 'v', '-', '7', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	}
	if len(b) != BootConfigSize {
		t.Fatalf("MarshalBinary() is %d bytes, want %d", len(b), BootConfigSize)
	}
	if !bytes.Equal(b[:48], want) {
		t.Errorf("MarshalBinary()[:48] =\n% x\nwant\n% x", b[:48], want)
	}
	// CRC-32 (IEEE, as zlib computes it) of the 48 bytes above.
	if got, want := binary.LittleEndian.Uint32(b[48:]), uint32(0xbda1cb6b); got != want {
		t.Errorf("CRC = 0x%08x, want 0x%08x", got, want)
	}
}

// TestBootConfigNoNetwork: a board without a network gets gateway
// 0.0.0.0:0, and only that unspecified gateway is accepted.
func TestBootConfigNoNetwork(t *testing.T) {
	c := BootConfig{Gateway: NoNetwork, Device: "mcu-1"}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary(no network) = %v", err)
	}
	if !bytes.Equal(b[8:14], make([]byte, 6)) {
		t.Errorf("gateway bytes = % x, want zeros", b[8:14])
	}
	if got, err := ParseBootConfig(b); err != nil || got != c {
		t.Errorf("ParseBootConfig = %+v, %v; want %+v", got, err, c)
	}
	c.Gateway = netip.MustParseAddrPort("0.0.0.0:8081")
	if _, err := c.MarshalBinary(); err == nil {
		t.Error("0.0.0.0 with a port was accepted")
	}
}

func TestScriptBootConfigDeviceNames(t *testing.T) {
	gw := netip.MustParseAddrPort("192.168.100.1:8081")
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"dev-1", true},
		{strings.Repeat("x", 32), true},
		{strings.Repeat("x", 33), false},
		{strings.Repeat("x", 63), false},
		{"", false},
		{"-dev", false},
		{"dev-", false},
		{"Dev", false},
		{"dev_1", false},
		{"dev.1", false},
		{"dev 1", false},
		{"gerät", false},
		{"デバイス", false},
		{"dev\x00", false},
		{"dev\n", false},
		{"\xff\xfe", false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.name), func(t *testing.T) {
			b, err := BootConfig{Gateway: gw, Device: tt.name}.MarshalBinary()
			if (err == nil) != tt.ok {
				t.Fatalf("MarshalBinary(device %q) error = %v, want ok = %v", tt.name, err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrBootConfig) {
					t.Errorf("error %v does not wrap ErrBootConfig", err)
				}
				return
			}
			c, err := ParseBootConfig(b)
			if err != nil || c.Device != tt.name || c.Gateway != gw {
				t.Errorf("ParseBootConfig(MarshalBinary(%q)) = %+v, %v", tt.name, c, err)
			}
		})
	}
}

func TestScriptParseBootConfigRejects(t *testing.T) {
	good, err := BootConfig{Gateway: netip.MustParseAddrPort("192.168.100.1:8081"), Device: "dev-1"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// edit changes a copy of good; fixCRC recomputes the CRC afterwards so
	// that the case tests the field, not the checksum.
	tests := []struct {
		name    string
		edit    func([]byte) []byte
		fixCRC  bool
		wantErr string
		is      error
	}{
		{"short", func(b []byte) []byte { return b[:51] }, false, "51 bytes", nil},
		{"long", func(b []byte) []byte { return append(b, 0) }, false, "53 bytes", nil},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, true, "bad magic", nil},
		{"version 2", func(b []byte) []byte { b[4] = 2; return b }, true, "unsupported boot config version 2", ErrBootConfigVersion},
		{"size", func(b []byte) []byte { b[6] = 64; return b }, true, "size field 64", nil},
		{"crc", func(b []byte) []byte { b[20] ^= 1; return b }, false, "CRC", nil},
		{"reserved", func(b []byte) []byte { b[15] = 1; return b }, true, "reserved byte", nil},
		{"name length", func(b []byte) []byte { b[14] = 33; return b }, true, "name length 33", nil},
		{"padding", func(b []byte) []byte { b[40] = 'x'; return b }, true, "padding", nil},
		{"name length zero", func(b []byte) []byte { b[14] = 0; b[16], b[17], b[18], b[19], b[20] = 0, 0, 0, 0, 0; return b }, true, "not a DNS label", nil},
		{"loopback", func(b []byte) []byte { b[8], b[9], b[10], b[11] = 127, 0, 0, 1; return b }, true, "cannot be dialled", nil},
		{"port zero", func(b []byte) []byte { b[12], b[13] = 0, 0; return b }, true, "has no port", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(bytes.Clone(good))
			if tt.fixCRC {
				binary.LittleEndian.PutUint32(b[48:], crc32.ChecksumIEEE(b[:48]))
			}
			c, err := ParseBootConfig(b)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrBootConfig) {
				t.Fatalf("ParseBootConfig(%s) = %+v, %v; want an ErrBootConfig containing %q", tt.name, c, err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
		})
	}
}

// FuzzScriptParseBootConfig: ParseBootConfig never panics, and a block it
// accepts is exactly what MarshalBinary writes for the result.
func FuzzScriptParseBootConfig(f *testing.F) {
	good, err := BootConfig{Gateway: netip.MustParseAddrPort("192.168.100.1:8081"), Device: "dev-1"}.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("WBCF"))
	f.Add(make([]byte, BootConfigSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseBootConfig(b)
		if err != nil {
			return
		}
		again, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(ParseBootConfig(% x)) error: %v", b, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("MarshalBinary(ParseBootConfig(b)) =\n% x\nwant b =\n% x", again, b)
		}
	})
}

// FuzzScriptBootConfigDevice: any device name either is refused or survives
// MarshalBinary and ParseBootConfig unchanged.
func FuzzScriptBootConfigDevice(f *testing.F) {
	for _, s := range []string{"dev-1", "", "gerät", strings.Repeat("a", 33), "a\x00b"} {
		f.Add(s)
	}
	gw := netip.MustParseAddrPort("10.0.0.1:8081")
	f.Fuzz(func(t *testing.T, name string) {
		b, err := BootConfig{Gateway: gw, Device: name}.MarshalBinary()
		if err != nil {
			return
		}
		if len(name) > BootConfigMaxName || !validName(name) {
			t.Fatalf("MarshalBinary accepted device name %q", name)
		}
		c, err := ParseBootConfig(b)
		if err != nil || c.Device != name {
			t.Fatalf("ParseBootConfig(MarshalBinary(%q)) = %+v, %v", name, c, err)
		}
	})
}
