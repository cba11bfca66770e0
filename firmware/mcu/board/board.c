/* board.c: startup, UARTs, SysTick and sleep for the MPS2+ AN385. */
#include "board.h"

#include <string.h>

/* ---- registers ---- */

#define REG(addr) (*(volatile uint32_t *)(addr))

/* CMSDK APB UART */
#define UART_BASE(n) (0x40004000u + 0x1000u * (uint32_t)(n))
#define UART_DATA(n) REG(UART_BASE(n) + 0x00)
#define UART_STATE(n) REG(UART_BASE(n) + 0x04)
#define UART_CTRL(n) REG(UART_BASE(n) + 0x08)
#define UART_INT(n) REG(UART_BASE(n) + 0x0c) /* status; write 1 to clear */
#define UART_BAUDDIV(n) REG(UART_BASE(n) + 0x10)
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u
#define UART_CTRL_TXEN 0x1u
#define UART_CTRL_RXEN 0x2u
#define UART_CTRL_RXINT 0x8u
#define UART_INT_RX 0x2u

/* Cortex-M3 system control */
#define SYST_CSR REG(0xe000e010u)
#define SYST_RVR REG(0xe000e014u)
#define SYST_CVR REG(0xe000e018u)
#define NVIC_ISER0 REG(0xe000e100u)

/* UART receive interrupts of the AN385: UART0 RX is IRQ 0, UART1 RX IRQ 2. */
#define IRQ_UART0_RX 0
#define IRQ_UART1_RX 2

/* ---- receive buffers, filled by interrupts ---- */

#define RX_SIZE 4096u /* a power of two */

struct rxbuf {
	uint8_t data[RX_SIZE];
	volatile uint32_t head; /* written by the interrupt */
	volatile uint32_t tail; /* written by the main loop */
	volatile uint32_t overruns; /* times the buffer was full and the UART held back */
};

static struct rxbuf rx[2];
static volatile uint32_t ticks;

static void uart_rx_irq(int n)
{
	struct rxbuf *b = &rx[n];
	/* Clear first, then drain: a byte that arrives after the clear raises
	 * the interrupt again. (Clearing after the drain could clear the
	 * interrupt of a byte not yet read, and the UART, holding one byte,
	 * would take no more.) */
	UART_INT(n) = UART_INT_RX;
	while (UART_STATE(n) & UART_STATE_RXFULL) {
		if (b->head - b->tail == RX_SIZE) {
			/* Full: leave the byte in the UART, which then takes no
			 * more (the sender waits), until uart_read makes room. */
			UART_CTRL(n) &= ~UART_CTRL_RXINT;
			b->overruns++;
			return;
		}
		b->data[b->head % RX_SIZE] = (uint8_t)UART_DATA(n);
		b->head++;
	}
}

void uart0_rx_handler(void) { uart_rx_irq(0); }
void uart1_rx_handler(void) { uart_rx_irq(1); }
/* SysTick runs at 100 Hz: each tick wakes the core (and QEMU), so a slower
 * tick keeps an idle board cheap; 10 ms is finer than any period it keeps. */
#define TICK_MS 10u
void systick_handler(void) { ticks += TICK_MS; }

size_t uart_read(int n, uint8_t *buf, size_t cap)
{
	struct rxbuf *b = &rx[n];
	if (UART_STATE(n) & UART_STATE_RXFULL) {
		/* A byte is waiting that no interrupt took (or the buffer was
		 * full): take it now, with interrupts masked as the handler
		 * would run, and receive by interrupt again. */
		__asm volatile("cpsid i" ::: "memory");
		uart_rx_irq(n);
		if (b->head - b->tail < RX_SIZE) {
			UART_CTRL(n) |= UART_CTRL_RXINT;
		}
		__asm volatile("cpsie i" ::: "memory");
	}
	size_t got = 0;
	while (got < cap && b->tail != b->head) {
		buf[got++] = b->data[b->tail % RX_SIZE];
		b->tail++;
	}
	return got;
}

void uart_write(int n, const void *p, size_t len)
{
	const uint8_t *s = p;
	for (size_t i = 0; i < len; i++) {
		while (UART_STATE(n) & UART_STATE_TXFULL) {
		}
		UART_DATA(n) = s[i];
	}
}

void uart_puts(int n, const char *s) { uart_write(n, s, strlen(s)); }

uint32_t uart_overruns(int n) { return rx[n].overruns; }

uint32_t board_ms(void) { return ticks; }

void board_idle(void) { __asm volatile("wfi"); }

void board_init(void)
{
	for (int n = 0; n < 2; n++) {
		UART_BAUDDIV(n) = BOARD_CPU_HZ / 115200u;
		UART_CTRL(n) = UART_CTRL_TXEN | UART_CTRL_RXEN | UART_CTRL_RXINT;
	}
	NVIC_ISER0 = (1u << IRQ_UART0_RX) | (1u << IRQ_UART1_RX);
	SYST_RVR = BOARD_CPU_HZ / 1000u * TICK_MS - 1u;
	SYST_CVR = 0;
	SYST_CSR = 0x7; /* processor clock, interrupt, enable */
}

/* ---- startup ---- */

extern uint32_t _data_load, _data_start, _data_end, _bss_start, _bss_end, _stack_top;
extern int main(void);

void reset_handler(void)
{
	uint32_t *src = &_data_load;
	for (uint32_t *dst = &_data_start; dst < &_data_end;) {
		*dst++ = *src++;
	}
	for (uint32_t *dst = &_bss_start; dst < &_bss_end;) {
		*dst++ = 0;
	}
	main();
	for (;;) {
		board_idle();
	}
}

/* A fault is a firmware bug: say so on the console and stop. */
void fault_handler(void)
{
	uart_puts(UART_CONSOLE, "\r\nwasmbed: fault, halted\r\n");
	for (;;) {
		board_idle();
	}
}

typedef void (*vector)(void);

__attribute__((section(".vectors"), used)) static const vector vectors[16 + 3] = {
	(vector)(uintptr_t)&_stack_top,
	reset_handler,
	fault_handler, /* NMI */
	fault_handler, /* HardFault */
	fault_handler, /* MemManage */
	fault_handler, /* BusFault */
	fault_handler, /* UsageFault */
	0, 0, 0, 0,
	fault_handler, /* SVCall */
	fault_handler, /* DebugMonitor */
	0,
	fault_handler, /* PendSV */
	systick_handler,
	uart0_rx_handler, /* IRQ 0 */
	fault_handler,    /* IRQ 1: UART0 TX, not enabled */
	uart1_rx_handler, /* IRQ 2 */
};
