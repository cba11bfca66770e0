package renode

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestConsoleScrollback(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		writes []string
		want   string
	}{
		{"empty", 8, nil, ""},
		{"fits", 8, []string{"abc", "de"}, "abcde"},
		{"exactly full", 8, []string{"abcd", "efgh"}, "abcdefgh"},
		{"wraps", 8, []string{"abcdef", "ghij"}, "cdefghij"},
		{"wraps twice", 4, []string{"ab", "cd", "ef", "gh", "i"}, "fghi"},
		{"write larger than ring", 4, []string{"ab", "0123456789"}, "6789"},
		{"write of ring size after wrap", 4, []string{"abc", "wxyz"}, "wxyz"},
		{"empty write", 4, []string{"ab", "", "c"}, "abc"},
		{"single bytes", 3, strings.Split("abcdefg", ""), "efg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConsole(tt.size)
			for _, w := range tt.writes {
				c.Write([]byte(w))
			}
			if got := string(c.History()); got != tt.want {
				t.Errorf("History() = %q, want %q", got, tt.want)
			}
			h, _, cancel := c.Subscribe()
			defer cancel()
			if string(h) != tt.want {
				t.Errorf("Subscribe() history = %q, want %q", h, tt.want)
			}
		})
	}
}

func TestConsoleDefaultScrollback(t *testing.T) {
	for _, size := range []int{0, -1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := NewConsole(size)
			c.Write(bytes.Repeat([]byte{'x'}, DefaultScrollback+10))
			if got := len(c.History()); got != DefaultScrollback {
				t.Errorf("NewConsole(%d) keeps %d bytes, want %d", size, got, DefaultScrollback)
			}
		})
	}
}

func TestConsoleWriteCopies(t *testing.T) {
	c := NewConsole(16)
	_, live, cancel := c.Subscribe()
	defer cancel()
	p := []byte("abc")
	c.Write(p)
	copy(p, "xyz")
	if got := string(<-live); got != "abc" {
		t.Errorf("live got %q after the caller reused its buffer, want %q", got, "abc")
	}
	if got := string(c.History()); got != "abc" {
		t.Errorf("History() = %q after the caller reused its buffer, want %q", got, "abc")
	}
}

// Every subscriber, whenever it subscribes, sees history + live equal to
// the whole stream: no byte lost or repeated between the two. There are
// fewer writes than SubscriberBuffer, so no subscriber can be dropped.
func TestConsoleConcurrentSubscribers(t *testing.T) {
	const writers, writes, subscribers = 4, SubscriberBuffer/4 - 1, 8
	c := NewConsole(1 << 20) // large enough to hold everything
	var wg sync.WaitGroup
	got := make([][]byte, subscribers)
	start := make(chan struct{})
	for i := range subscribers {
		wg.Go(func() {
			<-start
			for range i * 10 {
				c.History() // subscribe at different moments
			}
			h, live, cancel := c.Subscribe()
			defer cancel()
			buf := bytes.Clone(h)
			for p := range live { // ends when the console closes
				buf = append(buf, p...)
			}
			got[i] = buf
		})
	}
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Go(func() {
			<-start
			for n := range writes {
				c.Write(fmt.Appendf(nil, "<%d:%d>", w, n))
			}
		})
	}
	close(start)
	writersWG.Wait()
	c.Close()
	wg.Wait()
	want := c.History()
	if n := bytes.Count(want, []byte("<")); n != writers*writes {
		t.Fatalf("History() holds %d writes, want %d", n, writers*writes)
	}
	for i, g := range got {
		if !bytes.Equal(g, want) {
			t.Errorf("subscriber %d saw %d bytes, want the %d-byte stream", i, len(g), len(want))
		}
	}
}

func TestConsoleSlowSubscriberDropped(t *testing.T) {
	c := NewConsole(0)
	_, slow, cancelSlow := c.Subscribe()
	defer cancelSlow()
	_, fast, cancelFast := c.Subscribe()
	defer cancelFast()
	var fastGot int
	for i := range SubscriberBuffer + 10 {
		c.Write([]byte{byte(i)}) // must not block on the slow subscriber
		<-fast
		fastGot++
	}
	n := 0
	for range slow {
		n++
	}
	if n != SubscriberBuffer {
		t.Errorf("slow subscriber got %d writes before its channel closed, want %d", n, SubscriberBuffer)
	}
	if fastGot != SubscriberBuffer+10 {
		t.Errorf("fast subscriber got %d writes, want %d", fastGot, SubscriberBuffer+10)
	}
	c.Write([]byte("after"))
	if p, ok := <-fast; !ok || string(p) != "after" {
		t.Errorf("fast subscriber got %q, %v after the slow one was dropped", p, ok)
	}
	cancelSlow() // cancel after the drop is harmless
}

func TestConsoleCancel(t *testing.T) {
	c := NewConsole(0)
	_, live, cancel := c.Subscribe()
	cancel()
	cancel()
	c.Write([]byte("x"))
	if p, ok := <-live; ok {
		t.Errorf("cancelled subscriber received %q", p)
	}
}

// lockedBuffer is a writer safe for concurrent use that records what the
// board would have received.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type brokenWriter struct{}

var errBroken = errors.New("broken")

func (brokenWriter) Write([]byte) (int, error) { return 0, errBroken }

func TestConsoleInput(t *testing.T) {
	c := NewConsole(0)
	if err := c.Input([]byte("x")); !errors.Is(err, ErrBoardOff) {
		t.Fatalf("Input without a board = %v, want ErrBoardOff", err)
	}
	var board lockedBuffer
	c.SetInput(&board)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := c.Input([]byte("help\r")); err != nil {
				t.Errorf("Input = %v", err)
			}
		})
	}
	wg.Wait()
	if got, want := board.String(), strings.Repeat("help\r", 10); got != want {
		t.Errorf("board received %q, want %q", got, want)
	}
	c.SetInput(brokenWriter{})
	if err := c.Input([]byte("x")); !errors.Is(err, errBroken) {
		t.Errorf("Input to a failing board = %v, want it to wrap %v", err, errBroken)
	}
	c.SetInput(nil)
	if err := c.Input([]byte("x")); !errors.Is(err, ErrBoardOff) {
		t.Errorf("Input after SetInput(nil) = %v, want ErrBoardOff", err)
	}
	c.SetInput(&board)
	c.Close()
	if err := c.Input([]byte("x")); !errors.Is(err, ErrBoardOff) {
		t.Errorf("Input after Close = %v, want ErrBoardOff", err)
	}
}

func TestConsoleClose(t *testing.T) {
	c := NewConsole(0)
	c.Write([]byte("boot\r\n"))
	_, live, cancel := c.Subscribe()
	defer cancel()
	c.Close()
	c.Close()
	if _, ok := <-live; ok {
		t.Error("live channel still open after Close")
	}
	c.Write([]byte("late"))
	h, live2, cancel2 := c.Subscribe()
	defer cancel2()
	if string(h) != "boot\r\n" {
		t.Errorf("history after Close = %q, want %q", h, "boot\r\n")
	}
	if _, ok := <-live2; ok {
		t.Error("Subscribe after Close returned an open channel")
	}
}
