/*
 * Internal structures shared by the loader (load.c) and the interpreter
 * (exec.c). Not part of the API.
 */
#ifndef WASMBED_WASM_INTERNAL_H
#define WASMBED_WASM_INTERNAL_H

#include "wasm.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "wasm: the interpreter assumes a little-endian host"
#endif

/* Value types, as encoded in the binary. */
enum {
	T_NONE = 0x00, /* no value (empty block type); "unknown" on the validator stack */
	T_I32 = 0x7f,
	T_I64 = 0x7e,
	T_F32 = 0x7d,
	T_F64 = 0x7c
};

#define PAGE_SIZE 65536u
#define MAX_PAGES 65536u
/* NONE24 marks an absent 24-bit immediate (an unpatched branch target). */
#define NONE24 0xffffffu
#define IMM_MAX 0xfffffeu

/*
 * Internal code. A function body is a sequence of 32-bit words: the low 8
 * bits are an opcode, the upper 24 an immediate (a local, global, function
 * or type index, a branch target as a word offset into the code array, a
 * memory offset, a small constant). Larger immediates follow in extra words.
 * Numeric opcodes keep their WebAssembly numbers; control opcodes are
 * rewritten with their targets and stack adjustments resolved at load time.
 */
enum {
	OP_UNREACHABLE = 0x00,
	OP_BR_ADJ = 0x01,     /* imm target; next word: drop<<1 | arity */
	OP_BR_IF_ADJ = 0x02,  /* like OP_BR_ADJ when the popped i32 is not zero */
	OP_BR_UNLESS = 0x03,  /* imm target; jump when the popped i32 is zero (if) */
	OP_CALL_HOST = 0x04,  /* imm function index of an import */
	OP_I32_CONST_S = 0x05, /* imm: 24-bit signed constant */
	OP_I64_CONST_S = 0x06, /* imm: 24-bit signed constant */
	OP_MEMORY_COPY = 0x07,
	OP_MEMORY_FILL = 0x08,
	OP_BR = 0x0c,         /* imm target */
	OP_BR_IF = 0x0d,      /* imm target */
	OP_BR_TABLE = 0x0e,   /* imm n; then n+1 pairs (target<<8, adj) */
	OP_RETURN = 0x0f,
	OP_CALL = 0x10,       /* imm function index */
	OP_CALL_INDIRECT = 0x11, /* imm canonical type index */
	OP_DROP = 0x1a,
	OP_SELECT = 0x1b,
	OP_LOCAL_GET = 0x20,
	OP_LOCAL_SET = 0x21,
	OP_LOCAL_TEE = 0x22,
	OP_GLOBAL_GET = 0x23,
	OP_GLOBAL_SET = 0x24,
	/* 0x28..0x3e loads and stores: imm offset, or NONE24 and the offset in
	 * the next word. */
	OP_MEMORY_SIZE = 0x3f,
	OP_MEMORY_GROW = 0x40,
	OP_I32_CONST = 0x41, /* next word */
	OP_I64_CONST = 0x42, /* next two words, low first */
	OP_F32_CONST = 0x43, /* next word */
	OP_F64_CONST = 0x44, /* next two words */
	/* 0x45..0xc4 numeric, as in WebAssembly (0xa7 wrap and 0xbc..0xbf
	 * reinterprets are never emitted: they do nothing to a slot). */
	OP_TRUNC_SAT = 0xe0, /* 0xe0..0xe7: 0xfc 0..7 */
	/* Fused at load time: "i32.const c; op" for the i32 comparisons
	 * 0x46..0x4f and the i32 operators add, sub, mul, and .. rotr
	 * (0x6a..0x6c, 0x71..0x78) becomes op + OP_IMM_DELTA with c (24-bit
	 * signed) as the immediate. */
	OP_IMM_DELTA = 0x80,
	OP_LOCAL_GET2 = 0xf9 /* two local.get: imm bits 0..11 and 12..23 */
};

