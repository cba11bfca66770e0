package renode

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// DefaultScrollback is the scrollback of a Console made with a size of zero
// or less, bytes.
const DefaultScrollback = 64 << 10

// SubscriberBuffer is how many writes a subscriber's live channel holds
// before the subscriber counts as too slow and is dropped.
const SubscriberBuffer = 256

// ErrBoardOff is returned by Console.Input when no board input is attached:
// the board is not running, or the console is closed.
var ErrBoardOff = errors.New("board is off")

// Console is a board's UART: the byte stream it prints, as the daemon keeps
// it, and the way to type into it.
//
// Output (Write) goes into a bounded scrollback ring that keeps the most
// recent bytes and is fanned out to live subscribers. Input (Input) goes to
// the writer attached with SetInput, normally the board's serial input.
//
// All methods are safe for concurrent use. The zero value is not usable;
// make one with NewConsole.
type Console struct {
	mu     sync.Mutex
	ring   []byte // len is the scrollback size
	head   int    // where the next byte goes
	full   bool   // the ring has wrapped: ring[head:] is older than ring[:head]
	subs   map[*subscriber]struct{}
	in     io.Writer
	closed bool

	inMu sync.Mutex // serializes writes to the board input
}

type subscriber struct{ ch chan []byte }

// NewConsole returns a console keeping the last scrollback bytes of output;
// scrollback <= 0 means DefaultScrollback.
func NewConsole(scrollback int) *Console {
	if scrollback <= 0 {
		scrollback = DefaultScrollback
	}
	return &Console{ring: make([]byte, scrollback), subs: map[*subscriber]struct{}{}}
}

// Write records output of the board: p is appended to the scrollback (the
// oldest bytes fall out when it is full) and sent to every subscriber. It
// never blocks on a subscriber: one whose channel already holds
// SubscriberBuffer writes is dropped and its channel closed; it may
// subscribe again and find what it missed in the history, as far as the
// scrollback reaches. Write copies p. After Close, Write discards p.
func (c *Console) Write(p []byte) {
	if len(p) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.appendRing(p)
	if len(c.subs) == 0 {
		return
	}
	data := append([]byte(nil), p...) // one copy, shared read-only by every subscriber
	for s := range c.subs {
		select {
		case s.ch <- data:
		default:
			delete(c.subs, s)
			close(s.ch)
		}
	}
}

// appendRing copies p into the ring; c.mu is held.
func (c *Console) appendRing(p []byte) {
	if len(p) >= len(c.ring) {
		copy(c.ring, p[len(p)-len(c.ring):])
		c.head, c.full = 0, true
		return
	}
	n := copy(c.ring[c.head:], p)
	if n < len(p) {
		copy(c.ring, p[n:])
		c.full = true
	}
	c.head = (c.head + len(p)) % len(c.ring)
	if c.head == 0 {
		c.full = true
	}
}

// History returns a copy of the scrollback, oldest byte first.
func (c *Console) History() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.history()
}

func (c *Console) history() []byte {
	if !c.full {
		return append([]byte(nil), c.ring[:c.head]...)
	}
	out := make([]byte, 0, len(c.ring))
	out = append(out, c.ring[c.head:]...)
	return append(out, c.ring[:c.head]...)
}

// Subscribe returns the scrollback and a channel of the output written
// after it: taken atomically, so that history followed by everything
// received on live is the stream without a gap or a repeated byte. The
// slices received are shared with other subscribers and must not be
// modified.
//
// live is closed when cancel is called, when the console is closed, or
// when the subscriber fell SubscriberBuffer writes behind and was dropped.
// cancel may be called any number of times, from any goroutine; call it
// when done so the console stops sending.
func (c *Console) Subscribe() (history []byte, live <-chan []byte, cancel func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	history = c.history()
	s := &subscriber{ch: make(chan []byte, SubscriberBuffer)}
	if c.closed {
		close(s.ch)
		return history, s.ch, func() {}
	}
	c.subs[s] = struct{}{}
	return history, s.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.subs[s]; ok {
			delete(c.subs, s)
			close(s.ch)
		}
	}
}

// SetInput attaches w as the board's input, where Input sends typed bytes;
// nil detaches it. The backend attaches the board's serial input when the
// board starts and detaches it when the board stops. The console does not
// close w.
func (c *Console) SetInput(w io.Writer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.in = w
}

// Input sends p to the board as typed input. It returns ErrBoardOff when no
// input is attached or the console is closed. Concurrent calls are
// serialized, so each p arrives whole. A board that does not read its input
// makes Input wait as long as the attached writer does.
func (c *Console) Input(p []byte) error {
	c.mu.Lock()
	w, closed := c.in, c.closed
	c.mu.Unlock()
	if closed || w == nil {
		return ErrBoardOff
	}
	c.inMu.Lock()
	defer c.inMu.Unlock()
	if _, err := w.Write(p); err != nil {
		return fmt.Errorf("console input: %w", err)
	}
	return nil
}

// Close ends the console: the input is detached, every subscriber's channel
// is closed and later output is discarded. The scrollback stays readable
// through History and Subscribe. Close is idempotent.
func (c *Console) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.in = nil
	for s := range c.subs {
		delete(c.subs, s)
		close(s.ch)
	}
}
