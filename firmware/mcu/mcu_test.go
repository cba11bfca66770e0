package mcu_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"wasmbed.io/wasmbed/firmware/link"
)

// The golden files of the protocol (docs/protocol.md, "Conformance" and
// "Serial link transport").
const (
	vectorsPath     = "../../testdata/protocol/vectors.json"
	linkVectorsPath = "../../testdata/protocol/link-vectors.json"
)

// hostFlags are the warnings every C file must build without.
var hostFlags = []string{"-std=c11", "-Wall", "-Wextra", "-Werror", "-Wpedantic", "-O2", "-g"}

// sanitizers are tried once; a compiler without them (or a sandbox where
// they cannot run) builds without.
var sanitizers = []string{"-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"}

var (
	probeOnce sync.Once
	probeOK   bool
	probeLog  string
)

// hostCC returns the host C compiler and its flags, or skips the test.
func hostCC(t *testing.T) (string, []string) {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: the C tests of firmware/mcu need a host gcc (CI installs it)")
	}
	probeOnce.Do(func() {
		dir := t.TempDir()
		src := filepath.Join(dir, "probe.c")
		if err := os.WriteFile(src, []byte("int main(void) { return 0; }\n"), 0o644); err != nil {
			probeLog = err.Error()
			return
		}
		bin := filepath.Join(dir, "probe")
		out, err := exec.Command(gcc, append(append([]string{}, sanitizers...), "-o", bin, src)...).CombinedOutput()
		if err == nil {
			cmd := exec.Command(bin)
			cmd.Env = sanitizerEnv()
			out, err = cmd.CombinedOutput()
		}
		probeOK = err == nil
		probeLog = string(out)
	})
	flags := append([]string{}, hostFlags...)
	if probeOK {
		flags = append(flags, sanitizers...)
	} else {
		t.Logf("building without -fsanitize=address,undefined, which this gcc cannot run: %s", probeLog)
	}
	return gcc, flags
}

// sanitizerEnv makes any sanitizer report fatal. Leak checking is off: the
// firmware code never allocates, and it does not work under every sandbox.
func sanitizerEnv() []string {
	return append(os.Environ(), "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0",
		"UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
}

// buildAndRun compiles a host test program from sources (paths relative to
// this directory) into t.TempDir(), runs it with stdin and returns its
// output; it fails the test with the output when either step fails.
func buildAndRun(t *testing.T, name string, stdin []byte, sources ...string) string {
	t.Helper()
	gcc, flags := hostCC(t)
	bin := filepath.Join(t.TempDir(), name)
	args := append(append([]string{}, flags...), "-o", bin)
	args = append(args, sources...)
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	cmd := exec.Command(bin)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = sanitizerEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t.Log(line)
	}
	return string(out)
}

// targetBuild compiles sources for the Cortex-M3 of the MPS2-AN385 with the
// firmware's flags and logs their section sizes; it skips when
// arm-none-eabi-gcc is missing.
func targetBuild(t *testing.T, sources ...string) {
	t.Helper()
	gcc, err := exec.LookPath("arm-none-eabi-gcc")
	if err != nil {
		t.Skip("arm-none-eabi-gcc not found: install gcc-arm-none-eabi to check the target build")
	}
	dir := t.TempDir()
	var objs []string
	for _, src := range sources {
		obj := filepath.Join(dir, strings.TrimSuffix(filepath.Base(src), ".c")+".o")
		args := []string{"-std=c11", "-mcpu=cortex-m3", "-mthumb", "-Os", "-Wall", "-Wextra", "-Werror",
			"-ffreestanding", "-fno-common", "-c", "-o", obj, src}
		if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("arm-none-eabi-gcc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		objs = append(objs, obj)
	}
	size, err := exec.LookPath("arm-none-eabi-size")
	if err != nil {
		return
	}
	out, err := exec.Command(size, objs...).CombinedOutput()
	if err != nil {
		t.Fatalf("arm-none-eabi-size: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t.Log(strings.ReplaceAll(line, dir+string(filepath.Separator), ""))
	}
}

// targetSizes logs sizeof of the protocol structs on the Cortex-M3, read
// from the symbols of test/target_sizes.c.
func targetSizes(t *testing.T) {
	t.Helper()
	gcc, err := exec.LookPath("arm-none-eabi-gcc")
	if err != nil {
		t.Skip("arm-none-eabi-gcc not found")
	}
	nm, err := exec.LookPath("arm-none-eabi-nm")
	if err != nil {
		t.Skip("arm-none-eabi-nm not found")
	}
	obj := filepath.Join(t.TempDir(), "target_sizes.o")
	if out, err := exec.Command(gcc, "-std=c11", "-mcpu=cortex-m3", "-mthumb", "-Os", "-Wall", "-Wextra", "-Werror",
		"-ffreestanding", "-fno-common", "-c", "-o", obj, "test/target_sizes.c").CombinedOutput(); err != nil {
		t.Fatalf("arm-none-eabi-gcc target_sizes.c: %v\n%s", err, out)
	}
	out, err := exec.Command(nm, "-S", obj).CombinedOutput()
	if err != nil {
		t.Fatalf("arm-none-eabi-nm: %v\n%s", err, out)
	}
	var sizes []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line) // address size type name
		if len(f) == 4 && strings.HasPrefix(f[3], "sizeof_") {
			n, err := strconv.ParseUint(f[1], 16, 32)
			if err != nil {
				t.Fatalf("nm line %q: %v", line, err)
			}
			sizes = append(sizes, fmt.Sprintf("%s %d", strings.TrimPrefix(f[3], "sizeof_"), n))
		}
	}
	if len(sizes) == 0 {
		t.Fatalf("no sizeof_ symbols in:\n%s", out)
	}
	t.Logf("sizes (cortex-m3): %s", strings.Join(sizes, ", "))
}