/*
 * The loads (0x28..0x35) and stores (0x36..0x3e), in opcode order:
 * X(opcode, value type, type in memory). The loader takes the alignment
 * limit and operand types from here, the interpreter its handlers.
 */
#define MEM_LOADS(X)                                                                       \
	X(0x28, T_I32, uint32_t) X(0x29, T_I64, uint64_t) X(0x2a, T_F32, uint32_t) X(0x2b, T_F64, uint64_t) \
	X(0x2c, T_I32, int8_t) X(0x2d, T_I32, uint8_t) X(0x2e, T_I32, int16_t) X(0x2f, T_I32, uint16_t)     \
	X(0x30, T_I64, int8_t) X(0x31, T_I64, uint8_t) X(0x32, T_I64, int16_t) X(0x33, T_I64, uint16_t)     \
	X(0x34, T_I64, int32_t) X(0x35, T_I64, uint32_t)
#define MEM_STORES(X)                                                                      \
	X(0x36, T_I32, uint32_t) X(0x37, T_I64, uint64_t) X(0x38, T_F32, uint32_t) X(0x39, T_F64, uint64_t) \
	X(0x3a, T_I32, uint8_t) X(0x3b, T_I32, uint16_t) X(0x3c, T_I64, uint8_t) X(0x3d, T_I64, uint16_t)   \
	X(0x3e, T_I64, uint32_t)

/* wasm_type is a function type: at most 255 params and one result. */
typedef struct wasm_type {
	uint8_t *params;
	uint16_t nparams;
	uint8_t nresults;
	uint8_t result;
	uint32_t canon; /* index of the first type equal to this one */
} wasm_type;

/* wasm_func is an imported or defined function. */
typedef struct wasm_func {
	uint32_t type;   /* type index */
	uint32_t canon;  /* canonical type index, for call_indirect */
	uint16_t nparams;
	uint8_t nresults;
	uint8_t is_host;
	uint32_t nlocals; /* params plus declared locals */
	uint32_t frame;   /* nlocals plus the deepest operand stack: slots needed */
	uint32_t code;    /* word offset of the body */
	const wasm_host_func *host;
} wasm_func;

typedef struct wasm_export {
	const char *name;
	uint32_t len;
	uint8_t kind; /* 0 func, 1 table, 2 memory, 3 global */
	uint32_t index;
} wasm_export;

/* wasm_frame is a suspended caller. */
typedef struct wasm_frame {
	const uint32_t *pc;
	wasm_value *fp;
	const wasm_func *func;
} wasm_frame;

struct wasm_instance {
	uint8_t *arena_end;
	uint8_t *used_end; /* end of fixed allocations; linear memory follows */
	void *user;
	wasm_config cfg;

	wasm_type *types;
	uint32_t ntypes;
	wasm_func *funcs;
	uint32_t nfuncs, nimports;
	wasm_value *globals;
	uint8_t *gtypes; /* value type, | 0x80 when mutable */
	uint32_t nglobals;
	uint32_t *table; /* function index or UINT32_MAX */
	uint32_t table_size, table_max;
	bool has_table, table_has_max;
	wasm_export *exports;
	uint32_t nexports;
	uint32_t *code;
	uint32_t ncode;
	uint32_t start_func; /* UINT32_MAX when none */

	wasm_value *stack;
	uint32_t stack_slots;
	wasm_frame *frames;
	uint32_t max_frames;

	bool has_memory;
	uint8_t *mem;
	uint64_t mem_size;
	uint32_t pages, max_pages;

	uint32_t stack_peak; /* most value stack slots in use, over all calls */
	uint32_t depth_peak; /* most nested calls, over all calls */

	wasm_status *st; /* status of the running call */
	wasm_status host_st;
	uint32_t fuel;
	bool running;
};

/* wasm_run executes an already-validated call of f with its arguments at
 * inst->stack[0..]; results end at inst->stack[0..]. */
wasm_code wasm_run(wasm_instance *inst, const wasm_func *f, uint32_t fuel);
/* wasm_trap_message is the reason of a trap code raised by the interpreter. */
const char *wasm_trap_message(wasm_code code);

#endif
