package protocol

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Request and Send once the session has ended.
var ErrClosed = errors.New("session closed")

// ErrEnd, returned by a Handler, ends the session without an error notice;
// Serve then returns nil.
var ErrEnd = errors.New("end of session")

// Backoff is the retry schedule of Request (spec section "Acks and
// retries"): the first retransmission after Initial, each later one after
// twice the previous wait up to Max, with ±20% jitter; all bounded by the
// request's context.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// DefaultBackoff suits a stream transport, where a retransmission only
// helps when the peer lost a message to a restart.
var DefaultBackoff = Backoff{Initial: 2 * time.Second, Max: 16 * time.Second}

// Next returns the wait after d; d == 0 gives the first wait.
func (b Backoff) Next(d time.Duration) time.Duration {
	if d == 0 {
		return b.Initial
	}
	return min(2*d, b.Max)
}

// Jitter spreads d by ±20% so that many peers do not retry in step.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/5 + rand.N(2*d/5+1)
}

// ConnConfig tunes a Conn. Zero values take the defaults named.
type ConnConfig struct {
	MaxFrame     int           // largest frame accepted; MaxFrame
	ReadTimeout  time.Duration // longest silence before Serve fails; 0 = none
	WriteTimeout time.Duration // deadline of one frame write; 10s
	Backoff      Backoff       // retries of Request; DefaultBackoff
	// RefuseUnknown, when set, ends the session at the first message of a
	// type this version does not know, answering it with this error; by
	// default such a message is answered unsupported-type and skipped (a
	// newer peer carries on). A peer that has not authenticated has no
	// use for that leniency.
	RefuseUnknown *Error
}

// Conn is one protocol session over a byte stream (normally a *tls.Conn).
// Serve reads and dispatches; Send, Reply and Request may be called from any
// goroutine while Serve runs. Close ends the session and the stream.
type Conn struct {
	nc  net.Conn
	cfg ConnConfig

	wmu    sync.Mutex
	nextID atomic.Uint64

	mu          sync.Mutex
	pending     map[uint64]chan *Message
	closed      bool
	done        chan struct{}
	version     atomic.Uint32
	readTimeout atomic.Int64
	seen        recent
}

// NewConn wraps nc. The Conn owns nc from then on.
func NewConn(nc net.Conn, cfg ConnConfig) *Conn {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = MaxFrame
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	c := &Conn{nc: nc, cfg: cfg, pending: make(map[uint64]chan *Message), done: make(chan struct{})}
	c.version.Store(Version)
	c.readTimeout.Store(int64(cfg.ReadTimeout))
	return c
}

// SetReadTimeout changes the longest silence Serve accepts, from the next
// read on; 0 means none.
func (c *Conn) SetReadTimeout(d time.Duration) { c.readTimeout.Store(int64(d)) }

// NetConn returns the underlying stream, e.g. to read TLS state.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Done is closed when the session has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// SetVersion sets the version stamped on outgoing envelopes after
// negotiation.
func (c *Conn) SetVersion(v uint16) { c.version.Store(uint32(v)) }

// Close ends the session: pending requests fail with ErrClosed and the
// stream is closed. It is safe to call more than once.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	c.mu.Unlock()
	return c.nc.Close()
}

// CloseWithError sends err to the peer as an error notice (best effort,
// bounded by a short deadline) and closes the session.
func (c *Conn) CloseWithError(err error) error {
	_ = c.send(&Message{Type: TypeError, Body: errorBody(err)}, time.Second)
	return c.Close()
}

func errorBody(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: CodeInternal, Text: err.Error()}
}

// Send writes m, giving it a fresh ID when it has none. The message is not
// tracked for a reply; use Request for that.
func (c *Conn) Send(m *Message) error {
	if m.ID == 0 && m.Re == 0 {
		m.ID = c.nextID.Add(1)
	}
	return c.send(m, c.cfg.WriteTimeout)
}

// Notify sends a message of type t that expects no reply.
func (c *Conn) Notify(t Type, body any) error {
	return c.Send(&Message{Type: t, Body: body})
}

// Reply answers req with a message of type t. The reply is remembered, so
// that a retransmission of req is answered with it again instead of being
// handled twice.
func (c *Conn) Reply(req *Message, t Type, body any) error {
	if req.ID == 0 {
		return fmt.Errorf("reply %s: the message has no id to answer", t)
	}
	m := &Message{Type: t, ID: c.nextID.Add(1), Re: req.ID, Body: body}
	c.seen.answer(req.ID, m)
	return c.send(m, c.cfg.WriteTimeout)
}