// TestCProto builds cbor.c and proto.c with test/test_proto.c and runs it
// over every vector of testdata/protocol/vectors.json: each must decode to
// its meaning and re-encode to its canonical bytes, every invalid payload is
// refused with its code, every truncation is refused; plus the CBOR unit
// tests, the limit and malformed cases and a few thousand random and
// mutated inputs under the address and undefined-behaviour sanitizers.
func TestCProto(t *testing.T) {
	t.Run("host", func(t *testing.T) {
		in := protoInput(t)
		out := buildAndRun(t, "test_proto", in, "test/test_proto.c", "cbor.c", "proto.c")
		if !strings.Contains(out, "test_proto: ok") {
			t.Errorf("test_proto did not report success:\n%s", out)
		}
	})
	t.Run("cortex-m3", func(t *testing.T) {
		targetBuild(t, "cbor.c", "proto.c")
		targetSizes(t)
	})
}

// TestCSHA256 checks sha256.c against the FIPS 180-2 examples, the empty
// message, a million 'a', and crypto/sha256 for every length from 0 to 300
// bytes (all padding cases), fed whole, a byte at a time and in random
// pieces.
func TestCSHA256(t *testing.T) {
	t.Run("host", func(t *testing.T) {
		var in bytes.Buffer
		lengths := []int{511, 512, 513, 1000, 4095, 4096}
		for n := range 301 {
			lengths = append(lengths, n)
		}
		for _, n := range lengths {
			msg := make([]byte, n)
			for i := range msg {
				msg[i] = byte(i*7 + 3)
			}
			sum := sha256.Sum256(msg)
			fmt.Fprintf(&in, "S %d %x\n", n, sum)
		}
		out := buildAndRun(t, "test_sha256", in.Bytes(), "test/test_sha256.c", "sha256.c")
		if !strings.Contains(out, "test_sha256: ok") {
			t.Errorf("test_sha256 did not report success:\n%s", out)
		}
	})
	t.Run("cortex-m3", func(t *testing.T) { targetBuild(t, "sha256.c") })
}

// TestCLink checks link.c against testdata/protocol/link-vectors.json (fed
// whole, a byte at a time and in random pieces), the largest frame, the
// CRC check values, and random streams of frames, noise and cuts.
func TestCLink(t *testing.T) {
	t.Run("host", func(t *testing.T) {
		in := linkInput(t)
		out := buildAndRun(t, "test_link", in, "test/test_link.c", "link.c")
		if !strings.Contains(out, "test_link: ok") {
			t.Errorf("test_link did not report success:\n%s", out)
		}
	})
	t.Run("cortex-m3", func(t *testing.T) { targetBuild(t, "link.c") })
}

// ---- vectors.json as input of test_proto.c ----

type vectorFile struct {
	Vectors []struct {
		Name      string          `json:"name"`
		Hex       string          `json:"hex"`
		Canonical string          `json:"canonical"`
		Meaning   json.RawMessage `json:"meaning"`
	} `json:"vectors"`
	Invalid []struct {
		Name      string `json:"name"`
		Hex       string `json:"hex"`
		ErrorCode int    `json:"error_code"`
	} `json:"invalid"`
}

// protoInput renders vectors.json in the record format of test_proto.c.
func protoInput(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("parse %s: %v", vectorsPath, err)
	}
	var in bytes.Buffer
	for _, v := range f.Vectors {
		toks, err := meaningTokens(v.Meaning)
		if err != nil {
			t.Fatalf("vector %s: meaning: %v", v.Name, err)
		}
		canon := v.Canonical
		if canon == "" {
			canon = v.Hex
		}
		fmt.Fprintf(&in, "V %s %s %s %d %s\n", v.Name, v.Hex, canon, len(toks), strings.Join(toks, " "))
	}
	for _, v := range f.Invalid {
		h := v.Hex
		if h == "" {
			h = "-"
		}
		fmt.Fprintf(&in, "I %s %d %s\n", v.Name, v.ErrorCode, h)
	}
	return in.Bytes()
}

// field is one member of a JSON object, kept in document order.
type field struct {
	key   string
	value any
}

