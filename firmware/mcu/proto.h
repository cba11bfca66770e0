/*
 * proto.h: the messages of the Wasmbed southbound protocol, version 1
 * (docs/protocol.md, sections "Envelope" and "Message types"), as fixed-size
 * C structs, with their CBOR encoding and decoding. The Go reference is
 * gateway/protocol (messages.go, codec.go).
 *
 * Decoded strings and byte strings are views into the decoded buffer: a
 * decoded proto_msg is valid only while that buffer is. For encoding, views
 * point into the caller's memory. Nothing is allocated; the only bounded
 * arrays are Hello.Apps, Hello.Capabilities and Telemetry.Values, sized by
 * PROTO_MAX_APPS, PROTO_MAX_CAPS and PROTO_MAX_VALUES.
 *
 * All functions are reentrant: no global state.
 */
#ifndef WASMBED_PROTO_H
#define WASMBED_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cbor.h"

#define PROTO_VERSION 1

/* Limits of spec section "Limits" (gateway/protocol/frame.go). */
#define PROTO_MAX_FRAME 65536u /* largest payload of one frame, bytes */
#define PROTO_MAX_CHUNK 32768u /* largest Chunk.Data, bytes */
#define PROTO_MAX_NAME 63u     /* device and app names (proto_valid_name) */

/*
 * Array bounds of this device. The wire allows 256 elements; these are what
 * the firmware sends (the Go device sends at most 32 telemetry names of 1 to
 * 64 bytes, firmware/sandbox). Decoding more elements than fit is
 * PROTO_ERR_LIMIT; the device never receives these messages anyway.
 */
#define PROTO_MAX_APPS 8            /* Hello.Apps */
#define PROTO_MAX_CAPS 8            /* Hello.Capabilities */
#define PROTO_MAX_VALUES 32         /* Telemetry.Values */
#define PROTO_MAX_VALUE_NAME 64u    /* bytes of one telemetry name (encoding) */

/* Message types (spec section "Message types"). */
enum {
	PROTO_HELLO = 1,
	PROTO_WELCOME = 2,
	PROTO_ENROLL_REQUEST = 3,
	PROTO_ENROLL_RESPONSE = 4,
	PROTO_HEARTBEAT = 5,
	PROTO_HEARTBEAT_ACK = 6,
	PROTO_DEPLOY = 7,
	PROTO_CHUNK = 8,
	PROTO_DEPLOY_STATUS = 9,
	PROTO_START = 10,
	PROTO_STOP = 11,
	/* 12 was rollback: retired, never reused. */
	PROTO_APP_STATUS = 13,
	PROTO_TELEMETRY = 14,
	PROTO_CONSOLE = 15,
	PROTO_ACK = 16,
	PROTO_ERROR = 17,
	PROTO_RENEW_REQUEST = 18,
	PROTO_RENEW_RESPONSE = 19,
	PROTO_REMOVE = 20
};

/* App states (spec section "App state machine"). */
enum {
	PROTO_STATE_UNKNOWN = 0,
	PROTO_STATE_TRANSFERRING = 1,
	PROTO_STATE_VERIFYING = 2,
	PROTO_STATE_RUNNING = 3,
	PROTO_STATE_STOPPED = 4,
	PROTO_STATE_EXITED = 5,
	PROTO_STATE_FAILED = 6
};

/* Error codes on the wire (spec section "Error codes"). */
enum {
	PROTO_CODE_MALFORMED = 1,
	PROTO_CODE_FRAME_TOO_LARGE = 2,
	PROTO_CODE_UNSUPPORTED_VERSION = 3,
	PROTO_CODE_UNSUPPORTED_TYPE = 4,
	PROTO_CODE_UNAUTHENTICATED = 5,
	PROTO_CODE_ENROLL_REFUSED = 6,
	PROTO_CODE_REVOKED = 7,
	PROTO_CODE_HASH_MISMATCH = 8,
	PROTO_CODE_INVALID_MODULE = 9,
	PROTO_CODE_TOO_LARGE = 10,
	PROTO_CODE_UNKNOWN_APP = 11,
	PROTO_CODE_BAD_REQUEST = 12,
	PROTO_CODE_IDENTITY_MISMATCH = 13,
	PROTO_CODE_UNEXPECTED = 14,
	PROTO_CODE_INTERNAL = 15,
	PROTO_CODE_REPLACED = 16
};

