/*
 * session.h: the device side of a protocol session over the serial link
 * (docs/protocol.md): hello until welcomed, heartbeats at the gateway's
 * interval, a new hello when acks stop coming or the gateway ends the
 * session. The board link on the host holds the TLS session; to the board a
 * session is the run of messages between a welcome and its end.
 */
#ifndef WASMBED_SESSION_H
#define WASMBED_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* The boot config block the host loads at 0x20001000 (docs/boards.md). */
typedef struct {
	char device[33]; /* NUL-terminated DNS label */
	uint32_t ipv4;   /* 0 on a board without a network (serial link) */
	uint16_t port;
} boot_config;

/* Reads and checks the block at addr (magic, version, size, CRC); false
 * when there is none or it is damaged. */
bool boot_config_read(const void *addr, boot_config *out);

typedef struct {
	void (*send)(const uint8_t *payload, size_t n); /* one link frame */
	void (*log)(const char *msg);                    /* a console line */
} session_io;

void session_init(const char *device, const char *board, const char *firmware, session_io io);
/* Handles one message payload from the link. */
void session_receive(const uint8_t *payload, size_t n, uint32_t now_ms);
/* A frame above the link's limit came: answered like one above the limit
 * on TLS, with an error notice frame-too-large, and the session ends. */
void session_frame_too_large(uint32_t now_ms);
/* Runs timers: hello retries, heartbeats, ack timeouts. */
void session_poll(uint32_t now_ms);
/* Milliseconds until session_poll has something to do. */
uint32_t session_next_ms(uint32_t now_ms);
bool session_online(void);
/* Sends m while online: a notice gets the next id, a reply keeps its re;
 * telemetry without a time gets the gateway's clock. */
void session_send(proto_msg *m);

#endif