// ReplyError answers req with an error message; err's *Error code is kept,
// any other error becomes CodeInternal.
func (c *Conn) ReplyError(req *Message, err error) error {
	return c.Reply(req, TypeError, errorBody(err))
}

func (c *Conn) send(m *Message, timeout time.Duration) error {
	if m.Version == 0 {
		m.Version = uint16(c.version.Load())
	}
	// The frame is built in one pooled buffer, header first, and written
	// with one Write, so that TLS carries it in as few records as it can.
	buf := getBuffer()
	defer putBuffer(buf)
	buf.Write(make([]byte, headerLen))
	if err := encodeTo(buf, m); err != nil {
		return err
	}
	frame := buf.Bytes()
	n := len(frame) - headerLen
	if n > c.cfg.MaxFrame {
		return fmt.Errorf("send %s: %d bytes exceed the %d byte frame limit", m.Type, n, c.cfg.MaxFrame)
	}
	binary.BigEndian.PutUint32(frame, uint32(n))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.nc.Write(frame); err != nil {
		return fmt.Errorf("send %s: %w", m.Type, err)
	}
	return nil
}

// Heartbeats is a device's side of the session's liveness (spec section
// "Heartbeats and timeouts"): it sends a heartbeat every interval, the first after
// first, until ctx ends or the session does, and then returns nil. next
// makes each heartbeat from its sequence number (1, 2, ...) and the round
// trip of the one before (0 for the first). A heartbeat unanswered for
// timeout (3 intervals when 0) ends the loop with its error, and the caller
// decides what that means for the session. An interval of 0 sends none.
func (c *Conn) Heartbeats(ctx context.Context, interval, timeout, first time.Duration, next func(seq uint64, rtt time.Duration) *Heartbeat) error {
	if interval <= 0 {
		return nil
	}
	if timeout <= 0 {
		timeout = 3 * interval
	}
	t := time.NewTimer(first)
	defer t.Stop()
	var rtt time.Duration
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return nil
		case <-c.Done():
			return nil
		case <-t.C:
		}
		t.Reset(interval)
		began := time.Now()
		rctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := c.Request(rctx, TypeHeartbeat, next(seq, rtt))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("heartbeat %d unanswered: %w", seq, err)
		}
		rtt = time.Since(began)
	}
}

// Request sends a message of type t and waits for its reply, retransmitting
// the same message (same ID) on the Backoff schedule until a reply arrives
// or ctx ends. A reply of TypeError is returned as its *Error.
func (c *Conn) Request(ctx context.Context, t Type, body any) (*Message, error) {
	m := &Message{Type: t, ID: c.nextID.Add(1), Body: body}
	ch := make(chan *Message, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pending[m.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, m.ID)
		c.mu.Unlock()
	}()

	var wait time.Duration
	for {
		if err := c.send(m, c.cfg.WriteTimeout); err != nil {
			return nil, err
		}
		wait = c.cfg.Backoff.Next(wait)
		timer := time.NewTimer(Jitter(wait))
		select {
		case r := <-ch:
			timer.Stop()
			return reply(r)
		case <-c.done:
			timer.Stop()
			select {
			case r := <-ch: // the reply came just before the end
				return reply(r)
			default:
				return nil, ErrClosed
			}
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("%s %d unanswered: %w", t, m.ID, ctx.Err())
		case <-timer.C:
		}
	}
}

// reply turns an error reply into its *Error.
func reply(r *Message) (*Message, error) {
	if e, ok := r.Body.(*Error); ok {
		return r, e
	}
	return r, nil
}

// Handler processes one message that is not a reply. It runs on the Serve
// goroutine: slow work belongs in a goroutine of its own. A non-nil error
// ends the session after it is sent to the peer.
type Handler func(*Message) error

