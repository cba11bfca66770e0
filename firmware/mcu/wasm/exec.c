/*
 * Execution: the interpreter loop over the internal code made by load.c.
 *
 * Values live in 8-byte slots of one value stack: a frame is the callee's
 * parameters and locals followed by its operands. Calls do not recurse in
 * C: a wasm call pushes a wasm_frame and the loop goes on, so the C stack
 * use is fixed. Every stack bound is checked once per call (the frame size
 * was computed at load time), every memory access against the current
 * memory size, and fuel is charged on every call and taken branch.
 */
#include <string.h>

#include "wasm_internal.h"

const char *wasm_trap_message(wasm_code code) {
	switch (code) {
	case WASM_TRAP_UNREACHABLE: return "wasm error: unreachable";
	case WASM_TRAP_MEMORY: return "wasm error: out of bounds memory access";
	case WASM_TRAP_DIV_ZERO: return "wasm error: integer divide by zero";
	case WASM_TRAP_OVERFLOW: return "wasm error: integer overflow";
	case WASM_TRAP_CONVERSION: return "wasm error: invalid conversion to integer";
	case WASM_TRAP_TABLE: return "wasm error: invalid table access";
	case WASM_TRAP_SIGNATURE: return "wasm error: indirect call type mismatch";
	case WASM_TRAP_STACK: return "wasm error: stack overflow";
	case WASM_TRAP_FUEL: return "fuel exhausted";
	case WASM_TRAP_HOST: return "host function failed";
	case WASM_TRAP_EXIT: return "exit";
	default: return "trap";
	}
}

/* ---- floating point helpers (no libm) ---- */

/*
 * FLOAT_HELPERS defines the helpers of one float format P (f32 or f64):
 * type T, bits in U, MANT mantissa bits, EMAX the all-ones exponent. The
 * two formats differ only in these, so the code is written once.
 *
 * min and max take NaN from either operand and order the zeros by their
 * sign bits. nearest rounds half to even with the default rounding of
 * x + 2^MANT - 2^MANT.
 */
#define FLOAT_HELPERS(P, T, U, MANT, EMAX)                              \
	static inline U P##_bits(T f) {                                     \
		U u;                                                            \
		memcpy(&u, &f, sizeof u);                                       \
		return u;                                                       \
	}                                                                   \
	static inline T P##_from(U u) {                                     \
		T f;                                                            \
		memcpy(&f, &u, sizeof f);                                       \
		return f;                                                       \
	}                                                                   \
	static T P##_min(T a, T b) {                                        \
		if (a != a || b != b) return a + b;                             \
		if (a == b) return P##_from(P##_bits(a) | P##_bits(b));         \
		return a < b ? a : b;                                           \
	}                                                                   \
	static T P##_max(T a, T b) {                                        \
		if (a != a || b != b) return a + b;                             \
		if (a == b) return P##_from(P##_bits(a) & P##_bits(b));         \
		return a > b ? a : b;                                           \
	}                                                                   \
	static T P##_trunc(T x) {                                           \
		U u = P##_bits(x);                                              \
		int e = (int)((u >> MANT) & EMAX) - EMAX / 2;                   \
		if (e >= MANT) return e == EMAX / 2 + 1 ? x + x : x;            \
		if (e < 0) return P##_from(u & ((U)1 << (sizeof(U) * 8 - 1)));  \
		return P##_from(u & ~(((U)1 << (MANT - e)) - 1));               \
	}                                                                   \
	static T P##_floor(T x) {                                           \
		T t = P##_trunc(x);                                             \
		return (t != x && x < 0) ? t - 1 : t;                           \
	}                                                                   \
	static T P##_ceil(T x) {                                            \
		T t = P##_trunc(x);                                             \
		return (t != x && x > 0) ? t + 1 : t;                           \
	}                                                                   \
	static T P##_nearest(T x) {                                         \
		U u = P##_bits(x);                                              \
		int e = (int)((u >> MANT) & EMAX);                              \
		if (e == EMAX) return x + x;                                    \
		if (e >= EMAX / 2 + MANT) return x;                             \
		const T c = (T)((U)1 << MANT);                                  \
		if (u >> (sizeof(U) * 8 - 1)) return -((-x + c) - c);          \
		return (x + c) - c;                                             \
	}

FLOAT_HELPERS(f32, float, uint32_t, 23, 0xff)
FLOAT_HELPERS(f64, double, uint64_t, 52, 0x7ff)

