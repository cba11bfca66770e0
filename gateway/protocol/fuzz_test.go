package protocol_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"wasmbed.io/wasmbed/gateway/protocol"
)

// seedPayloads returns every payload of the golden vectors, valid and
// invalid, as fuzzing seeds.
func seedPayloads(tb testing.TB) [][]byte {
	tb.Helper()
	f := loadVectors(tb)
	var out [][]byte
	add := func(h string) {
		b, err := hex.DecodeString(h)
		if err != nil {
			tb.Fatalf("seed %q: %v", h, err)
		}
		out = append(out, b)
	}
	for _, v := range f.Vectors {
		add(v.Hex)
		if v.Canonical != "" {
			add(v.Canonical)
		}
	}
	for _, v := range f.Invalid {
		add(v.Hex)
	}
	return out
}

// FuzzReadFrame feeds arbitrary streams to FrameReader (spec section
// "Framing") and checks every result against a model of the framing: a
// frame is exactly the bytes its length prefix announces, and never longer
// than the limit.
func FuzzReadFrame(f *testing.F) {
	var all []byte
	for _, p := range seedPayloads(f) {
		if len(p) == 0 {
			continue
		}
		framed := protocol.AppendFrame(nil, p)
		f.Add(framed, uint32(0), false)
		f.Add(framed[:len(framed)-1], uint32(0), true)
		all = append(all, framed...)
	}
	f.Add(all, uint32(0), false)
	f.Add(all, uint32(64), true)
	f.Add([]byte{0, 0, 0, 0}, uint32(0), false)
	f.Add([]byte{0, 1, 0, 1}, uint32(0), false) // one byte over MaxFrame
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xa0}, uint32(0), false)
	f.Add([]byte{0, 0}, uint32(0), false)
	f.Fuzz(func(t *testing.T, stream []byte, limit uint32, oneByte bool) {
		// Bound the limit so that a hostile length prefix cannot make the
		// reader allocate more than a few frames' worth.
		max := int(limit % (4 * protocol.MaxFrame))
		checkFrames(t, stream, max, oneByte)
	})
}

// checkFrames reads stream with a FrameReader of limit max and compares each
// result with the framing rules.
func checkFrames(t *testing.T, stream []byte, max int, oneByte bool) {
	t.Helper()
	var r io.Reader = bytes.NewReader(stream)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	fr := protocol.NewFrameReader(r, max)
	limit := max
	if limit <= 0 {
		limit = protocol.MaxFrame
	}
	rest := stream
	for {
		frame, err := fr.Next()
		if len(frame) > limit {
			t.Fatalf("Next() returned a frame of %d bytes, over the %d byte limit", len(frame), limit)
		}
		var want []byte
		var wantErr error
		switch {
		case len(rest) == 0:
			wantErr = io.EOF
		case len(rest) < 4:
			wantErr = io.ErrUnexpectedEOF
		default:
			n := binary.BigEndian.Uint32(rest)
			switch {
			case n == 0:
				wantErr = &protocol.Error{Code: protocol.CodeMalformed}
			case uint64(n) > uint64(limit):
				wantErr = &protocol.Error{Code: protocol.CodeFrameTooLarge}
			case uint64(len(rest)-4) < uint64(n):
				wantErr = io.ErrUnexpectedEOF
			default:
				want, rest = rest[4:4+n], rest[4+n:]
			}
		}
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("Next() = %d bytes, %v; want %v", len(frame), err, wantErr)
			}
			return
		}
		if err != nil || !bytes.Equal(frame, want) {
			t.Fatalf("Next() = %x, %v; want %x", frame, err, want)
		}
	}
}

// FuzzDecode feeds arbitrary payloads to Decode (spec section "CBOR
// profile"): it must never panic, must refuse with a protocol error code,
// and what it accepts must survive Encode and Decode unchanged.
func FuzzDecode(f *testing.F) {
	for _, p := range seedPayloads(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecode(t, in)
	})
}

