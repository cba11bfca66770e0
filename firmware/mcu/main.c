//go:build ignore

/*
 * main.c: the Wasmbed firmware for microcontroller boards. UART0 is the
 * human console (a boot banner, logs, a small shell); UART1 is the
 * protocol link to the board link on the host (docs/protocol.md, "Serial
 * link transport"). Between events the core sleeps (wfi): an idle board
 * costs its host almost nothing.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "apps.h"
#include "board/board.h"
#include "link.h"
#include "session.h"

#ifndef FIRMWARE_VERSION
#define FIRMWARE_VERSION "dev"
#endif

static uint8_t link_buf[LINK_DEC_BUF(LINK_MAX_PAYLOAD)];
static link_dec link;
static boot_config boot;

/* The boot config block, loaded by the host before reset (docs/boards.md). */
#define BOOT_CONFIG_ADDR ((const void *)0x20001000u)

/* ---- console ---- */

static void put_u32(uint32_t v)
{
	char s[11];
	int i = (int)sizeof s;
	do {
		s[--i] = (char)('0' + v % 10u);
		v /= 10u;
	} while (v != 0 && i > 0);
	uart_write(UART_CONSOLE, s + i, sizeof s - (size_t)i);
}

static void console_log(const char *msg)
{
	uart_puts(UART_CONSOLE, "[");
	put_u32(board_ms());
	uart_puts(UART_CONSOLE, "] ");
	uart_puts(UART_CONSOLE, msg);
	uart_puts(UART_CONSOLE, "\r\n");
}

static void console_line(const char *s)
{
	uart_puts(UART_CONSOLE, s);
	uart_puts(UART_CONSOLE, "\r\n");
}

/* App output goes to the console as it comes, "\n" as "\r\n". */
static void app_console(const char *app, const uint8_t *p, size_t n)
{
	(void)app;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			uart_write(UART_CONSOLE, "\r", 1);
		}
		uart_write(UART_CONSOLE, p + i, 1);
	}
}

static char line[80];
static size_t line_len;

static void shell_run(const char *cmd)
{
	if (strcmp(cmd, "help") == 0) {
		uart_puts(UART_CONSOLE, "commands: help version uptime link session apps\r\n");
	} else if (strcmp(cmd, "version") == 0) {
		uart_puts(UART_CONSOLE, "wasmbed-mcu " FIRMWARE_VERSION " " BOARD_NAME "\r\n");
	} else if (strcmp(cmd, "uptime") == 0) {
		put_u32(board_ms());
		uart_puts(UART_CONSOLE, " ms\r\n");
	} else if (strcmp(cmd, "link") == 0) {
		uart_puts(UART_CONSOLE, "frames ");
		put_u32(link.stats.frames);
		uart_puts(UART_CONSOLE, " bad-crc ");
		put_u32(link.stats.bad_crc);
		uart_puts(UART_CONSOLE, " skipped ");
		put_u32(link.stats.skipped);
		uart_puts(UART_CONSOLE, " overruns ");
		put_u32(uart_overruns(UART_LINK));
		uart_puts(UART_CONSOLE, "\r\n");
	} else if (strcmp(cmd, "session") == 0) {
		uart_puts(UART_CONSOLE, boot.device[0] ? boot.device : "(no name)");
		uart_puts(UART_CONSOLE, session_online() ? " online\r\n" : " offline\r\n");
	} else if (strcmp(cmd, "apps") == 0) {
		apps_describe(console_line);
	} else if (cmd[0] != '\0') {
		uart_puts(UART_CONSOLE, "unknown command; try help\r\n");
	}
	uart_puts(UART_CONSOLE, "> ");
}

static bool console_poll(void)
{
	uint8_t in[32];
	size_t n = uart_read(UART_CONSOLE, in, sizeof in);
	for (size_t i = 0; i < n; i++) {
		char c = (char)in[i];
		if (c == '\r' || c == '\n') {
			uart_puts(UART_CONSOLE, "\r\n");
			line[line_len] = '\0';
			shell_run(line);
			line_len = 0;
		} else if ((c == 0x7f || c == '\b') && line_len > 0) {
			line_len--;
			uart_puts(UART_CONSOLE, "\b \b");
		} else if (c >= ' ' && line_len < sizeof line - 1) {
			line[line_len++] = c;
			uart_write(UART_CONSOLE, &c, 1);
		}
	}
	return n > 0;
}

/* ---- link ---- */

static uint32_t link_last_rx;

static bool link_poll(void)
{
	uint8_t in[256];
	size_t n = uart_read(UART_LINK, in, sizeof in);
	if (n > 0) {
		link_last_rx = board_ms();
		link_dec_write(&link, in, n);
	} else if (link.end != link.start && board_ms() - link_last_rx > LINK_IDLE_MS) {
		link_dec_idle(&link);
	}
	const uint8_t *payload;
	size_t len;
	for (;;) {
		link_status st = link_dec_next(&link, &payload, &len);
		if (st == LINK_NEED_MORE) {
			break;
		}
		if (st == LINK_TOO_LARGE) {
			console_log("link: frame too large, dropped");
			if (boot.device[0]) {
				session_frame_too_large(board_ms());
			}
		}
		if (st == LINK_FRAME) {
			session_receive(payload, len, board_ms());
		}
	}
	return n > 0;
}

static void link_send(const uint8_t *payload, size_t n)
{
	uint8_t head[LINK_HEADER_LEN], tail[LINK_TRAILER_LEN];
	link_header(head, (uint32_t)n);
	link_trailer(tail, payload, n);
	uart_write(UART_LINK, head, sizeof head);
	uart_write(UART_LINK, payload, n);
	uart_write(UART_LINK, tail, sizeof tail);
}

int main(void)
{
	board_init();
	link_dec_init(&link, link_buf, sizeof link_buf);
	uart_puts(UART_CONSOLE, "\r\nwasmbed-mcu " FIRMWARE_VERSION " on " BOARD_NAME "\r\n");
	console_log("console on uart0, protocol link on uart1");
	bool named = boot_config_read(BOOT_CONFIG_ADDR, &boot);
	if (named) {
		console_log("boot config: device name read");
		session_init(boot.device, BOARD_NAME, "wasmbed-mcu " FIRMWARE_VERSION,
		             (session_io){.send = link_send, .log = console_log});
		apps_init((apps_io){.send = session_send, .log = console_log, .console = app_console, .now_ms = board_ms});
	} else {
		console_log("no boot config block: not connecting (docs/boards.md)");
	}
	uart_puts(UART_CONSOLE, "> ");
	for (;;) {
		bool busy = console_poll();
		busy = link_poll() || busy;
		if (named) {
			session_poll(board_ms());
			apps_poll(board_ms());
		}
		if (!busy) {
			board_idle();
		}
	}
}