/* f64_sqrt is a correctly rounded square root, digit by digit. */
static double f64_sqrt(double x) {
	uint64_t u = f64_bits(x);
	int e = (int)((u >> 52) & 0x7ff);
	uint64_t m = u & ((1ull << 52) - 1);
	if (e == 0x7ff) {
		if (m != 0) return x + x;
		return (u >> 63) ? f64_from(0x7ff8000000000000ull) : x;
	}
	if (e == 0 && m == 0) return x;
	if (u >> 63) return f64_from(0x7ff8000000000000ull);
	if (e == 0) {
		e = 1;
		while (!(m & (1ull << 52))) {
			m <<= 1;
			e--;
		}
	} else {
		m |= 1ull << 52;
	}
	int exp = e - 1023;
	if (exp & 1) {
		m <<= 1;
		exp--;
	}
	/* q = floor(sqrt(m * 2^54)): 54 bits, the last one for rounding */
	uint64_t q = 0, rem = 0;
	for (int i = 0; i < 54; i++) {
		uint64_t pair = i < 27 ? (m >> (52 - 2 * i)) & 3 : 0;
		rem = rem << 2 | pair;
		uint64_t t = q << 2 | 1;
		q <<= 1;
		if (rem >= t) {
			rem -= t;
			q |= 1;
		}
	}
	uint64_t mant = q >> 1;
	if ((q & 1) && (rem != 0 || (mant & 1))) {
		mant++;
	}
	exp /= 2;
	if (mant >> 53) {
		mant >>= 1;
		exp++;
	}
	return f64_from((uint64_t)(exp + 1023) << 52 | (mant & ((1ull << 52) - 1)));
}
/* Rounding the exact double root to float is exact enough: 53 >= 2*24+2. */
static float f32_sqrt(float x) { return (float)f64_sqrt((double)x); }

/*
 * Saturating truncation of x to N bits: NaN gives 0 and values out of
 * range the nearest bound. 2^(N-1) is exact in a double, so are the
 * bounds.
 */
