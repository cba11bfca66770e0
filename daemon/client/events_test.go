package client

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll parses every event of stream, and the error that ended it.
func readAll(r io.Reader) ([]sseEvent, error) {
	sr := newSSEReader(r)
	var evs []sseEvent
	for {
		ev, err := sr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return evs, err
		}
		evs = append(evs, ev)
	}
}

// encodeSSE writes events so that parsing them gives them back: each
// event restates its id, names its type when it has one, and has a data
// line per line of its data.
func encodeSSE(evs []sseEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString("id: " + ev.ID + "\n")
		if ev.Event != "" {
			b.WriteString("event: " + ev.Event + "\n")
		}
		for _, line := range strings.Split(ev.Data, "\n") {
			b.WriteString("data: " + line + "\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestSSEParse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream string
		want   []sseEvent
	}{
		{"one event", "id: 1\nevent: resource\ndata: {}\n\n", []sseEvent{{ID: "1", Event: "resource", Data: "{}"}}},
		{"multi-line data", "data: a\ndata: b\ndata\ndata:c\n\n", []sseEvent{{Data: "a\nb\n\nc"}}},
		{"comments and keepalives", ": hello\n\n: keepalive\n\ndata: x\n: inside\n\n", []sseEvent{{Data: "x"}}},
		{"CRLF", "id: 7\r\ndata: x\r\n\r\n", []sseEvent{{ID: "7", Data: "x"}}},
		{"CR", "id: 7\rdata: x\r\rdata: y\r\r", []sseEvent{{ID: "7", Data: "x"}, {ID: "7", Data: "y"}}},
		{"id persists", "id: 3\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", []sseEvent{{ID: "3", Data: "a"}, {ID: "3", Data: "b"}, {ID: "", Data: "c"}}},
		{"id with NUL ignored", "id: 3\ndata: a\n\nid: 4\x005\ndata: b\n\n", []sseEvent{{ID: "3", Data: "a"}, {ID: "3", Data: "b"}}},
		{"one space dropped", "data:  two\nevent:x\n\n", []sseEvent{{Event: "x", Data: " two"}}},
		{"no data, no event", "event: ping\n\ndata: a\n\n", []sseEvent{{Data: "a"}}},
		{"unknown fields and retry", "retry: 100\nfoo: bar\ndata: a\n\n", []sseEvent{{Data: "a"}}},
		{"unfinished event dropped", "data: a\n\ndata: b\n", []sseEvent{{Data: "a"}}},
		{"unfinished line dropped", "data: a\n\ndata: b", []sseEvent{{Data: "a"}}},
		{"byte order mark", "\uFEFFdata: a\n\n", []sseEvent{{Data: "a"}}},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.stream), iotest.OneByteReader(strings.NewReader(tc.stream))} {
				got, err := readAll(r)
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Errorf("parse(%q) = %+v, %v; want %+v", tc.stream, got, err, tc.want)
				}
			}
		})
	}
}

func TestSSETooLarge(t *testing.T) {
	long := "data: " + strings.Repeat("x", maxSSELine) + "\n\n"
	if _, err := readAll(strings.NewReader(long)); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("parse(line of %d bytes) = %v, want ErrEventTooLarge", len(long), err)
	}
	many := strings.Repeat("data: "+strings.Repeat("x", 1<<20)+"\n", 9) + "\n"
	if _, err := readAll(strings.NewReader(many)); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("parse(event of 9 MiB) = %v, want ErrEventTooLarge", err)
	}
}

func FuzzSSE(f *testing.F) {
	for _, seed := range []string{
		"id: 1\nevent: resource\ndata: {\"seq\":1}\n\n",
		"data: a\ndata: b\n\n: keepalive\n\n",
		"id: 7\r\ndata: x\r\n\r\nid: 8\rdata: y\r\r",
		"\uFEFFid\ndata\n\n",
		"data:  x\nevent:y\nid: 4\x005\n\n",
		"data: a\n\ndata: b",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		first, err := readAll(strings.NewReader(string(stream)))
		if err != nil {
			return
		}
		for _, ev := range first {
			if strings.ContainsAny(ev.ID, "\r\n\x00") || strings.ContainsAny(ev.Event, "\r\n") || strings.Contains(ev.Data, "\r") {
				t.Fatalf("parse(%q) gave an event with a line break or NUL in a field: %+v", stream, ev)
			}
		}
		encoded := encodeSSE(first)
		second, err := readAll(strings.NewReader(encoded))
		if err != nil {
			t.Fatalf("parse(encode(parse(%q))) = %v", stream, err)
		}
		if len(first) == 0 && len(second) == 0 {
			return
		}
		if !reflect.DeepEqual(first, second) {
			t.Fatalf("parse -> encode -> parse unstable for %q:\nfirst  %+v\nsecond %+v", stream, first, second)
		}
	})
}