/* Result of proto_decode and proto_encode. */
typedef enum {
	PROTO_OK = 0,
	/* Decoding: the payload breaks the CBOR profile or a field has the
	 * wrong type. Answer with an error notice malformed (1), then close. */
	PROTO_ERR_MALFORMED,
	/* Decoding: a type this version does not know; the envelope is set.
	 * Answer with an error reply unsupported-type (4) and go on. */
	PROTO_ERR_UNSUPPORTED_TYPE,
	/* Decoding: well formed, but an array has more elements than this
	 * device's struct holds; the envelope is set. Answer bad-request (12). */
	PROTO_ERR_LIMIT,
	/* Encoding: the output buffer is too small. */
	PROTO_ERR_NO_SPACE,
	/* Encoding: the message cannot be sent as it is (unknown type, text
	 * that is not UTF-8, too many elements, a bad telemetry name). */
	PROTO_ERR_INVALID
} proto_err;

const char *proto_strerror(proto_err e);

/* The wire error code to answer a decoding error with: 1, 4 or 12; 15
 * (internal) for other values. */
uint16_t proto_wire_code(proto_err e);

/* Name of a message type ("hello", ...), or NULL when unknown. */
const char *proto_type_name(uint16_t type);
bool proto_type_known(uint16_t type);

/* A device or app name: 1 to 63 bytes of a-z, 0-9 and '-', a letter or
 * digit at both ends (pki.ValidDeviceName). */
bool proto_valid_name(const char *s, size_t n);

/* Text: valid UTF-8, not NUL-terminated. Bytes: opaque. Both are views. */
typedef struct {
	const char *p;
	size_t n;
} proto_text;

typedef struct {
	const uint8_t *p;
	size_t n;
} proto_bytes;

/* Field names and key numbers follow gateway/protocol/messages.go. */

typedef struct { /* Limits, nested in Deploy and AppInfo; 0 = device default */
	uint32_t memory_pages; /* 1, 64 KiB pages */
	uint32_t call_ms;      /* 2 */
	uint32_t period_ms;    /* 3 */
} proto_limits;

typedef struct { /* AppInfo: app-status (13) and Hello.Apps */
	proto_text app;      /* 1 */
	proto_text version;  /* 2 */
	proto_bytes sha256;  /* 3, 32 bytes */
	uint8_t state;       /* 4, PROTO_STATE_* */
	proto_text reason;   /* 5, opt */
	proto_text previous; /* 6, opt: version kept for rollback */
	uint64_t received;   /* 7, opt: bytes of an unfinished transfer */
	proto_limits limits; /* 8, opt: what the current version runs under */
} proto_app_info;

typedef struct { /* Hello (1) */
	proto_text device;                      /* 1 */
	proto_text board;                       /* 2, opt */
	proto_text caps[PROTO_MAX_CAPS];        /* 3, opt */
	uint16_t n_caps;
	proto_text firmware;                    /* 4, opt */
	proto_app_info apps[PROTO_MAX_APPS];    /* 5, opt */
	uint16_t n_apps;
	uint16_t min_version;                   /* 6 */
	uint16_t max_version;                   /* 7 */
	uint64_t max_module;                    /* 8, opt: bytes */
	int64_t cert_expiry;                    /* 9, opt: unix seconds */
} proto_hello;

typedef struct { /* Welcome (2) */
	uint16_t version;     /* 1 */
	uint32_t heartbeat_ms; /* 2 */
	uint32_t timeout_ms;  /* 3 */
	uint32_t max_frame;   /* 4, bytes */
	int64_t server_time;  /* 5, unix ms */
} proto_welcome;

typedef struct { /* EnrollRequest (3) */
	proto_text token; /* 1 */
	proto_bytes csr;  /* 2, DER */
} proto_enroll_request;

typedef struct { /* EnrollResponse (4) */
	proto_text device; /* 1 */
	proto_bytes cert;  /* 2, DER */
	proto_bytes ca;    /* 3, DER */
} proto_enroll_response;

typedef struct { /* Heartbeat (5) */
	uint64_t seq;       /* 1 */
	uint64_t uptime_ms; /* 2, opt */
	uint64_t rtt_micro; /* 3, opt */
} proto_heartbeat;