// Serve reads messages until the stream ends, ctx is cancelled or h fails.
// Replies go to the Request waiting for them (late duplicates are dropped);
// a message of an unknown type is answered with an error and skipped; a
// malformed or oversize frame is answered with an error notice and ends the
// session. Serve closes the Conn before it returns; it returns nil when the
// peer closed cleanly or ctx was cancelled.
func (c *Conn) Serve(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	fr := NewFrameReader(c.nc, c.cfg.MaxFrame)
	for {
		if d := time.Duration(c.readTimeout.Load()); d > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(d))
		}
		frame, err := fr.Next()
		if err != nil {
			var pe *Error
			switch {
			case errors.As(err, &pe):
				_ = c.CloseWithError(pe)
				return err
			case errors.Is(err, io.EOF), ctx.Err() != nil, c.isClosed():
				return nil
			default:
				return fmt.Errorf("read frame: %w", err)
			}
		}
		m, err := Decode(frame)
		if err != nil {
			if m != nil && CodeOf(err) == CodeUnsupportedType && c.cfg.RefuseUnknown != nil {
				return c.refuse(m, c.cfg.RefuseUnknown)
			}
			if m != nil && CodeOf(err) == CodeUnsupportedType {
				if m.Re == 0 && m.ID != 0 {
					_ = c.ReplyError(m, err)
				}
				continue
			}
			_ = c.CloseWithError(err)
			return err
		}
		if m.Re != 0 {
			c.deliver(m)
			continue
		}
		if m.ID != 0 {
			if known, reply := c.seen.check(m.ID); known {
				// A retransmission: answer it as before; if the first copy
				// is still being handled its answer is on the way.
				if reply != nil {
					_ = c.send(reply, c.cfg.WriteTimeout)
				}
				continue
			}
		}
		if e, ok := m.Body.(*Error); ok {
			// An error that answers nothing is the peer's last word.
			return fmt.Errorf("peer ended the session: %w", e)
		}
		if err := h(m); err != nil {
			if errors.Is(err, ErrEnd) {
				return nil
			}
			return c.refuse(m, err)
		}
	}
}

// refuse answers m with err before the session ends: as a reply when m
// has an id to answer, as an error notice otherwise.
func (c *Conn) refuse(m *Message, err error) error {
	answer := &Message{Type: TypeError, Body: errorBody(err)}
	if m.ID != 0 && m.Re == 0 {
		answer.ID, answer.Re = c.nextID.Add(1), m.ID
	}
	_ = c.send(answer, time.Second)
	return err
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *Conn) deliver(m *Message) {
	c.mu.Lock()
	ch, ok := c.pending[m.Re]
	c.mu.Unlock()
	if ok {
		select {
		case ch <- m:
		default: // a reply to a retransmission; the first one won
		}
	}
}

// recent remembers the IDs of the messages handled lately and the
// replies sent to them (spec section "Acks and retries": a retransmission
// is answered, never handled twice). A requester retransmits within its
// request's deadline (30 s at most), so an ID is remembered for recentFor
// and no longer: an idle session, which handles a heartbeat every few
// seconds, holds a few entries instead of a table. At most recentIDs are
// kept. Only the Serve goroutine checks; Reply may answer from any
// goroutine.
type recent struct {
	mu      sync.Mutex
	entries []recentEntry // in the order handled
}

type recentEntry struct {
	id    uint64
	at    time.Time
	reply *Message // nil: handled, not yet answered
}

const (
	// recentIDs bounds how many handled messages are remembered.
	recentIDs = 256
	// recentFor is how long a handled message is remembered: past the
	// longest request deadline (30 s), no copy of it can come.
	recentFor = 32 * time.Second
)

// check records id as handled and reports whether it was already, with
// the reply sent to it if any.
func (r *recent) check(id uint64) (known bool, reply *Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	drop := 0
	for drop < len(r.entries) && (now.Sub(r.entries[drop].at) > recentFor || len(r.entries)-drop >= recentIDs) {
		drop++
	}
	switch {
	case drop == len(r.entries):
		r.entries = r.entries[:0]
		if cap(r.entries) > 8 {
			r.entries = nil // a burst is over: give its room back
		}
	case drop > 0:
		r.entries = append(r.entries[:0], r.entries[drop:]...)
	}
	for _, e := range r.entries {
		if e.id == id {
			return true, e.reply
		}
	}
	r.entries = append(r.entries, recentEntry{id: id, at: now})
	return false, nil
}

// answer stores the reply to a handled id.
func (r *recent) answer(id uint64, reply *Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.entries {
		if r.entries[i].id == id {
			r.entries[i].reply = reply
		}
	}
}