// checkDecode is the property of FuzzDecode: m := Decode(in) either fails
// with CodeMalformed or CodeUnsupportedType, or Encode(m) decodes to the
// same message and encodes to the same bytes again.
func checkDecode(t *testing.T, in []byte) {
	t.Helper()
	m1, err := protocol.Decode(in)
	if err != nil {
		var pe *protocol.Error
		switch {
		case !errors.As(err, &pe):
			t.Fatalf("Decode(%x) = %v, not a *protocol.Error", in, err)
		case pe.Code == protocol.CodeUnsupportedType:
			if m1 == nil || m1.Type.Known() || m1.Body != nil {
				t.Fatalf("Decode(%x) = %+v, %v: an unsupported type must come with its envelope and no body", in, m1, err)
			}
		case pe.Code != protocol.CodeMalformed:
			t.Fatalf("Decode(%x) = %v, want code malformed or unsupported-type", in, err)
		}
		return
	}
	b1, err := protocol.Encode(m1)
	if err != nil {
		t.Fatalf("Encode(Decode(%x)) = %v", in, err)
	}
	m2, err := protocol.Decode(b1)
	if err != nil {
		t.Fatalf("Decode(%x) = %v, re-encoded from %x", b1, err, in)
	}
	want := *m1
	if want.Version == 0 {
		want.Version = protocol.Version // Encode stamps Version on an unversioned message
	}
	// CBOR has no nil: an absent byte string, array or map is sent
	// empty and comes back empty.
	if !equalMessages(&want, m2, true) {
		t.Fatalf("Decode(Encode(m)) = %s, want m = %s (input %x)", describe(m2), describe(&want), in)
	}
	b2, err := protocol.Encode(m2)
	if err != nil {
		t.Fatalf("Encode(%s) = %v", describe(m2), err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("Encode is not stable: %x then %x (input %x)", b1, b2, in)
	}
}

// decodeRegressions are the inputs the fuzzers found, kept as corpus files
// under testdata/fuzz/FuzzDecode and named here with what they showed.
var decodeRegressions = []struct {
	name string
	file string // in testdata/fuzz/FuzzDecode
	in   string // hex, the file's bytes
	// check states what the input showed about the codec.
	check func(t *testing.T, decoded, reencoded *protocol.Message)
}{
	{
		// An envelope without key 1 (and with only negative, ignored keys
		// besides the type) decodes with Version 0 and a zero body. Encode
		// stamps Version 1 on it, and the body's absent byte strings come
		// back as empty ones: equal on the wire, not in Go.
		name: "no version and no body",
		file: "fb849a5e98edfcee",
		in:   "a530300204313032303730",
		check: func(t *testing.T, decoded, reencoded *protocol.Message) {
			if decoded.Version != 0 || decoded.Type != protocol.TypeEnrollResponse {
				t.Errorf("Decode = %s, want version 0, type enroll-response", describe(decoded))
			}
			if reencoded.Version != protocol.Version {
				t.Errorf("version after Encode = %d, want %d", reencoded.Version, protocol.Version)
			}
			body, ok := decoded.Body.(*protocol.EnrollResponse)
			if !ok || body.Cert != nil {
				t.Errorf("decoded body = %+v, want a zero *EnrollResponse", decoded.Body)
			}
			again, ok := reencoded.Body.(*protocol.EnrollResponse)
			if !ok || again.Cert == nil || len(again.Cert) != 0 {
				t.Errorf("re-decoded body = %+v, want empty (not nil) byte strings", reencoded.Body)
			}
		},
	},
}

// TestDecodeRegressions replays each fuzzer finding by name, and checks that
// every corpus file of FuzzDecode is named in decodeRegressions.
func TestDecodeRegressions(t *testing.T) {
	named := make(map[string]bool)
	for _, c := range decodeRegressions {
		named[c.file] = true
		t.Run(c.name, func(t *testing.T) {
			in, err := hex.DecodeString(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := readCorpusBytes(t, filepath.Join("testdata", "fuzz", "FuzzDecode", c.file)); !bytes.Equal(got, in) {
				t.Fatalf("corpus file %s holds %x, want %x", c.file, got, in)
			}
			checkDecode(t, in)
			m1, err := protocol.Decode(in)
			if err != nil {
				t.Fatalf("Decode(%x) = %v", in, err)
			}
			b, err := protocol.Encode(m1)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := protocol.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, m1, m2)
		})
	}
	files, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzDecode"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, f := range files {
		if !named[f.Name()] {
			t.Errorf("corpus file testdata/fuzz/FuzzDecode/%s is not named in decodeRegressions", f.Name())
		}
	}
}

// readCorpusBytes returns the single []byte argument of a corpus file in
// the "go test fuzz v1" format.
func readCorpusBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a one-argument corpus file", path)
	}
	lit, ok := strings.CutPrefix(lines[1], "[]byte(")
	if !ok || !strings.HasSuffix(lit, ")") {
		t.Fatalf("%s: argument is not a []byte", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
