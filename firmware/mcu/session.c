//go:build ignore

/* session.c: see session.h. */
#include "session.h"

#include <string.h>

#include "apps.h"
#include "link.h"

/* ---- boot config ---- */

#define BC_SIZE 52u

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

bool boot_config_read(const void *addr, boot_config *out)
{
	const uint8_t *b = addr;
	if (memcmp(b, "WBCF", 4) != 0 || le16(b + 4) != 1 || le16(b + 6) != BC_SIZE) {
		return false;
	}
	if (link_crc32(0, b, 48) != le32(b + 48)) {
		return false;
	}
	uint8_t n = b[14];
	if (n == 0 || n > 32 || !proto_valid_name((const char *)b + 16, n)) {
		return false;
	}
	memcpy(out->device, b + 16, n);
	out->device[n] = '\0';
	out->ipv4 = (uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 | (uint32_t)b[10] << 8 | b[11];
	out->port = le16(b + 12);
	return true;
}

/* ---- session ---- */

#define HELLO_RETRY_MS 5000u
#define ACKS_MISSED 3u /* heartbeats without an ack before the session is over */

static struct {
	const char *device, *board, *firmware;
	session_io io;
	bool online;
	uint64_t next_id;
	uint64_t hello_id;      /* the last hello sent */
	uint64_t hello_first;   /* the first hello of this attempt to connect */
	uint32_t hello_at;      /* when the last hello went out */
	uint32_t heartbeat_ms;  /* from the welcome */
	uint32_t next_beat;     /* when the next heartbeat is due */
	uint32_t last_ack;      /* when the last heartbeat ack (or welcome) came */
	uint64_t seq;
	int64_t server_ms;   /* the gateway's clock at welcome_at */
	uint32_t welcome_at;
	uint32_t now;        /* the time of the event being handled */
} s;

/* Requests handled lately, by id: a retransmission of a command is acked
 * again without running it twice (docs/protocol.md, "Acks and retries").
 * Deploys and chunks are answered again from the state they left, which
 * the spec makes idempotent. */
#define SEEN 64u
static uint64_t seen[SEEN];
static uint32_t seen_next;

static bool seen_before(uint64_t id)
{
	for (uint32_t i = 0; i < SEEN; i++) {
		if (seen[i] == id) {
			return true;
		}
	}
	seen[seen_next++ % SEEN] = id;
	return false;
}

static proto_msg out; /* one message being built (too big for the stack) */
static uint8_t out_buf[8192];

static void encode_send(const proto_msg *m)
{
	size_t n;
	if (proto_encode(m, out_buf, sizeof out_buf, &n) != PROTO_OK) {
		s.io.log("session: cannot encode a message");
		return;
	}
	s.io.send(out_buf, n);
}

static void send_msg(void) { encode_send(&out); }

void session_send(proto_msg *m)
{
	if (!s.online) {
		return;
	}
	if (m->re == 0) {
		m->id = ++s.next_id;
	}
	if (m->type == PROTO_TELEMETRY && m->body.telemetry.time_ms == 0) {
		m->body.telemetry.time_ms = s.server_ms + (int64_t)(s.now - s.welcome_at);
	}
	encode_send(m);
}

static proto_text text(const char *z) { return (proto_text){z, strlen(z)}; }

static void send_hello(uint32_t now)
{
	memset(&out, 0, sizeof out);
	out.type = PROTO_HELLO;
	out.id = s.hello_id = ++s.next_id;
	if (s.hello_first == 0) {
		s.hello_first = s.hello_id;
	}
	out.body.hello.device = text(s.device);
	out.body.hello.board = text(s.board);
	out.body.hello.firmware = text(s.firmware);
	apps_hello(&out.body.hello);
	out.body.hello.min_version = PROTO_VERSION;
	out.body.hello.max_version = PROTO_VERSION;
	send_msg();
	s.hello_at = now;
}

static void send_error_reply(uint64_t re, uint16_t code, const char *why)
{
	memset(&out, 0, sizeof out);
	out.type = PROTO_ERROR;
	out.re = re;
	out.body.error.code = code;
	out.body.error.text = text(why);
	send_msg();
}

static void session_over(const char *why, uint32_t now)
{
	if (s.online) {
		s.io.log(why);
	}
	s.online = false;
	s.hello_first = 0;
	memset(seen, 0, sizeof seen); /* ids are per session */
	/* The next hello goes out at once after a lost session, then every
	 * HELLO_RETRY_MS. */
	s.hello_at = now - HELLO_RETRY_MS;
}

void session_init(const char *device, const char *board, const char *firmware, session_io io)
{
	memset(&s, 0, sizeof s);
	s.device = device;
	s.board = board;
	s.firmware = firmware;
	s.io = io;
	s.hello_at = 0u - HELLO_RETRY_MS;
}

void session_frame_too_large(uint32_t now)
{
	s.now = now;
	send_error_reply(0, PROTO_CODE_FRAME_TOO_LARGE, "frame above the board's limit");
	session_over("session: a frame above the limit came; saying hello again", now);
}

static proto_msg in; /* the message being handled */

void session_receive(const uint8_t *payload, size_t n, uint32_t now)
{
	s.now = now;
	proto_err err = proto_decode(payload, n, &in, NULL);
	if (err != PROTO_OK) {
		if (in.id != 0 && in.re == 0) {
			send_error_reply(in.id, proto_wire_code(err), proto_strerror(err));
		}
		s.io.log("session: a malformed message from the gateway was refused");
		return;
	}
	switch (in.type) {
	case PROTO_WELCOME:
		/* A slow gateway may answer an earlier hello of this attempt. */
		if (!s.online && s.hello_first != 0 && in.re >= s.hello_first && in.re <= s.hello_id) {
			s.hello_first = 0;
			s.online = true;
			s.heartbeat_ms = in.body.welcome.heartbeat_ms ? in.body.welcome.heartbeat_ms : 10000u;
			s.last_ack = now;
			s.next_beat = now + s.heartbeat_ms;
			s.server_ms = in.body.welcome.server_time;
			s.welcome_at = now;
			s.io.log("session: online");
		}
		return;
	case PROTO_HEARTBEAT_ACK:
		s.last_ack = now;
		return;
	case PROTO_ERROR:
		if (in.re == 0) { /* a notice: the gateway ends the session */
			session_over("session: ended by the gateway", now);
		}
		return;
	case PROTO_ACK:
		return;
	default:
		if (in.id == 0 || in.re != 0 || !s.online) {
			return;
		}
		if (seen_before(in.id) && (in.type == PROTO_START || in.type == PROTO_STOP || in.type == PROTO_REMOVE)) {
			memset(&out, 0, sizeof out);
			out.type = PROTO_ACK;
			out.re = in.id;
			send_msg();
			return;
		}
		apps_request(&in);
		return;
	}
}

void session_poll(uint32_t now)
{
	s.now = now;
	if (!s.online) {
		if (now - s.hello_at >= HELLO_RETRY_MS) {
			send_hello(now);
		}
		return;
	}
	if (now - s.last_ack > ACKS_MISSED * s.heartbeat_ms) {
		session_over("session: no heartbeat ack, saying hello again", now);
		return;
	}
	if ((int32_t)(now - s.next_beat) >= 0) {
		memset(&out, 0, sizeof out);
		out.type = PROTO_HEARTBEAT;
		out.id = ++s.next_id;
		out.body.heartbeat.seq = ++s.seq;
		out.body.heartbeat.uptime_ms = now;
		send_msg();
		s.next_beat = now + s.heartbeat_ms;
	}
}

uint32_t session_next_ms(uint32_t now)
{
	if (!s.online) {
		uint32_t since = now - s.hello_at;
		return since >= HELLO_RETRY_MS ? 0 : HELLO_RETRY_MS - since;
	}
	int32_t d = (int32_t)(s.next_beat - now);
	return d < 0 ? 0 : (uint32_t)d;
}

bool session_online(void) { return s.online; }