#define SAT_HELPERS(N)                                             \
	static uint##N##_t sat_i##N##_s(double x) {                    \
		const uint##N##_t min = (uint##N##_t)1 << (N - 1);         \
		if (x != x) return 0;                                      \
		if (x < -(double)min) return min;                          \
		if (x >= (double)min) return min - 1;                      \
		return (uint##N##_t)(int##N##_t)x;                         \
	}                                                              \
	static uint##N##_t sat_i##N##_u(double x) {                    \
		if (x != x || x <= -1.0) return 0;                         \
		if (x >= 2.0 * (double)((uint##N##_t)1 << (N - 1))) return (uint##N##_t)-1; \
		return (uint##N##_t)x;                                     \
	}

SAT_HELPERS(32)
SAT_HELPERS(64)

/* ---- the interpreter ---- */

/*
 * Dispatch. With GCC or clang each handler jumps straight to the next one
 * through a table of label addresses ("threaded code"), which saves the
 * switch's range check and gives each handler its own indirect branch;
 * elsewhere, or with -DWASM_SWITCH_DISPATCH, it is a plain switch. CASE
 * opens a handler, NEXT ends one, RESUME ends the call sequences that lie
 * outside the switch.
 */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(WASM_SWITCH_DISPATCH)
#define THREADED 1
#define CASE(op) case op: L_##op:
#define NEXT()                          \
	{                                   \
		w = *pc++;                      \
		goto *dispatch[(uint8_t)w];     \
	}
#define RESUME() NEXT()
#else
#define THREADED 0
#define CASE(op) case op:
#define NEXT() break
#define RESUME() continue /* outside the switch */
#endif

#define CHARGE()                    \
	do {                            \
		if (fuel == 0) goto trap_fuel; \
		fuel--;                     \
	} while (0)

/* ADJ drops adj>>1 slots below the branch's adj&1 result values. */
#define ADJ(a)                                  \
	do {                                        \
		uint32_t adj_ = (a), drop_ = adj_ >> 1; \
		if (adj_ & 1) sp[-1 - (ptrdiff_t)drop_] = sp[-1]; \
		sp -= drop_;                            \
	} while (0)

/* Effective address of a load (address at sp[-1]) or store (sp[-2]). */
#define EA(slot, size)                                   \
	uint32_t off_ = w >> 8;                              \
	if (off_ == NONE24) off_ = *pc++;                    \
	uint64_t ea_ = (uint64_t)sp[slot].i32 + off_;        \
	if (ea_ + (size) > mem_size) goto trap_memory;       \
	uint8_t *p_ = mem + (size_t)ea_

/* Signed narrow values sign-extend as they convert to the slot's type. */
#define LOAD(ctype, field)           \
	{                                \
		EA(-1, sizeof(ctype));       \
		ctype v_;                    \
		memcpy(&v_, p_, sizeof v_);  \
		sp[-1].field = v_;           \
		NEXT();                      \
	}
#define STORE(ctype, field)                  \
	{                                        \
		EA(-2, sizeof(ctype));               \
		ctype v_ = (ctype)sp[-1].field;      \
		memcpy(p_, &v_, sizeof v_);          \
		sp -= 2;                             \
		NEXT();                              \
	}
/* Handlers of the MEM_LOADS and MEM_STORES rows. Floats travel as bits. */
#define SLOT_T_I32 i32
#define SLOT_T_I64 i64
#define SLOT_T_F32 i32
#define SLOT_T_F64 i64
#define LOAD_OP(op, vtype, ctype) CASE(op) LOAD(ctype, SLOT_##vtype)
#define STORE_OP(op, vtype, ctype) CASE(op) STORE(ctype, SLOT_##vtype)

/* An operator on the top slot(s), a and b of ctype, result in rfield. */
#define UNARY(field, rfield, ctype, expr) \
	{                                     \
		ctype a = sp[-1].field;           \
		sp[-1].rfield = (expr);           \
		NEXT();                           \
	}
#define BINARY(field, rfield, ctype, expr)        \
	{                                             \
		ctype b = sp[-1].field, a = sp[-2].field; \
		sp--;                                     \
		sp[-1].rfield = (expr);                   \
		NEXT();                                   \
	}
#define CONV UNARY
/* Division and remainder trap on a zero divisor, and when ovf holds. */
#define DIVIDE(field, ctype, ovf, expr)           \
	{                                             \
		ctype b = sp[-1].field, a = sp[-2].field; \
		if (b == 0) goto trap_div_zero;           \
		if (ovf) goto trap_overflow;              \
		sp--;                                     \
		sp[-1].field = (expr);                    \
		NEXT();                                   \
	}
/* "i32.const b; op": b is the signed 24-bit immediate */
#define I32_IMM(expr)                                             \
	{                                                             \
		uint32_t b = (uint32_t)((int32_t)w >> 8), a = sp[-1].i32; \
		sp[-1].i32 = (expr);                                      \
		NEXT();                                                   \
	}

/*
 * The kinds of operator in the tables below, for one value type (field
 * and ctype): UN and BIN keep the type, TEST and CMP give an i32, DIV
 * traps on a zero divisor and QUOT, the signed quotient, also on MIN / -1.
 */
#define UN(field, ctype, expr) UNARY(field, field, ctype, expr)
#define TEST(field, ctype, expr) UNARY(field, i32, ctype, expr)
#define BIN(field, ctype, expr) BINARY(field, field, ctype, expr)
#define CMP(field, ctype, expr) BINARY(field, i32, ctype, expr)
#define DIV(field, ctype, expr) DIVIDE(field, ctype, 0, expr)
#define QUOT(field, ctype, expr) DIVIDE(field, ctype, a == SIGN_BIT(a) && S(b) == -1, expr)

/*
 * Width-generic helpers, chosen at compile time by the operand's type, so
 * that one expression serves both widths.
 */
#define BITS(x) (sizeof(x) * 8)
#define SHIFT(k) ((k) & (BITS(k) - 1)) /* counts are modulo the width */
#define S(x) _Generic((x), uint32_t: (int32_t)(x), uint64_t: (int64_t)(x)) /* signed view */
#define SIGN_BIT(x) _Generic((x), uint32_t: 0x80000000u, uint64_t: 0x8000000000000000ull)
#define ROTL(x, k) ((x) << SHIFT(k) | (x) >> SHIFT(0 - (k)))
#define ROTR(x, k) ((x) >> SHIFT(k) | (x) << SHIFT(0 - (k)))
#define CLZ(x) _Generic((x), uint32_t: (uint32_t)__builtin_clz(x), uint64_t: (uint64_t)__builtin_clzll(x))
#define CTZ(x) _Generic((x), uint32_t: (uint32_t)__builtin_ctz(x), uint64_t: (uint64_t)__builtin_ctzll(x))
#define POPCNT(x) _Generic((x), uint32_t: __builtin_popcount(x), uint64_t: __builtin_popcountll(x))
#define FLT(name, x) _Generic((x), float: f32_##name, double: f64_##name)(x)
#define FLT2(name, x, y) _Generic((x), float: f32_##name, double: f64_##name)(x, y)

/*
 * The operators i32 and i64 share, one row each: X(i32 opcode, i64
 * opcode, kind, expression of a and b). abs, neg and copysign of f32 and
 * f64 are here too: they work on the bits.
 */
#define INT_OPS(X)                                               \
	X(0x45, 0x50, TEST, a == 0)                                  \
	X(0x67, 0x79, UN, a ? CLZ(a) : BITS(a))                      \
	X(0x68, 0x7a, UN, a ? CTZ(a) : BITS(a))                      \
	X(0x69, 0x7b, UN, POPCNT(a))                                 \
	X(0x6d, 0x7f, QUOT, S(a) / S(b))                             \
	X(0x6e, 0x80, DIV, a / b)                                    \
	X(0x6f, 0x81, DIV, S(b) == -1 ? 0 : S(a) % S(b))             \
	X(0x70, 0x82, DIV, a % b)                                    \
	X(0x8b, 0x99, UN, a & ~SIGN_BIT(a))                          \
	X(0x8c, 0x9a, UN, a ^ SIGN_BIT(a))                           \
	X(0x98, 0xa6, BIN, (a & ~SIGN_BIT(a)) | (b & SIGN_BIT(b)))
/* Those with a fused "i32.const c; op" form too (OP_IMM_DELTA), its
 * opcode third. */
#define INT_FUSED_OPS(X)                      \
	X(0x46, 0x51, 0xc6, CMP, a == b)          \
	X(0x47, 0x52, 0xc7, CMP, a != b)          \
	X(0x48, 0x53, 0xc8, CMP, S(a) < S(b))     \
	X(0x49, 0x54, 0xc9, CMP, a < b)           \
	X(0x4a, 0x55, 0xca, CMP, S(a) > S(b))     \
	X(0x4b, 0x56, 0xcb, CMP, a > b)           \
	X(0x4c, 0x57, 0xcc, CMP, S(a) <= S(b))    \
	X(0x4d, 0x58, 0xcd, CMP, a <= b)          \
	X(0x4e, 0x59, 0xce, CMP, S(a) >= S(b))    \
	X(0x4f, 0x5a, 0xcf, CMP, a >= b)          \
	X(0x6a, 0x7c, 0xea, BIN, a + b)           \
	X(0x6b, 0x7d, 0xeb, BIN, a - b)           \
	X(0x6c, 0x7e, 0xec, BIN, a * b)           \
	X(0x71, 0x83, 0xf1, BIN, a & b)           \
	X(0x72, 0x84, 0xf2, BIN, a | b)           \
	X(0x73, 0x85, 0xf3, BIN, a ^ b)           \
	X(0x74, 0x86, 0xf4, BIN, a << SHIFT(b))   \
	X(0x75, 0x87, 0xf5, BIN, S(a) >> SHIFT(b)) \
	X(0x76, 0x88, 0xf6, BIN, a >> SHIFT(b))   \
	X(0x77, 0x89, 0xf7, BIN, ROTL(a, b))      \
	X(0x78, 0x8a, 0xf8, BIN, ROTR(a, b))
/* The operators f32 and f64 share: X(f32 opcode, f64 opcode, kind,
 * expression). */
#define FLOAT_OPS(X)                    \
	X(0x5b, 0x61, CMP, a == b)          \
	X(0x5c, 0x62, CMP, a != b)          \
	X(0x5d, 0x63, CMP, a < b)           \
	X(0x5e, 0x64, CMP, a > b)           \
	X(0x5f, 0x65, CMP, a <= b)          \
	X(0x60, 0x66, CMP, a >= b)          \
	X(0x8d, 0x9b, UN, FLT(ceil, a))     \
	X(0x8e, 0x9c, UN, FLT(floor, a))    \
	X(0x8f, 0x9d, UN, FLT(trunc, a))    \
	X(0x90, 0x9e, UN, FLT(nearest, a))  \
	X(0x91, 0x9f, UN, FLT(sqrt, a))     \
	X(0x92, 0xa0, BIN, a + b)           \
	X(0x93, 0xa1, BIN, a - b)           \
	X(0x94, 0xa2, BIN, a * b)           \
	X(0x95, 0xa3, BIN, a / b)           \
	X(0x96, 0xa4, BIN, FLT2(min, a, b)) \
	X(0x97, 0xa5, BIN, FLT2(max, a, b))

/* Handlers of one width, made from a table row. */
#define I32_OP(op32, op64, kind, expr) CASE(op32) kind(i32, uint32_t, expr)
#define I64_OP(op32, op64, kind, expr) CASE(op64) kind(i64, uint64_t, expr)
#define F32_OP(op32, op64, kind, expr) CASE(op32) kind(f32, float, expr)
#define F64_OP(op32, op64, kind, expr) CASE(op64) kind(f64, double, expr)
#define I32_FUSED_OP(op32, op64, opimm, kind, expr) \
	I32_OP(op32, op64, kind, expr) CASE(opimm) I32_IMM(expr)
#define I64_FUSED_OP(op32, op64, opimm, kind, expr) I64_OP(op32, op64, kind, expr)

/* Trapping float-to-int truncation: NaN and out-of-range inputs trap. */
#define TRUNC(ffield, ftype, rfield, lo_ok, hi_ok, conv) \
	{                                                   \
		ftype a = sp[-1].ffield;                        \
		if (a != a) goto trap_conversion;               \
		if (!((lo_ok) && (hi_ok))) goto trap_overflow;  \
		sp[-1].rfield = conv;                           \
		NEXT();                                         \
	}

#if THREADED
/* Labels as values are a GNU extension, which the -Wpedantic of the
 * firmware builds would flag. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif

wasm_code wasm_run(wasm_instance *inst, const wasm_func *f, uint32_t fuel) {
#if THREADED
	static const void *const dispatch[256] = {
		&&L_OP_UNREACHABLE, &&L_OP_BR_ADJ, &&L_OP_BR_IF_ADJ, &&L_OP_BR_UNLESS, &&L_OP_CALL_HOST,
		&&L_OP_I32_CONST_S, &&L_OP_I64_CONST_S, &&L_OP_MEMORY_COPY, &&L_OP_MEMORY_FILL, &&L_default,
		&&L_default, &&L_default, &&L_OP_BR, &&L_OP_BR_IF, &&L_OP_BR_TABLE, &&L_OP_RETURN, &&L_OP_CALL,
		&&L_OP_CALL_INDIRECT, &&L_default, &&L_default, &&L_default, &&L_default, &&L_default,
		&&L_default, &&L_default, &&L_default, &&L_OP_DROP, &&L_OP_SELECT, &&L_default, &&L_default,
		&&L_default, &&L_default, &&L_OP_LOCAL_GET, &&L_OP_LOCAL_SET, &&L_OP_LOCAL_TEE,
		&&L_OP_GLOBAL_GET, &&L_OP_GLOBAL_SET, &&L_default, &&L_default, &&L_default, &&L_0x28, &&L_0x29,
		&&L_0x2a, &&L_0x2b, &&L_0x2c, &&L_0x2d, &&L_0x2e, &&L_0x2f, &&L_0x30, &&L_0x31, &&L_0x32,
		&&L_0x33, &&L_0x34, &&L_0x35, &&L_0x36, &&L_0x37, &&L_0x38, &&L_0x39, &&L_0x3a, &&L_0x3b,
		&&L_0x3c, &&L_0x3d, &&L_0x3e, &&L_OP_MEMORY_SIZE, &&L_OP_MEMORY_GROW, &&L_OP_I32_CONST,
		&&L_OP_I64_CONST, &&L_OP_F32_CONST, &&L_OP_F64_CONST, &&L_0x45, &&L_0x46, &&L_0x47, &&L_0x48,
		&&L_0x49, &&L_0x4a, &&L_0x4b, &&L_0x4c, &&L_0x4d, &&L_0x4e, &&L_0x4f, &&L_0x50, &&L_0x51,
		&&L_0x52, &&L_0x53, &&L_0x54, &&L_0x55, &&L_0x56, &&L_0x57, &&L_0x58, &&L_0x59, &&L_0x5a,
		&&L_0x5b, &&L_0x5c, &&L_0x5d, &&L_0x5e, &&L_0x5f, &&L_0x60, &&L_0x61, &&L_0x62, &&L_0x63,
		&&L_0x64, &&L_0x65, &&L_0x66, &&L_0x67, &&L_0x68, &&L_0x69, &&L_0x6a, &&L_0x6b, &&L_0x6c,
		&&L_0x6d, &&L_0x6e, &&L_0x6f, &&L_0x70, &&L_0x71, &&L_0x72, &&L_0x73, &&L_0x74, &&L_0x75,
		&&L_0x76, &&L_0x77, &&L_0x78, &&L_0x79, &&L_0x7a, &&L_0x7b, &&L_0x7c, &&L_0x7d, &&L_0x7e,
		&&L_0x7f, &&L_0x80, &&L_0x81, &&L_0x82, &&L_0x83, &&L_0x84, &&L_0x85, &&L_0x86, &&L_0x87,
		&&L_0x88, &&L_0x89, &&L_0x8a, &&L_0x8b, &&L_0x8c, &&L_0x8d, &&L_0x8e, &&L_0x8f, &&L_0x90,
		&&L_0x91, &&L_0x92, &&L_0x93, &&L_0x94, &&L_0x95, &&L_0x96, &&L_0x97, &&L_0x98, &&L_0x99,
		&&L_0x9a, &&L_0x9b, &&L_0x9c, &&L_0x9d, &&L_0x9e, &&L_0x9f, &&L_0xa0, &&L_0xa1, &&L_0xa2,
		&&L_0xa3, &&L_0xa4, &&L_0xa5, &&L_0xa6, &&L_default, &&L_0xa8, &&L_0xa9, &&L_0xaa, &&L_0xab,
		&&L_0xac, &&L_0xad, &&L_0xae, &&L_0xaf, &&L_0xb0, &&L_0xb1, &&L_0xb2, &&L_0xb3, &&L_0xb4,
		&&L_0xb5, &&L_0xb6, &&L_0xb7, &&L_0xb8, &&L_0xb9, &&L_0xba, &&L_0xbb, &&L_default, &&L_default,
		&&L_default, &&L_default, &&L_0xc0, &&L_0xc1, &&L_0xc2, &&L_0xc3, &&L_0xc4, &&L_default,
		&&L_0xc6, &&L_0xc7, &&L_0xc8, &&L_0xc9, &&L_0xca, &&L_0xcb, &&L_0xcc, &&L_0xcd, &&L_0xce,
		&&L_0xcf, &&L_default, &&L_default, &&L_default, &&L_default, &&L_default, &&L_default,
		&&L_default, &&L_default, &&L_default, &&L_default, &&L_default, &&L_default, &&L_default,
		&&L_default, &&L_default, &&L_default, &&L_0xe0, &&L_0xe1, &&L_0xe2, &&L_0xe3, &&L_0xe4,
		&&L_0xe5, &&L_0xe6, &&L_0xe7, &&L_default, &&L_default, &&L_0xea, &&L_0xeb, &&L_0xec,
		&&L_default, &&L_default, &&L_default, &&L_default, &&L_0xf1, &&L_0xf2, &&L_0xf3, &&L_0xf4,
		&&L_0xf5, &&L_0xf6, &&L_0xf7, &&L_0xf8, &&L_OP_LOCAL_GET2, &&L_default, &&L_default, &&L_default,
		&&L_default, &&L_default, &&L_default,
	};
#endif
	wasm_value *const stack = inst->stack;
	wasm_value *const stack_end = stack + inst->stack_slots;
	wasm_frame *const frames = inst->frames;
	wasm_frame *const frames_end = frames + inst->max_frames;
	wasm_frame *frame = frames; /* next free frame */
	const uint32_t *const code = inst->code;
	const wasm_func *const funcs = inst->funcs;
	wasm_value *const globals = inst->globals;
	uint8_t *mem = inst->mem;
	uint64_t mem_size = inst->mem_size;
	wasm_value *fp = stack, *sp;
	const uint32_t *pc = code;
	const wasm_func *cur = f, *callee;
	wasm_code trap;

	if (f->is_host) {
		callee = f;
		sp = stack + f->nparams;
		goto do_host;
	}
	if (f->frame > inst->stack_slots) {
		goto trap_stack;
	}
	memset(fp + f->nparams, 0, (size_t)(f->nlocals - f->nparams) * sizeof(wasm_value));
	sp = fp + f->nlocals;
	pc = code + f->code;
	if (f->frame > inst->stack_peak) {
		inst->stack_peak = f->frame;
	}

	uint32_t w;
	for (;;) {
		w = *pc++;
		switch ((uint8_t)w) {
		CASE(OP_UNREACHABLE)
			goto trap_unreachable;
		CASE(OP_BR)
			CHARGE();
			pc = code + (w >> 8);
			NEXT();
		CASE(OP_BR_ADJ)
			CHARGE();
			ADJ(*pc);
			pc = code + (w >> 8);
			NEXT();
		CASE(OP_BR_IF)
			if ((--sp)->i32 != 0) {
				CHARGE();
				pc = code + (w >> 8);
			}
			NEXT();
		CASE(OP_BR_IF_ADJ)
			if ((--sp)->i32 != 0) {
				CHARGE();
				ADJ(*pc);
				pc = code + (w >> 8);
			} else {
				pc++;
			}
			NEXT();
		CASE(OP_BR_UNLESS)
			if ((--sp)->i32 == 0) {
				pc = code + (w >> 8);
			}
			NEXT();
		CASE(OP_BR_TABLE) {
			uint32_t n = w >> 8, i = (--sp)->i32;
			const uint32_t *e = pc + 2 * (size_t)(i < n ? i : n);
			CHARGE();
			ADJ(e[1]);
			pc = code + (e[0] >> 8);
			NEXT();
		}
		CASE(OP_RETURN) {
			if (cur->nresults) {
				fp[0] = sp[-1];
			}
			sp = fp + cur->nresults;
			if (frame == frames) {
				inst->fuel = fuel;
				return WASM_OK;
			}
			frame--;
			pc = frame->pc;
			fp = frame->fp;
			cur = frame->func;
			NEXT();
		}
		CASE(OP_CALL)
			callee = &funcs[w >> 8];
			goto do_call;
		CASE(OP_CALL_HOST)
			callee = &funcs[w >> 8];
			goto do_host;
		CASE(OP_CALL_INDIRECT) {
			uint32_t i = (--sp)->i32;
			if (i >= inst->table_size || inst->table[i] == UINT32_MAX) {
				goto trap_table;
			}
			callee = &funcs[inst->table[i]];
			if (callee->canon != w >> 8) {
				goto trap_signature;
			}
			if (callee->is_host) {
				goto do_host;
			}
			goto do_call;
		}
		CASE(OP_DROP)
			sp--;
			NEXT();
		CASE(OP_SELECT)
			sp -= 2;
			if (sp[1].i32 == 0) {
				sp[-1] = sp[0];
			}
			NEXT();
		CASE(OP_LOCAL_GET)
			*sp++ = fp[w >> 8];
			NEXT();
		CASE(OP_LOCAL_GET2)
			sp[0] = fp[(w >> 8) & 0xfff];
			sp[1] = fp[w >> 20];
			sp += 2;
			NEXT();
		CASE(OP_LOCAL_SET)
			fp[w >> 8] = *--sp;
			NEXT();
		CASE(OP_LOCAL_TEE)
			fp[w >> 8] = sp[-1];
			NEXT();
		CASE(OP_GLOBAL_GET)
			*sp++ = globals[w >> 8];
			NEXT();
		CASE(OP_GLOBAL_SET)
			globals[w >> 8] = *--sp;
			NEXT();

		MEM_LOADS(LOAD_OP)
		MEM_STORES(STORE_OP)

		CASE(OP_MEMORY_SIZE)
			(sp++)->i32 = inst->pages;
			NEXT();
		CASE(OP_MEMORY_GROW) {
			uint32_t delta = sp[-1].i32, old = inst->pages;
			if (delta <= inst->max_pages - old) {
				memset(mem + (size_t)mem_size, 0, (size_t)delta * PAGE_SIZE);
				inst->pages = old + delta;
				inst->mem_size = (uint64_t)inst->pages * PAGE_SIZE;
				mem_size = inst->mem_size;
				sp[-1].i32 = old;
			} else {
				sp[-1].i32 = UINT32_MAX;
			}
			NEXT();
		}
		CASE(OP_MEMORY_COPY) {
			uint32_t d = sp[-3].i32, s = sp[-2].i32, n = sp[-1].i32;
			if ((uint64_t)s + n > mem_size || (uint64_t)d + n > mem_size) {
				goto trap_memory;
			}
			memmove(mem + d, mem + s, n);
			sp -= 3;
			NEXT();
		}
		CASE(OP_MEMORY_FILL) {
			uint32_t d = sp[-3].i32, v = sp[-2].i32, n = sp[-1].i32;
			if ((uint64_t)d + n > mem_size) {
				goto trap_memory;
			}
			memset(mem + d, (int)(v & 0xff), n);
			sp -= 3;
			NEXT();
		}

		CASE(OP_I32_CONST_S)
			(sp++)->i32 = (uint32_t)((int32_t)w >> 8);
			NEXT();
		CASE(OP_I64_CONST_S)
			(sp++)->i64 = (uint64_t)(int64_t)((int32_t)w >> 8);
			NEXT();
		CASE(OP_I32_CONST)
		CASE(OP_F32_CONST)
			(sp++)->i32 = *pc++;
			NEXT();
		CASE(OP_I64_CONST)
		CASE(OP_F64_CONST)
			(sp++)->i64 = (uint64_t)pc[0] | (uint64_t)pc[1] << 32;
			pc += 2;
			NEXT();

		INT_OPS(I32_OP)
		INT_OPS(I64_OP)
		INT_FUSED_OPS(I32_FUSED_OP)
		INT_FUSED_OPS(I64_FUSED_OP)
		FLOAT_OPS(F32_OP)
		FLOAT_OPS(F64_OP)

		CASE(0xa8) TRUNC(f32, float, i32, a >= -2147483648.0f, a < 2147483648.0f, (uint32_t)(int32_t)a)
		CASE(0xa9) TRUNC(f32, float, i32, a > -1.0f, a < 4294967296.0f, (uint32_t)a)
		CASE(0xaa) TRUNC(f64, double, i32, a > -2147483649.0, a < 2147483648.0, (uint32_t)(int32_t)a)
		CASE(0xab) TRUNC(f64, double, i32, a > -1.0, a < 4294967296.0, (uint32_t)a)
		CASE(0xac) CONV(i32, i64, uint32_t, (uint64_t)(int64_t)S(a))
		CASE(0xad) CONV(i32, i64, uint32_t, (uint64_t)a)
		CASE(0xae) TRUNC(f32, float, i64, a >= -9223372036854775808.0f, a < 9223372036854775808.0f, (uint64_t)(int64_t)a)
		CASE(0xaf) TRUNC(f32, float, i64, a > -1.0f, a < 18446744073709551616.0f, (uint64_t)a)
		CASE(0xb0) TRUNC(f64, double, i64, a >= -9223372036854775808.0, a < 9223372036854775808.0, (uint64_t)(int64_t)a)
		CASE(0xb1) TRUNC(f64, double, i64, a > -1.0, a < 18446744073709551616.0, (uint64_t)a)
		CASE(0xb2) CONV(i32, f32, uint32_t, (float)S(a))
		CASE(0xb3) CONV(i32, f32, uint32_t, (float)a)
		CASE(0xb4) CONV(i64, f32, uint64_t, (float)S(a))
		CASE(0xb5) CONV(i64, f32, uint64_t, (float)a)
		CASE(0xb6) CONV(f64, f32, double, (float)a)
		CASE(0xb7) CONV(i32, f64, uint32_t, (double)S(a))
		CASE(0xb8) CONV(i32, f64, uint32_t, (double)a)
		CASE(0xb9) CONV(i64, f64, uint64_t, (double)S(a))
		CASE(0xba) CONV(i64, f64, uint64_t, (double)a)
		CASE(0xbb) CONV(f32, f64, float, (double)a)
		CASE(0xc0) UN(i32, uint32_t, (uint32_t)(int32_t)(int8_t)a)
		CASE(0xc1) UN(i32, uint32_t, (uint32_t)(int32_t)(int16_t)a)
		CASE(0xc2) UN(i64, uint64_t, (uint64_t)(int64_t)(int8_t)a)
		CASE(0xc3) UN(i64, uint64_t, (uint64_t)(int64_t)(int16_t)a)
		CASE(0xc4) UN(i64, uint64_t, (uint64_t)(int64_t)(int32_t)a)

		CASE(0xe0) CONV(f32, i32, float, sat_i32_s(a))
		CASE(0xe1) CONV(f32, i32, float, sat_i32_u(a))
		CASE(0xe2) CONV(f64, i32, double, sat_i32_s(a))
		CASE(0xe3) CONV(f64, i32, double, sat_i32_u(a))
		CASE(0xe4) CONV(f32, i64, float, sat_i64_s(a))
		CASE(0xe5) CONV(f32, i64, float, sat_i64_u(a))
		CASE(0xe6) CONV(f64, i64, double, sat_i64_s(a))
		CASE(0xe7) CONV(f64, i64, double, sat_i64_u(a))

		default: /* never emitted by the loader */
#if THREADED
		L_default:
#endif
			goto trap_unreachable;
		}
		continue;

	do_call: {
		CHARGE();
		wasm_value *nfp = sp - callee->nparams;
		if (frame == frames_end || (size_t)(stack_end - nfp) < callee->frame) {
			goto trap_stack;
		}
		frame->pc = pc;
		frame->fp = fp;
		frame->func = cur;
		frame++;
		if ((uint32_t)(nfp - stack) + callee->frame > inst->stack_peak) {
			inst->stack_peak = (uint32_t)(nfp - stack) + callee->frame;
		}
		if ((uint32_t)(frame - frames) > inst->depth_peak) {
			inst->depth_peak = (uint32_t)(frame - frames);
		}
		memset(nfp + callee->nparams, 0, (size_t)(callee->nlocals - callee->nparams) * sizeof(wasm_value));
		fp = nfp;
		sp = fp + callee->nlocals;
		cur = callee;
		pc = code + callee->code;
		RESUME();
	}

	do_host: {
		if (!f->is_host) {
			CHARGE();
		}
		wasm_value *args = sp - callee->nparams;
		inst->host_st.code = WASM_OK;
		inst->host_st.msg[0] = 0;
		inst->fuel = fuel;
		trap = callee->host->fn(inst, args);
		if (trap != WASM_OK) {
			goto host_trap;
		}
		sp = args + callee->nresults;
		mem = inst->mem;
		mem_size = inst->mem_size;
		if (f->is_host) {
			return WASM_OK; /* a direct call of an import */
		}
		RESUME();
	}
	}

trap_unreachable:
	trap = WASM_TRAP_UNREACHABLE;
	goto trapped;
trap_memory:
	trap = WASM_TRAP_MEMORY;
	goto trapped;
trap_div_zero:
	trap = WASM_TRAP_DIV_ZERO;
	goto trapped;
trap_overflow:
	trap = WASM_TRAP_OVERFLOW;
	goto trapped;
trap_conversion:
	trap = WASM_TRAP_CONVERSION;
	goto trapped;
trap_table:
	trap = WASM_TRAP_TABLE;
	goto trapped;
trap_signature:
	trap = WASM_TRAP_SIGNATURE;
	goto trapped;
trap_stack:
	trap = WASM_TRAP_STACK;
	goto trapped;
trap_fuel:
	trap = WASM_TRAP_FUEL;
trapped:
	inst->fuel = fuel;
	wasm_status_set(inst->st, trap, wasm_trap_message(trap));
	return trap;
host_trap:
	if (!wasm_is_trap(trap)) {
		trap = WASM_TRAP_HOST;
	}
	if (inst->host_st.msg[0] == 0) {
		wasm_status_set(inst->st, trap, "host function ");
		wasm_status_append(inst->st, callee->host->module);
		wasm_status_append(inst->st, ".");
		wasm_status_append(inst->st, callee->host->name);
		wasm_status_append(inst->st, " failed");
	} else {
		wasm_status_set(inst->st, trap, inst->host_st.msg);
	}
	return trap;
}

#if THREADED
#pragma GCC diagnostic pop
#endif

wasm_code wasm_call(wasm_instance *inst, uint32_t func, const wasm_value *args, uint32_t nargs,
                    wasm_value *results, uint32_t fuel, wasm_status *st) {
	wasm_status local;
	if (st == NULL) {
		st = &local;
	}
	wasm_status_set(st, WASM_OK, "");
	if (inst->running) {
		wasm_status_set(st, WASM_ERR_ARG, "wasm_call from inside a call");
		return st->code;
	}
	if (func >= inst->nfuncs) {
		wasm_status_set(st, WASM_ERR_ARG, "unknown function");
		return st->code;
	}
	const wasm_func *f = &inst->funcs[func];
	if (nargs != f->nparams) {
		wasm_status_set(st, WASM_ERR_ARG, "wrong number of arguments");
		return st->code;
	}
	if (nargs > inst->stack_slots || f->nresults > inst->stack_slots) {
		wasm_status_set(st, WASM_TRAP_STACK, wasm_trap_message(WASM_TRAP_STACK));
		return st->code;
	}
	for (uint32_t i = 0; i < nargs; i++) {
		inst->stack[i] = args[i];
	}
	inst->st = st;
	inst->running = true;
	wasm_code code = wasm_run(inst, f, fuel);
	inst->running = false;
	inst->st = NULL;
	if (code == WASM_OK && results != NULL) {
		for (uint32_t i = 0; i < f->nresults; i++) {
			results[i] = inst->stack[i];
		}
	}
	return code;
}

uint32_t wasm_fuel_left(const wasm_instance *inst) { return inst->fuel; }
