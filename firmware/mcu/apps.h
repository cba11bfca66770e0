/*
 * apps.h: the apps of a microcontroller board (docs/protocol.md, "Module
 * transfer" and "App state machine"): modules received in chunks into RAM,
 * verified by SHA-256 before anything is installed, run in the wasm
 * interpreter under a fuel budget per call, the previous version kept for
 * rollback, a slot freed by remove. All storage is static: APPS_SLOTS apps of at most
 * APPS_MAX_MODULE bytes, each with an interpreter arena of APPS_ARENA.
 * Nothing survives a reset (the board has no persistent storage here).
 */
#ifndef WASMBED_APPS_H
#define WASMBED_APPS_H

#include <stdint.h>

#include "proto.h"

#define APPS_SLOTS 2
#define APPS_MAX_MODULE (64u * 1024u)
#define APPS_ARENA (320u * 1024u)
#define APPS_DEFAULT_PAGES 4u        /* linear memory limit without Limits.MemoryPages */
#define APPS_FUEL_PER_MS 20000u      /* fuel of a call per millisecond of its time limit */
#define APPS_DEFAULT_CALL_MS 5000u   /* docs/app-abi.md: 5 s */
#define APPS_DEFAULT_PERIOD_MS 1000u /* docs/app-abi.md */

typedef struct {
	/* Sends one message (notices and replies); the apps code fills in
	 * type, re and body. */
	void (*send)(proto_msg *m);
	void (*log)(const char *msg);
	void (*console)(const char *app, const uint8_t *p, size_t n);
	uint32_t (*now_ms)(void);
} apps_io;

void apps_init(apps_io io);
/* Handles a gateway request (deploy, chunk, start, stop, remove) and
 * sends its reply. */
void apps_request(const proto_msg *req);
/* Runs the ticks that are due. */
void apps_poll(uint32_t now_ms);
/* Fills the apps of a hello. */
void apps_hello(proto_hello *h);
/* A line per app for the console's "apps" command. */
void apps_describe(void (*line)(const char *s));

#endif
