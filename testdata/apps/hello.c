// hello is the smallest Wasmbed app: a WASI command built against wasi-libc.
// It prints two lines to the device console through printf (WASI fd_write on
// stdout) and returns 0 from main, so the runtime reports it as "exited" after
// its single _start run. The runtime passes the app name as argv[0].
#include <stdio.h>

int main(int argc, char **argv) {
	printf("hello from wasmbed\n");
	printf("app %s ran once and exits cleanly\n", argc > 0 ? argv[0] : "?");
	return 0;
}
