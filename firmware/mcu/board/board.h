/*
 * board.h: what the firmware needs of the MPS2+ AN385 board: its two
 * CMSDK UARTs (UART0 the human console, UART1 the protocol link), a
 * millisecond clock from SysTick, and sleeping until the next interrupt.
 * Received bytes are buffered by the UARTs' receive interrupts; sending
 * waits for room in the transmitter (the console and the link are the only
 * writers).
 */
#ifndef WASMBED_BOARD_H
#define WASMBED_BOARD_H

#include <stddef.h>
#include <stdint.h>

#define BOARD_NAME "mps2-an385"
#define BOARD_CPU_HZ 25000000u /* the AN385's system clock */

enum { UART_CONSOLE = 0, UART_LINK = 1 };

void board_init(void);

/* Milliseconds since boot, in steps of 10. */
uint32_t board_ms(void);

/* Sleep until an interrupt (a received byte or the next 10 ms tick). */
void board_idle(void);

/* Bytes received on uart since the last call, at most cap; 0 when none. */
size_t uart_read(int uart, uint8_t *buf, size_t cap);
/* Send n bytes on uart, waiting for the transmitter. */
void uart_write(int uart, const void *p, size_t n);
void uart_puts(int uart, const char *s);
/* Times a receive buffer was full and the UART held input back. */
uint32_t uart_overruns(int uart);

#endif