// parseOrdered parses one JSON value keeping object members in order:
// objects are []field, arrays []any, numbers json.Number.
func parseOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		o := []field{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := parseOrdered(dec)
			if err != nil {
				return nil, err
			}
			o = append(o, field{k.(string), v})
		}
		_, err := dec.Token()
		return o, err
	case '[':
		a := []any{}
		for dec.More() {
			v, err := parseOrdered(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return nil, fmt.Errorf("unexpected %v", d)
}

// bytesFields are the byte-string fields of the protocol; the meaning
// writes them in hex, other strings are text.
var bytesFields = map[string]bool{"SHA256": true, "CSR": true, "Cert": true, "CA": true, "Data": true}

// meaningTokens renders a vector's meaning as the tokens test_proto.c
// prints for a decoded message.
func meaningTokens(raw json.RawMessage) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := parseOrdered(dec)
	if err != nil {
		return nil, err
	}
	env, ok := v.([]field)
	if !ok {
		return nil, fmt.Errorf("meaning is not an object")
	}
	var toks []string
	for _, f := range env {
		if f.key == "body" {
			body, ok := f.value.([]field)
			if !ok {
				return nil, fmt.Errorf("body is not an object")
			}
			if err := bodyTokens("", body, &toks); err != nil {
				return nil, err
			}
			continue
		}
		toks = append(toks, fmt.Sprintf("%s=%v", f.key, f.value))
	}
	return toks, nil
}

func bodyTokens(prefix string, fields []field, toks *[]string) error {
	for _, f := range fields {
		name := prefix + f.key
		switch v := f.value.(type) {
		case nil: // an absent array or map
			*toks = append(*toks, name+"#=0")
		case json.Number:
			*toks = append(*toks, name+"="+v.String())
		case string:
			*toks = append(*toks, name+"="+stringToken(f.key, v))
		case []any:
			*toks = append(*toks, fmt.Sprintf("%s#=%d", name, len(v)))
			for i, e := range v {
				elem := fmt.Sprintf("%s.%d", name, i)
				switch e := e.(type) {
				case string:
					*toks = append(*toks, elem+"="+stringToken(f.key, e))
				case []field:
					if err := bodyTokens(elem+".", e, toks); err != nil {
						return err
					}
				default:
					return fmt.Errorf("%s: unexpected %T", elem, e)
				}
			}
		case []field:
			if f.key != "Values" {
				if err := bodyTokens(name+".", v, toks); err != nil {
					return err
				}
				continue
			}
			*toks = append(*toks, fmt.Sprintf("%s#=%d", name, len(v)))
			for _, kv := range v {
				ft, err := floatToken(kv.value)
				if err != nil {
					return fmt.Errorf("%s.%s: %v", name, kv.key, err)
				}
				*toks = append(*toks, fmt.Sprintf("%s.%x=%s", name, kv.key, ft))
			}
		default:
			return fmt.Errorf("%s: unexpected %T", name, v)
		}
	}
	return nil
}

func stringToken(key, s string) string {
	if bytesFields[key] {
		return "b:" + s
	}
	return "t:" + hex.EncodeToString([]byte(s))
}

// floatToken renders a telemetry value as its IEEE bits; NaN has no one
// encoding, so it is f:nan.
func floatToken(v any) (string, error) {
	var f float64
	switch v := v.(type) {
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(v.String(), 64); err != nil {
			return "", err
		}
	case string:
		switch v {
		case "NaN":
			return "f:nan", nil
		case "Infinity":
			f = math.Inf(1)
		case "-Infinity":
			f = math.Inf(-1)
		default:
			return "", fmt.Errorf("float %q", v)
		}
	default:
		return "", fmt.Errorf("float of type %T", v)
	}
	return fmt.Sprintf("f:%016x", math.Float64bits(f)), nil
}

// ---- link-vectors.json as input of test_link.c ----

// linkInput renders link-vectors.json in the record format of test_link.c.
func linkInput(t *testing.T) []byte {
	t.Helper()
	f, err := link.ReadVectors(linkVectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	for _, v := range f.Vectors {
		fmt.Fprintf(&in, "L %s %d %d", v.Name, v.MaxPayload, len(v.Stream))
		for _, s := range v.Stream {
			if s == "" {
				s = "-"
			}
			fmt.Fprintf(&in, " %s", s)
		}
		encode := 0
		if v.Encode {
			encode = 1
		}
		fmt.Fprintf(&in, " %d %d", encode, len(v.Events))
		for _, e := range v.Events {
			if e.Frame != "" {
				fmt.Fprintf(&in, " F %s", e.Frame)
			} else {
				fmt.Fprintf(&in, " T %d", e.TooLarge)
			}
		}
		s := v.Stats
		fmt.Fprintf(&in, " %d %d %d %d %d %d\n", s.Frames, s.Skipped, s.BadHeader, s.TooLarge, s.BadCRC, s.Truncated)
	}
	return in.Bytes()
}