typedef struct { /* HeartbeatAck (6) */
	int64_t server_time; /* 1, unix ms */
} proto_heartbeat_ack;

typedef struct { /* Deploy (7) */
	proto_text app;      /* 1 */
	proto_text version;  /* 2 */
	proto_bytes sha256;  /* 3 */
	uint64_t size;       /* 4, bytes */
	proto_limits limits; /* 5, opt: omitted when all zero */
} proto_deploy;

typedef struct { /* Chunk (8) */
	proto_text app;     /* 1 */
	proto_bytes sha256; /* 2 */
	uint64_t offset;    /* 3, bytes */
	proto_bytes data;   /* 4, 1..PROTO_MAX_CHUNK bytes by the spec; the caller checks */
} proto_chunk;

typedef struct { /* DeployStatus (9) */
	proto_text app;     /* 1 */
	proto_text version; /* 2 */
	proto_bytes sha256; /* 3 */
	uint8_t state;      /* 4 */
	uint64_t received;  /* 5, bytes held */
	proto_text reason;  /* 6, opt */
} proto_deploy_status;

typedef struct { /* AppRef: start (10), stop (11), remove (20) */
	proto_text app; /* 1 */
} proto_app_ref;

typedef struct {
	proto_text name;
	double value;
} proto_value;

typedef struct { /* Telemetry (14) */
	proto_text app;                       /* 1 */
	proto_value values[PROTO_MAX_VALUES]; /* 2: map name -> float */
	uint16_t n_values;
	int64_t time_ms;                      /* 3, unix ms */
} proto_telemetry;

typedef struct { /* Console (15) */
	proto_bytes data; /* 1 */
	proto_text app;   /* 2, opt */
} proto_console;

typedef struct { /* Error (17) */
	uint16_t code;   /* 1, PROTO_CODE_* */
	proto_text text; /* 2, opt */
} proto_error;

typedef struct { /* RenewRequest (18) */
	proto_bytes csr; /* 1 */
} proto_renew_request;

typedef struct { /* RenewResponse (19) */
	proto_bytes cert; /* 1 */
} proto_renew_response;

/* One message: the envelope (spec section "Envelope") and the body of its
 * type. Ack (16) has no body fields. */
typedef struct {
	uint16_t version; /* 1; the encoder writes PROTO_VERSION for 0 */
	uint16_t type;    /* 2, PROTO_HELLO ... */
	uint64_t id;      /* 3 */
	uint64_t re;      /* 4, 0 = not a reply */
	union {
		proto_hello hello;
		proto_welcome welcome;
		proto_enroll_request enroll_request;
		proto_enroll_response enroll_response;
		proto_heartbeat heartbeat;
		proto_heartbeat_ack heartbeat_ack;
		proto_deploy deploy;
		proto_chunk chunk;
		proto_deploy_status deploy_status;
		proto_app_ref app_ref;       /* start, stop, remove */
		proto_app_info app_status;
		proto_telemetry telemetry;
		proto_console console;
		proto_error error;
		proto_renew_request renew_request;
		proto_renew_response renew_response;
	} body;
} proto_msg;

/*
 * Decodes one frame payload into *m (zeroed first). Returns PROTO_OK, or an
 * error whose proto_wire_code is what to answer. On PROTO_ERR_UNSUPPORTED_TYPE
 * and PROTO_ERR_LIMIT the envelope (version, type, id, re) is set; the body
 * is not usable. cause, when not NULL, gets the CBOR-level reason of a
 * PROTO_ERR_MALFORMED (CBOR_ERR_TYPE also for a missing message type).
 * Unknown keys are skipped (spec section "Unknown keys"); null or undefined
 * values read as absent. Never reads outside buf[0, len).
 */
proto_err proto_decode(const uint8_t *buf, size_t len, proto_msg *m, cbor_err *cause);

/*
 * Encodes *m as the canonical payload of spec section "CBOR profile" into
 * buf[0, cap) and sets *len. Optional fields holding zero are omitted. The
 * same message always gives the same bytes, those of
 * testdata/protocol/vectors.json.
 */
proto_err proto_encode(const proto_msg *m, uint8_t *buf, size_t cap, size_t *len);

#endif /* WASMBED_PROTO_H */
