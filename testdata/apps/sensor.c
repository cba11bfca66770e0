// sensor is a libc-free Wasmbed app that exports only tick. Every tick it
// records a "temperature" value derived from a tick counter (and, when built
// with -DVERSION=2, a "humidity" value too), and every 5th tick it logs a line
// such as "sensor v1 tick 5 (uptime 5012 ms)". The values are deterministic so
// that tests can check them: temperature = 20 + (n % 10) * 0.5 and
// humidity = 40 + (n % 7) * 1.5, where n is 1 on the first tick.

#ifndef VERSION
#define VERSION 1
#endif

#define WASMBED_IMPORT(name) \
	__attribute__((import_module("wasmbed"), import_name(name)))

WASMBED_IMPORT("log") void wb_log(const char *ptr, int len);
WASMBED_IMPORT("telemetry") void wb_telemetry(const char *name, int name_len, double value);
WASMBED_IMPORT("now_ms") long long wb_now_ms(void);

static unsigned int ticks;

// put_uint writes v in decimal at p and returns the position after it.
static char *put_uint(char *p, unsigned long long v) {
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0) {
		*p++ = tmp[--n];
	}
	return p;
}

// put_str copies the NUL-terminated s to p and returns the position after it.
static char *put_str(char *p, const char *s) {
	while (*s != 0) {
		*p++ = *s++;
	}
	return p;
}

__attribute__((export_name("tick"))) void tick(void) {
	ticks++;
	wb_telemetry("temperature", 11, 20.0 + (double)(ticks % 10) * 0.5);
#if VERSION >= 2
	wb_telemetry("humidity", 8, 40.0 + (double)(ticks % 7) * 1.5);
#endif
	if (ticks % 5 == 0) {
		char line[64];
		char *p = put_str(line, "sensor v");
		p = put_uint(p, VERSION);
		p = put_str(p, " tick ");
		p = put_uint(p, ticks);
		p = put_str(p, " (uptime ");
		p = put_uint(p, (unsigned long long)wb_now_ms());
		p = put_str(p, " ms)");
		wb_log(line, (int)(p - line));
	}
}
