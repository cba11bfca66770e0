/*
 * Loading: binary decoding, validation, translation into internal code,
 * and instantiation, all inside the caller's arena.
 *
 * The arena is filled from the bottom with what the instance keeps (the
 * instance, types, functions, globals, table, exports, code, then the value
 * and call stacks and last the linear memory, so memory.grow can extend it
 * to the arena's end). While a function body is validated, its operand and
 * control stacks are scratch space taken from the top of the arena.
 *
 * Validation follows the algorithm of the WebAssembly core specification's
 * appendix (operand stack of types, control frames with a polymorphic
 * "unreachable" state). Translation runs alongside it: every branch gets its
 * target word offset and the number of operand slots to drop, computed from
 * the static stack heights, so the interpreter never searches for an end.
 */
#include <string.h>

#include "wasm_internal.h"

/* Scratch limits of the validator, per function. */
#define MAX_OPERANDS 4096u /* operand stack depth */
#define MAX_NESTING 512u   /* nested blocks, the function body included */

enum { SEC_COUNT = 13 };

typedef struct reader {
	const uint8_t *p, *end;
} reader;

/* ctrl is a control frame of the validator. */
typedef struct ctrl {
	uint8_t kind;        /* K_* */
	uint8_t result;      /* T_NONE or the result type */
	uint8_t unreachable; /* the rest of the frame's code is dead */
	uint8_t dead;        /* opened in dead code: nothing in it is emitted */
	uint32_t height;     /* operand stack height at entry */
	uint32_t label;      /* loop: word offset of its start */
	uint32_t patches;    /* chain of words to patch with the end's offset */
	uint32_t else_patch; /* if: word of its OP_BR_UNLESS, NONE24 if none */
} ctrl;

enum { K_BLOCK, K_LOOP, K_IF, K_ELSE, K_FUNC };

typedef struct loader {
	wasm_instance *inst;
	const uint8_t *bin;
	wasm_status *st;
	uint8_t *lo; /* next free byte for kept allocations */
	uint8_t *hi; /* end of free space; scratch lies above */
	reader sec[SEC_COUNT];
	bool has_sec[SEC_COUNT];
	wasm_status m;   /* a message being composed */
	const char *ctx; /* what is being read, for messages */
	uint32_t ctx_index;
	bool ctx_has_index;
	const uint8_t *at; /* position of the current item, for messages */
	uint32_t mem_min, mem_max;
	bool mem_has_max;
	uint32_t ndata; /* data count section, or UINT32_MAX */

	/* function body state */
	uint8_t *vals;
	uint32_t nvals, max_vals;
	ctrl *ctrls;
	uint32_t nctrls;
	uint32_t *run_end; /* local declarations: end index of each run */
	uint8_t *run_type;
	uint32_t nruns, nlocals, nparams;
	const wasm_func *fn;
	uint32_t code_cap; /* words available for code */
	uint32_t last_op;  /* word of the last one-word instruction, if fusable; else NONE24 */
} loader;

/* ---- status messages ---- */

void wasm_status_set(wasm_status *st, wasm_code code, const char *msg) {
	st->code = code;
	st->msg[0] = 0;
	wasm_status_append(st, msg);
}

void wasm_status_append(wasm_status *st, const char *s) {
	size_t n = strlen(st->msg);
	while (*s != 0 && n + 1 < WASM_MSG_MAX) {
		st->msg[n++] = *s++;
	}
	st->msg[n] = 0;
}

void wasm_status_append_int(wasm_status *st, int64_t v) {
	char buf[24];
	char *p = buf + sizeof buf;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	*--p = 0;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0) {
		*--p = '-';
	}
	wasm_status_append(st, p);
}

/* append_name appends a module-supplied name, printable ASCII only. */
static void append_name(wasm_status *st, const uint8_t *p, uint32_t n) {
	char buf[2] = {0, 0};
	for (uint32_t i = 0; i < n && i < 48; i++) {
		buf[0] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
		wasm_status_append(st, buf);
	}
	if (n > 48) {
		wasm_status_append(st, "...");
	}
}

static const char *type_name(uint8_t t) {
	switch (t) {
	case T_I32: return "i32";
	case T_I64: return "i64";
	case T_F32: return "f32";
	case T_F64: return "f64";
	default: return "nothing";
	}
}

static char type_letter(uint8_t t) {
	switch (t) {
	case T_I32: return 'i';
	case T_I64: return 'I';
	case T_F32: return 'f';
	default: return 'F';
	}
}

static void append_letters(wasm_status *st, const char *s) {
	wasm_status_append(st, "(");
	for (const char *p = s; *p != 0; p++) {
		if (p != s) {
			wasm_status_append(st, ", ");
		}
		wasm_status_append(st, *p == 'i' ? "i32" : *p == 'I' ? "i64" : *p == 'f' ? "f32" : *p == 'F' ? "f64" : "?");
	}
	wasm_status_append(st, ")");
}

/* fail records the first error, prefixed with the current context and
 * followed by the byte offset, and returns false. */
static bool fail(loader *L, wasm_code code, const char *msg) {
	wasm_status *st = L->st;
	if (st->code != WASM_OK) {
		return false;
	}
	st->code = code;
	st->msg[0] = 0;
	if (L->ctx != NULL) {
		wasm_status_append(st, L->ctx);
		if (L->ctx_has_index) {
			wasm_status_append(st, " ");
			wasm_status_append_int(st, L->ctx_index);
		}
		wasm_status_append(st, ": ");
	}
	wasm_status_append(st, msg);
	if (L->at != NULL) {
		wasm_status_append(st, " (at byte ");
		wasm_status_append_int(st, L->at - L->bin);
		wasm_status_append(st, ")");
	}
	return false;
}

/* fail_at fails pointing the message at byte at. */
static bool fail_at(loader *L, const uint8_t *at, wasm_code code, const char *msg) {
	L->at = at;
	return fail(L, code, msg);
}

static void set_ctx(loader *L, const char *ctx, bool has_index, uint32_t index) {
	L->ctx = ctx;
	L->ctx_has_index = has_index;
	L->ctx_index = index;
}

/* ---- reading ---- */

static bool rd_byte(loader *L, reader *r, uint8_t *out) {
	*out = 0;
	if (r->p >= r->end) {
		return fail_at(L, r->p, WASM_ERR_MALFORMED, "unexpected end");
	}
	*out = *r->p++;
	return true;
}

/* rd_leb reads a LEB128 integer of the given width, checking the rules of
 * the binary format: at most ceil(bits/7) bytes, unused bits of the last
 * byte zero (unsigned) or a sign extension (signed). */
static bool rd_leb(loader *L, reader *r, unsigned bits, bool sign, uint64_t *out) {
	const unsigned maxbytes = (bits + 6) / 7;
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b = 0;
	*out = 0;
	for (unsigned i = 0;; i++) {
		if (!rd_byte(L, r, &b)) {
			return false;
		}
		if (i == maxbytes - 1) {
			unsigned used = bits - 7 * i;
			L->at = r->p - 1;
			if (b & 0x80) {
				return fail(L, WASM_ERR_MALFORMED, "integer representation too long");
			}
			if (!sign && (b >> used) != 0) {
				return fail(L, WASM_ERR_MALFORMED, "integer too large");
			}
			if (sign) {
				uint8_t rest = (uint8_t)(b >> (used - 1));
				if (rest != 0 && rest != (uint8_t)(0x7f >> (used - 1))) {
					return fail(L, WASM_ERR_MALFORMED, "integer too large");
				}
			}
			v |= (uint64_t)(b & 0x7f) << shift;
			shift += 7;
			break;
		}
		v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80)) {
			break;
		}
	}
	if (sign && shift < 64 && (b & 0x40)) {
		v |= ~(uint64_t)0 << shift;
	}
	*out = v;
	return true;
}

static bool rd_u32(loader *L, reader *r, uint32_t *out) {
	uint64_t v;
	*out = 0;
	if (!rd_leb(L, r, 32, false, &v)) {
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

/* rd_count reads a vector length, refusing one larger than the bytes left
 * when each element takes at least min_size bytes. */
static bool rd_count(loader *L, reader *r, uint32_t min_size, uint32_t *out) {
	const uint8_t *at = r->p;
	if (!rd_u32(L, r, out)) {
		return false;
	}
	if ((uint64_t)*out * min_size > (uint64_t)(r->end - r->p)) {
		return fail_at(L, at, WASM_ERR_MALFORMED, "count is larger than the bytes left");
	}
	return true;
}

static bool rd_bytes(loader *L, reader *r, uint32_t n, const uint8_t **out) {
	*out = r->p;
	if ((size_t)(r->end - r->p) < n) {
		return fail_at(L, r->p, WASM_ERR_MALFORMED, "unexpected end");
	}
	*out = r->p;
	r->p += n;
	return true;
}

bool wasm_utf8_valid(const uint8_t *p, size_t n) {
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i < len) {
			return false;
		}
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80) {
				return false;
			}
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
			return false;
		}
		i += len;
	}
	return true;
}

static bool rd_name(loader *L, reader *r, const uint8_t **name, uint32_t *len) {
	const uint8_t *at = r->p;
	if (!rd_u32(L, r, len) || !rd_bytes(L, r, *len, name)) {
		return false;
	}
	if (!wasm_utf8_valid(*name, *len)) {
		return fail_at(L, at, WASM_ERR_MALFORMED, "name is not valid UTF-8");
	}
	return true;
}

static bool rd_valtype(loader *L, reader *r, uint8_t *t) {
	const uint8_t *at = r->p;
	if (!rd_byte(L, r, t)) {
		return false;
	}
	switch (*t) {
	case T_I32:
	case T_I64:
	case T_F32:
	case T_F64:
		return true;
	case 0x7b:
	case 0x70:
	case 0x6f:
		return fail_at(L, at, WASM_ERR_UNSUPPORTED, "vector and reference value types are not supported");
	default:
		return fail_at(L, at, WASM_ERR_MALFORMED, "unknown value type");
	}
}

/* ---- arena ---- */

static uint8_t *align8(uint8_t *p) {
	return (uint8_t *)(((uintptr_t)p + 7u) & ~(uintptr_t)7u);
}

/* alloc takes n zeroed bytes, 8-aligned, from the bottom of the free space. */
static void *alloc(loader *L, size_t n, const char *what) {
	uint8_t *p = align8(L->lo);
	if (p > L->hi || (size_t)(L->hi - p) < n) {
		L->at = NULL;
		wasm_status_set(&L->m, WASM_ERR_ARENA, "arena too small for ");
		wasm_status_append(&L->m, what);
		fail(L, WASM_ERR_ARENA, L->m.msg);
		return NULL;
	}
	L->lo = p + n;
	memset(p, 0, n);
	return p;
}

/* scratch takes n bytes, 8-aligned, from the top of the free space. */
static void *scratch(loader *L, size_t n) {
	uintptr_t top = (uintptr_t)L->hi;
	if ((uintptr_t)L->lo > top || top - (uintptr_t)L->lo < n + 8) {
		L->at = NULL;
		fail(L, WASM_ERR_ARENA, "arena too small to validate a function");
		return NULL;
	}
	top = (top - n) & ~(uintptr_t)7u;
	L->hi = (uint8_t *)top;
	return L->hi;
}

/* ---- sections ---- */

/* section_rank gives the position a section id must appear in. */
static int section_rank(uint8_t id) {
	static const uint8_t rank[SEC_COUNT] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 10};
	return id < SEC_COUNT ? rank[id] : -1;
}

static bool scan_sections(loader *L, const uint8_t *bin, size_t len) {
	reader r = {bin, bin + len};
	L->at = bin;
	if (len < 4 || memcmp(bin, "\0asm", 4) != 0) {
		return fail(L, WASM_ERR_MALFORMED, "not WebAssembly (no \\0asm magic number)");
	}
	if (len < 8 || memcmp(bin + 4, "\1\0\0\0", 4) != 0) {
		return fail(L, WASM_ERR_MALFORMED, "unsupported binary format version");
	}
	r.p += 8;
	int last = 0;
	while (r.p < r.end) {
		const uint8_t *start = r.p;
		uint8_t id;
		uint32_t size;
		if (!rd_byte(L, &r, &id) || !rd_u32(L, &r, &size)) {
			return false;
		}
		L->at = start;
		if ((size_t)(r.end - r.p) < size) {
			return fail(L, WASM_ERR_MALFORMED, "section size is larger than the bytes left");
		}
		reader body = {r.p, r.p + size};
		r.p += size;
		if (id == 0) {
			const uint8_t *name;
			uint32_t n;
			if (!rd_name(L, &body, &name, &n)) {
				return false;
			}
			continue;
		}
		int rank = section_rank(id);
		if (rank < 0) {
			return fail(L, WASM_ERR_MALFORMED, "unknown section id");
		}
		if (rank <= last) {
			return fail(L, WASM_ERR_MALFORMED, "section out of order or repeated");
		}
		last = rank;
		L->sec[id] = body;
		L->has_sec[id] = true;
	}
	return true;
}

/* section_done checks that a section's entries used all its bytes. */
static bool section_done(loader *L, reader *r) {
	if (r->p != r->end) {
		return fail_at(L, r->p, WASM_ERR_MALFORMED, "section has bytes after its last entry");
	}
	return true;
}

/* Section names by id, the context of their messages. */
static const char *const section_names[SEC_COUNT] = {
    "custom section", "type section",   "import section",  "function section", "table section",
    "memory section", "global section", "export section",  "start section",    "element section",
    "code section",   "data section",   "data count section",
};

/* open_section reads the entry count of section id, 0 when it is absent;
 * each entry takes at least min_size bytes. More than max entries are
 * refused with too_many. */
static bool open_section(loader *L, uint8_t id, uint32_t min_size, uint32_t max, const char *too_many,
                         uint32_t *n) {
	*n = 0;
	set_ctx(L, section_names[id], false, 0);
	if (L->has_sec[id] && !rd_count(L, &L->sec[id], min_size, n)) {
		return false;
	}
	return *n <= max || fail(L, WASM_ERR_UNSUPPORTED, too_many);
}

/* set_entry sets the context to entry i of a section, named what, starting
 * at r's position. */
static void set_entry(loader *L, reader *r, const char *what, uint32_t i) {
	set_ctx(L, what, true, i);
	L->at = r->p;
}

/* close_section checks, in the section's context again, that its entries
 * used all its bytes. */
static bool close_section(loader *L, uint8_t id) {
	set_ctx(L, section_names[id], false, 0);
	return !L->has_sec[id] || section_done(L, &L->sec[id]);
}

static bool read_types(loader *L) {
	wasm_instance *inst = L->inst;
	reader *r = &L->sec[1];
	uint32_t n;
	if (!open_section(L, 1, 3, IMM_MAX, "too many types", &n)) {
		return false;
	}
	inst->types = alloc(L, (size_t)n * sizeof(wasm_type), "types");
	if (inst->types == NULL) {
		return false;
	}
	inst->ntypes = n;
	for (uint32_t i = 0; i < n; i++) {
		wasm_type *t = &inst->types[i];
		uint8_t form;
		uint32_t np, nr;
		set_entry(L, r, "type", i);
		if (!rd_byte(L, r, &form)) {
			return false;
		}
		if (form != 0x60) {
			return fail(L, WASM_ERR_MALFORMED, "type form is not 0x60 (func)");
		}
		if (!rd_count(L, r, 1, &np)) {
			return false;
		}
		if (np > 255) {
			return fail(L, WASM_ERR_UNSUPPORTED, "more than 255 parameters");
		}
		t->params = alloc(L, np, "types");
		if (t->params == NULL) {
			return false;
		}
		t->nparams = (uint16_t)np;
		for (uint32_t k = 0; k < np; k++) {
			if (!rd_valtype(L, r, &t->params[k])) {
				return false;
			}
		}
		L->at = r->p;
		if (!rd_count(L, r, 1, &nr)) {
			return false;
		}
		if (nr > 1) {
			return fail(L, WASM_ERR_UNSUPPORTED, "multiple results are not supported");
		}
		t->nresults = (uint8_t)nr;
		if (nr == 1 && !rd_valtype(L, r, &t->result)) {
			return false;
		}
		t->canon = i;
		for (uint32_t k = 0; k < i; k++) {
			const wasm_type *o = &inst->types[k];
			if (o->canon == k && o->nparams == t->nparams && o->nresults == t->nresults &&
			    o->result == t->result && memcmp(o->params, t->params, np) == 0) {
				t->canon = k;
				break;
			}
		}
	}
	return close_section(L, 1);
}

static void func_set_type(wasm_instance *inst, wasm_func *f, uint32_t type) {
	const wasm_type *t = &inst->types[type];
	f->type = type;
	f->canon = t->canon;
	f->nparams = t->nparams;
	f->nresults = t->nresults;
	f->nlocals = t->nparams;
	f->frame = t->nparams > t->nresults ? t->nparams : t->nresults;
}

/* rd_index reads an index, refusing one at or over limit with msg. */
static bool rd_index(loader *L, reader *r, uint32_t limit, const char *msg, uint32_t *idx) {
	const uint8_t *at = r->p;
	if (!rd_u32(L, r, idx)) {
		return false;
	}
	return *idx < limit || fail_at(L, at, WASM_ERR_INVALID, msg);
}

static bool rd_typeidx(loader *L, reader *r, uint32_t *idx) {
	return rd_index(L, r, L->inst->ntypes, "unknown type index", idx);
}

/* names_equal compares a module-supplied name with a C string. */
static bool names_equal(const uint8_t *p, uint32_t n, const char *s) {
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

static bool sig_matches(const wasm_type *t, const wasm_host_func *h) {
	size_t np = strlen(h->params), nr = strlen(h->results);
	if (np != t->nparams || nr != t->nresults) {
		return false;
	}
	for (size_t i = 0; i < np; i++) {
		if (h->params[i] != type_letter(t->params[i])) {
			return false;
		}
	}
	return nr == 0 || h->results[0] == type_letter(t->result);
}

static void append_type(wasm_status *st, const wasm_type *t) {
	wasm_status_append(st, "(");
	for (uint32_t i = 0; i < t->nparams; i++) {
		wasm_status_append(st, i == 0 ? "" : ", ");
		wasm_status_append(st, type_name(t->params[i]));
	}
	wasm_status_append(st, ") -> (");
	wasm_status_append(st, t->nresults ? type_name(t->result) : "");
	wasm_status_append(st, ")");
}

/* import_msg starts in L->m a link error about import mod.name. */
static void import_msg(loader *L, const uint8_t *mod, uint32_t nmod, const uint8_t *name,
                       uint32_t nname) {
	wasm_status_set(&L->m, WASM_ERR_LINK, "imports ");
	append_name(&L->m, mod, nmod);
	wasm_status_append(&L->m, ".");
	append_name(&L->m, name, nname);
}

static bool read_imports_and_functions(loader *L) {
	wasm_instance *inst = L->inst;
	reader *ri = &L->sec[2], *rf = &L->sec[3];
	uint32_t ni, nf;
	if (!open_section(L, 2, 4, UINT32_MAX, NULL, &ni)) {
		return false;
	}
	if (!open_section(L, 3, 1, UINT32_MAX, NULL, &nf)) {
		return false;
	}
	if ((uint64_t)ni + nf > IMM_MAX) {
		return fail(L, WASM_ERR_UNSUPPORTED, "too many functions");
	}
	inst->funcs = alloc(L, ((size_t)ni + nf) * sizeof(wasm_func), "functions");
	if (inst->funcs == NULL) {
		return false;
	}
	inst->nimports = ni;
	inst->nfuncs = ni + nf;
	for (uint32_t i = 0; i < ni; i++) {
		const uint8_t *mod, *name;
		uint32_t nmod, nname, type;
		uint8_t kind;
		set_entry(L, ri, "import", i);
		if (!rd_name(L, ri, &mod, &nmod) || !rd_name(L, ri, &name, &nname) || !rd_byte(L, ri, &kind)) {
			return false;
		}
		if (kind != 0) {
			if (kind > 3) {
				return fail(L, WASM_ERR_MALFORMED, "unknown import kind");
			}
			L->ctx = NULL;
			L->at = NULL;
			import_msg(L, mod, nmod, name, nname);
			wasm_status_append(&L->m, kind == 1 ? ", a table" : kind == 2 ? ", a memory" : ", a global");
			wasm_status_append(&L->m, "; only functions can be imported");
			return fail(L, WASM_ERR_LINK, L->m.msg);
		}
		if (!rd_typeidx(L, ri, &type)) {
			return false;
		}
		wasm_func *f = &inst->funcs[i];
		func_set_type(inst, f, type);
		f->is_host = 1;
		const wasm_host_func *h = NULL;
		bool module_known = false;
		for (size_t k = 0; k < inst->cfg.nhosts; k++) {
			const wasm_host_func *c = &inst->cfg.hosts[k];
			if (names_equal(mod, nmod, c->module)) {
				module_known = true;
				if (names_equal(name, nname, c->name)) {
					h = c;
					break;
				}
			}
		}
		L->ctx = NULL;
		L->at = NULL;
		if (h == NULL) {
			import_msg(L, mod, nmod, name, nname);
			wasm_status_append(&L->m, module_known ? ", which the host does not provide"
			                                       : ", from a module the host does not provide");
			return fail(L, WASM_ERR_LINK, L->m.msg);
		}
		if (!sig_matches(&inst->types[type], h)) {
			import_msg(L, mod, nmod, name, nname);
			wasm_status_append(&L->m, " as ");
			append_type(&L->m, &inst->types[type]);
			wasm_status_append(&L->m, ", want ");
			append_letters(&L->m, h->params);
			wasm_status_append(&L->m, " -> ");
			append_letters(&L->m, h->results);
			return fail(L, WASM_ERR_LINK, L->m.msg);
		}
		f->host = h;
	}
	if (!close_section(L, 2)) {
		return false;
	}
	for (uint32_t i = 0; i < nf; i++) {
		uint32_t type;
		set_ctx(L, "function", true, ni + i);
		if (!rd_typeidx(L, rf, &type)) {
			return false;
		}
		func_set_type(inst, &inst->funcs[ni + i], type);
	}
	return close_section(L, 3);
}

static bool rd_limits(loader *L, reader *r, uint32_t *min, uint32_t *max, bool *has_max) {
	uint8_t flag;
	const uint8_t *at = r->p;
	if (!rd_byte(L, r, &flag)) {
		return false;
	}
	if (flag > 1) {
		return fail_at(L, at, flag <= 3 ? WASM_ERR_UNSUPPORTED : WASM_ERR_MALFORMED,
		               flag <= 3 ? "shared memory is not supported" : "bad limits flag");
	}
	if (!rd_u32(L, r, min)) {
		return false;
	}
	*has_max = flag == 1;
	*max = 0;
	if (*has_max && !rd_u32(L, r, max)) {
		return false;
	}
	if (*has_max && *max < *min) {
		return fail_at(L, at, WASM_ERR_INVALID, "size minimum must not be greater than maximum");
	}
	return true;
}

static bool read_table(loader *L) {
	wasm_instance *inst = L->inst;
	reader *r = &L->sec[4];
	uint32_t n;
	if (!open_section(L, 4, 3, 1, "more than one table", &n)) {
		return false;
	}
	if (n == 1) {
		uint8_t et;
		uint32_t min, max;
		bool has_max;
		L->at = r->p;
		if (!rd_byte(L, r, &et)) {
			return false;
		}
		if (et != 0x70) {
			return fail(L, et == 0x6f ? WASM_ERR_UNSUPPORTED : WASM_ERR_MALFORMED,
			            "table element type is not funcref");
		}
		if (!rd_limits(L, r, &min, &max, &has_max)) {
			return false;
		}
		if (min > inst->cfg.max_table || (has_max && max > inst->cfg.max_table)) {
			wasm_status_set(&L->m, WASM_ERR_LIMIT, "table of ");
			wasm_status_append_int(&L->m, has_max ? max : min);
			wasm_status_append(&L->m, " elements is over the limit of ");
			wasm_status_append_int(&L->m, inst->cfg.max_table);
			return fail(L, WASM_ERR_LIMIT, L->m.msg);
		}
		inst->table = alloc(L, (size_t)min * 4, "the table");
		if (inst->table == NULL) {
			return false;
		}
		memset(inst->table, 0xff, (size_t)min * 4);
		inst->has_table = true;
		inst->table_size = min;
		inst->table_max = max;
		inst->table_has_max = has_max;
	}
	return close_section(L, 4);
}

static bool read_memory(loader *L) {
	wasm_instance *inst = L->inst;
	reader *r = &L->sec[5];
	uint32_t n;
	if (!open_section(L, 5, 2, 1, "more than one memory", &n)) {
		return false;
	}
	if (n == 1) {
		L->at = r->p;
		if (!rd_limits(L, r, &L->mem_min, &L->mem_max, &L->mem_has_max)) {
			return false;
		}
		if (L->mem_min > MAX_PAGES || (L->mem_has_max && L->mem_max > MAX_PAGES)) {
			return fail(L, WASM_ERR_INVALID, "memory size must be at most 65536 pages (4GiB)");
		}
		if (L->mem_min > inst->cfg.memory_pages) {
			L->at = NULL;
			wasm_status_set(&L->m, WASM_ERR_LIMIT, "declares a minimum of ");
			wasm_status_append_int(&L->m, L->mem_min);
			wasm_status_append(&L->m, " memory pages (");
			wasm_status_append_int(&L->m, (int64_t)L->mem_min * 64);
			wasm_status_append(&L->m, " KiB), over the limit of ");
			wasm_status_append_int(&L->m, inst->cfg.memory_pages);
			wasm_status_append(&L->m, " pages (");
			wasm_status_append_int(&L->m, (int64_t)inst->cfg.memory_pages * 64);
			wasm_status_append(&L->m, " KiB)");
			return fail(L, WASM_ERR_LIMIT, L->m.msg);
		}
		inst->has_memory = true;
	}
	return close_section(L, 5);
}

/* rd_const reads the immediate of i32/i64/f32/f64.const (op 0x41..0x44):
 * its bits in *v, zero-extended for the 32-bit types, its type in *t. */
static bool rd_const(loader *L, reader *r, uint8_t op, uint64_t *v, uint8_t *t) {
	static const uint8_t types[4] = {T_I32, T_I64, T_F32, T_F64};
	bool wide = op == 0x42 || op == 0x44;
	const uint8_t *b;
	*t = types[op - 0x41];
	*v = 0;
	if (op == 0x41 || op == 0x42) {
		if (!rd_leb(L, r, wide ? 64 : 32, true, v)) {
			return false;
		}
		if (!wide) {
			*v = (uint32_t)*v;
		}
		return true;
	}
	if (!rd_bytes(L, r, wide ? 8 : 4, &b)) {
		return false;
	}
	memcpy(v, b, wide ? 8 : 4); /* little-endian, like the slots */
	return true;
}

/* const_expr evaluates a constant expression of type want. Only the
 * constant instructions are allowed: there are no imported globals. */
static bool const_expr(loader *L, reader *r, uint8_t want, wasm_value *out) {
	uint8_t op, end, got;
	const uint8_t *at = r->p;
	if (!rd_byte(L, r, &op)) {
		return false;
	}
	out->i64 = 0;
	switch (op) {
	case 0x41:
	case 0x42:
	case 0x43:
	case 0x44:
		if (!rd_const(L, r, op, &out->i64, &got)) {
			return false;
		}
		break;
	case 0x23:
		return fail_at(L, at, WASM_ERR_INVALID, "unknown global in a constant expression");
	case 0x0b:
		return fail_at(L, at, WASM_ERR_INVALID, "type mismatch: empty constant expression");
	default:
		return fail_at(L, at, WASM_ERR_INVALID, "constant expression required");
	}
	if (got != want) {
		return fail_at(L, at, WASM_ERR_INVALID, "type mismatch in a constant expression");
	}
	at = r->p;
	if (!rd_byte(L, r, &end)) {
		return false;
	}
	if (end != 0x0b) {
		return fail_at(L, at, WASM_ERR_INVALID, "constant expression required (one instruction, then end)");
	}
	return true;
}

static bool read_globals(loader *L) {
	wasm_instance *inst = L->inst;
	reader *r = &L->sec[6];
	uint32_t n;
	if (!open_section(L, 6, 4, IMM_MAX, "too many globals", &n)) {
		return false;
	}
	inst->globals = alloc(L, (size_t)n * sizeof(wasm_value), "globals");
	inst->gtypes = alloc(L, n, "globals");
	if (inst->globals == NULL || inst->gtypes == NULL) {
		return false;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint8_t t, mut;
		set_ctx(L, "global", true, i);
		if (!rd_valtype(L, r, &t)) {
			return false;
		}
		L->at = r->p;
		if (!rd_byte(L, r, &mut)) {
			return false;
		}
		if (mut > 1) {
			return fail(L, WASM_ERR_MALFORMED, "bad mutability");
		}
		if (!const_expr(L, r, t, &inst->globals[i])) {
			return false;
		}
		inst->gtypes[i] = (uint8_t)(t | (mut ? 0x80 : 0));
		inst->nglobals = i + 1;
	}
	return close_section(L, 6);
}

static bool read_exports(loader *L) {
	wasm_instance *inst = L->inst;
	reader *r = &L->sec[7];
	uint32_t n;
	if (!open_section(L, 7, 3, UINT32_MAX, NULL, &n)) {
		return false;
	}
	inst->exports = alloc(L, (size_t)n * sizeof(wasm_export), "exports");
	if (inst->exports == NULL) {
		return false;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *name;
		uint32_t len, idx;
		uint8_t kind;
		set_entry(L, r, "export", i);
		if (!rd_name(L, r, &name, &len) || !rd_byte(L, r, &kind) || !rd_u32(L, r, &idx)) {
			return false;
		}
		bool ok;
		switch (kind) {
		case 0: ok = idx < inst->nfuncs; break;
		case 1: ok = inst->has_table && idx == 0; break;
		case 2: ok = inst->has_memory && idx == 0; break;
		case 3: ok = idx < inst->nglobals; break;
		default: return fail(L, WASM_ERR_MALFORMED, "unknown export kind");
		}
		if (!ok) {
			return fail(L, WASM_ERR_INVALID, "unknown exported function, table, memory or global");
		}
		for (uint32_t k = 0; k < i; k++) {
			if (inst->exports[k].len == len && memcmp(inst->exports[k].name, name, len) == 0) {
				return fail(L, WASM_ERR_INVALID, "duplicate export name");
			}
		}
		char *copy = alloc(L, (size_t)len + 1, "exports");
		if (copy == NULL) {
			return false;
		}
		memcpy(copy, name, len);
		inst->exports[i] = (wasm_export){.name = copy, .len = len, .kind = kind, .index = idx};
		inst->nexports = i + 1;
	}
	return close_section(L, 7);
}

static bool read_start(loader *L) {
	wasm_instance *inst = L->inst;
	reader *r = &L->sec[8];
	inst->start_func = UINT32_MAX;
	if (!L->has_sec[8]) {
		return true;
	}
	set_ctx(L, section_names[8], false, 0);
	L->at = r->p;
	if (!rd_u32(L, r, &inst->start_func)) {
		return false;
	}
	if (inst->start_func >= inst->nfuncs) {
		return fail(L, WASM_ERR_INVALID, "unknown start function");
	}
	const wasm_func *f = &inst->funcs[inst->start_func];
	if (f->nparams != 0 || f->nresults != 0) {
		return fail(L, WASM_ERR_INVALID, "start function must be () -> ()");
	}
	return section_done(L, r);
}

/* read_elements validates the element segments and writes them into the
 * table (instantiation). */
static bool read_elements(loader *L) {
	wasm_instance *inst = L->inst;
	reader *r = &L->sec[9];
	uint32_t n;
	if (!open_section(L, 9, 1, UINT32_MAX, NULL, &n)) {
		return false;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t prefix, count;
		wasm_value off;
		set_entry(L, r, "element segment", i);
		if (!rd_u32(L, r, &prefix)) {
			return false;
		}
		if (prefix != 0) {
			return fail(L, prefix <= 7 ? WASM_ERR_UNSUPPORTED : WASM_ERR_MALFORMED,
			            "only active function-index segments of table 0 are supported");
		}
		if (!inst->has_table) {
			return fail(L, WASM_ERR_INVALID, "unknown table 0");
		}
		if (!const_expr(L, r, T_I32, &off) || !rd_count(L, r, 1, &count)) {
			return false;
		}
		bool fits = (uint64_t)off.i32 + count <= inst->table_size;
		for (uint32_t k = 0; k < count; k++) {
			uint32_t fi;
			L->at = r->p;
			if (!rd_u32(L, r, &fi)) {
				return false;
			}
			if (fi >= inst->nfuncs) {
				return fail(L, WASM_ERR_INVALID, "unknown function");
			}
			if (fits) {
				inst->table[off.i32 + k] = fi;
			}
		}
		if (!fits) {
			return fail_at(L, NULL, WASM_ERR_INVALID,
			               "out of bounds table access: segment does not fit the table");
		}
	}
	return close_section(L, 9);
}

/* ---- function bodies: validation and translation ---- */

static uint32_t here(const loader *L) { return L->inst->ncode; }

static bool emitting(const loader *L) {
	const ctrl *c = &L->ctrls[L->nctrls - 1];
	return !c->dead && !c->unreachable;
}

/* put appends a word, whether or not the code is live. */
static bool put(loader *L, uint32_t w) {
	wasm_instance *inst = L->inst;
	L->last_op = NONE24;
	if (inst->ncode >= L->code_cap) {
		return fail_at(L, NULL, inst->ncode >= IMM_MAX ? WASM_ERR_UNSUPPORTED : WASM_ERR_ARENA,
		               "arena too small for the code");
	}
	inst->code[inst->ncode++] = w;
	return true;
}

/* emit appends a word of live code; dead code is dropped. */
static bool emit(loader *L, uint32_t w) {
	return emitting(L) ? put(L, w) : true;
}

/* emit_op appends the first word of a live instruction. */
static bool emit_op(loader *L, uint8_t op, uint32_t imm) {
	if (!emitting(L)) {
		return true;
	}
	uint32_t at = here(L);
	if (!put(L, (uint32_t)op | imm << 8)) {
		return false;
	}
	L->last_op = at;
	return true;
}

/* fusable returns the last instruction word if it is op and the
 * instruction about to be emitted may fuse with it: both live, nothing
 * branching in between. */
static uint32_t *fusable(loader *L, uint8_t op) {
	if (!emitting(L) || L->last_op == NONE24 || L->last_op + 1 != here(L)) {
		return NULL;
	}
	uint32_t *w = &L->inst->code[L->last_op];
	return (uint8_t)*w == op ? w : NULL;
}

/* emit_numeric emits a numeric instruction, fusing "i32.const c; op" into
 * one instruction with an immediate where the interpreter has one. */
static bool emit_numeric(loader *L, uint8_t op) {
	bool imm_form = (op >= 0x46 && op <= 0x4f) || (op >= 0x6a && op <= 0x6c) || (op >= 0x71 && op <= 0x78);
	uint32_t *w = imm_form ? fusable(L, OP_I32_CONST_S) : NULL;
	if (w != NULL) {
		*w = (*w & ~0xffu) | (uint8_t)(op + OP_IMM_DELTA);
		L->last_op = NONE24;
		return true;
	}
	return emit_op(L, op, 0);
}

/* emit_local_get emits local.get, pairing it with a previous one. */
static bool emit_local_get(loader *L, uint32_t idx) {
	uint32_t *w = idx < 4096 ? fusable(L, OP_LOCAL_GET) : NULL;
	if (w != NULL && (*w >> 8) < 4096) {
		*w = OP_LOCAL_GET2 | (*w >> 8) << 8 | idx << 20;
		L->last_op = NONE24;
		return true;
	}
	return emit_op(L, OP_LOCAL_GET, idx);
}

static bool push_val(loader *L, uint8_t t) {
	if (L->nvals >= MAX_OPERANDS) {
		return fail(L, WASM_ERR_UNSUPPORTED, "operand stack deeper than 4096");
	}
	L->vals[L->nvals++] = t;
	if (L->nvals > L->max_vals) {
		L->max_vals = L->nvals;
	}
	return true;
}

/* pop_val pops an operand of type want (T_NONE: any) into *got; T_NONE
 * comes back for the unknown operands of dead code. */
static bool pop_val(loader *L, uint8_t want, uint8_t *got) {
	const ctrl *c = &L->ctrls[L->nctrls - 1];
	uint8_t t;
	if (L->nvals == c->height) {
		if (!c->unreachable) {
			wasm_status_set(&L->m, WASM_ERR_INVALID, "type mismatch: expected ");
			wasm_status_append(&L->m, want == T_NONE ? "a value" : type_name(want));
			wasm_status_append(&L->m, " but the stack is empty");
			return fail(L, WASM_ERR_INVALID, L->m.msg);
		}
		t = T_NONE;
	} else {
		t = L->vals[--L->nvals];
	}
	if (want != T_NONE && t != T_NONE && t != want) {
		wasm_status_set(&L->m, WASM_ERR_INVALID, "type mismatch: expected ");
		wasm_status_append(&L->m, type_name(want));
		wasm_status_append(&L->m, ", got ");
		wasm_status_append(&L->m, type_name(t));
		return fail(L, WASM_ERR_INVALID, L->m.msg);
	}
	if (got != NULL) {
		*got = t;
	}
	return true;
}

static bool pop_expect(loader *L, uint8_t want) { return pop_val(L, want, NULL); }

static bool push_ctrl(loader *L, uint8_t kind, uint8_t result) {
	if (L->nctrls >= MAX_NESTING) {
		return fail(L, WASM_ERR_UNSUPPORTED, "blocks nested deeper than 512");
	}
	bool dead = L->nctrls > 0 && !emitting(L);
	L->ctrls[L->nctrls++] = (ctrl){
	    .kind = kind,
	    .result = result,
	    .dead = dead,
	    .height = L->nvals,
	    .label = here(L),
	    .patches = NONE24,
	    .else_patch = NONE24,
	};
	return true;
}

/* end_frame checks the results at the end of the top frame. */
static bool end_frame(loader *L) {
	ctrl *c = &L->ctrls[L->nctrls - 1];
	if (c->result != T_NONE && !pop_expect(L, c->result)) {
		return false;
	}
	if (L->nvals != c->height) {
		return fail(L, WASM_ERR_INVALID, "type mismatch: values remain on the stack at the end of a block");
	}
	return true;
}

static void set_unreachable(loader *L) {
	ctrl *c = &L->ctrls[L->nctrls - 1];
	L->nvals = c->height;
	c->unreachable = 1;
}

/* patch resolves a chain of forward branch words to target. */
static void patch(loader *L, uint32_t chain, uint32_t target) {
	uint32_t *code = L->inst->code;
	while (chain != NONE24) {
		uint32_t next = code[chain] >> 8;
		code[chain] = (code[chain] & 0xffu) | target << 8;
		chain = next;
	}
}

static uint8_t label_arity(const ctrl *c) { return c->kind == K_LOOP ? 0 : c->result != T_NONE; }

static uint8_t label_type(const ctrl *c) { return c->kind == K_LOOP ? T_NONE : c->result; }

/* target_word returns the target field for a branch to c placed at word
 * `at`, linking forward branches into c's patch chain. */
static uint32_t target_word(ctrl *c, uint32_t at) {
	if (c->kind == K_LOOP) {
		return c->label;
	}
	uint32_t prev = c->patches;
	c->patches = at;
	return prev;
}

static bool rd_depth(loader *L, reader *r, uint32_t *depth) {
	return rd_index(L, r, L->nctrls, "unknown label", depth);
}

/* emit_branch emits a br (op_plain/op_adj) to the frame depth levels up,
 * with the operand stack at height h. */
static bool emit_branch(loader *L, uint8_t op_plain, uint8_t op_adj, uint32_t depth, uint32_t h) {
	if (!emitting(L)) {
		return true;
	}
	ctrl *c = &L->ctrls[L->nctrls - 1 - depth];
	uint32_t arity = label_arity(c);
	uint32_t drop = h - c->height - arity;
	uint32_t at = here(L);
	if (drop == 0) {
		return put(L, op_plain | target_word(c, at) << 8);
	}
	return put(L, op_adj | target_word(c, at) << 8) && put(L, drop << 1 | arity);
}

static bool rd_blocktype(loader *L, reader *r, uint8_t *t) {
	const uint8_t *at = r->p;
	if (r->p < r->end) {
		uint8_t b = *r->p;
		if (b == 0x40) {
			r->p++;
			*t = T_NONE;
			return true;
		}
		if (b == T_I32 || b == T_I64 || b == T_F32 || b == T_F64) {
			r->p++;
			*t = b;
			return true;
		}
	}
	uint64_t v;
	if (!rd_leb(L, r, 33, true, &v)) {
		return false;
	}
	L->at = at;
	if ((int64_t)v < 0) {
		return fail(L, WASM_ERR_MALFORMED, "unknown block type");
	}
	if (v >= L->inst->ntypes) {
		return fail(L, WASM_ERR_INVALID, "unknown type in a block type");
	}
	return fail(L, WASM_ERR_UNSUPPORTED, "block types with parameters (multi-value) are not supported");
}

static bool local_type(loader *L, uint32_t idx, uint8_t *t) {
	if (idx >= L->nlocals) {
		return fail(L, WASM_ERR_INVALID, "unknown local");
	}
	if (idx < L->nparams) {
		*t = L->inst->types[L->fn->type].params[idx];
		return true;
	}
	uint32_t lo = 0, hi = L->nruns;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (L->run_end[mid] <= idx) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	*t = L->run_type[lo];
	return true;
}

/* numeric_sig gives the operand and result types of the numeric opcodes
 * 0x45..0xc4; b is T_NONE for unary operators. */
static void numeric_sig(uint8_t op, uint8_t *a, uint8_t *b, uint8_t *r) {
	static const struct {
		uint8_t last, a, b, r;
	} ranges[] = {
	    {0x45, T_I32, T_NONE, T_I32}, {0x4f, T_I32, T_I32, T_I32}, {0x50, T_I64, T_NONE, T_I32},
	    {0x5a, T_I64, T_I64, T_I32},  {0x60, T_F32, T_F32, T_I32}, {0x66, T_F64, T_F64, T_I32},
	    {0x69, T_I32, T_NONE, T_I32}, {0x78, T_I32, T_I32, T_I32}, {0x7b, T_I64, T_NONE, T_I64},
	    {0x8a, T_I64, T_I64, T_I64},  {0x91, T_F32, T_NONE, T_F32}, {0x98, T_F32, T_F32, T_F32},
	    {0x9f, T_F64, T_NONE, T_F64}, {0xa6, T_F64, T_F64, T_F64}, {0xa7, T_I64, T_NONE, T_I32},
	    {0xa9, T_F32, T_NONE, T_I32}, {0xab, T_F64, T_NONE, T_I32}, {0xad, T_I32, T_NONE, T_I64},
	    {0xaf, T_F32, T_NONE, T_I64}, {0xb1, T_F64, T_NONE, T_I64}, {0xb3, T_I32, T_NONE, T_F32},
	    {0xb5, T_I64, T_NONE, T_F32}, {0xb6, T_F64, T_NONE, T_F32}, {0xb8, T_I32, T_NONE, T_F64},
	    {0xba, T_I64, T_NONE, T_F64}, {0xbb, T_F32, T_NONE, T_F64}, {0xbc, T_F32, T_NONE, T_I32},
	    {0xbd, T_F64, T_NONE, T_I64}, {0xbe, T_I32, T_NONE, T_F32}, {0xbf, T_I64, T_NONE, T_F64},
	    {0xc1, T_I32, T_NONE, T_I32}, {0xc4, T_I64, T_NONE, T_I64},
	};
	for (size_t i = 0;; i++) {
		if (op <= ranges[i].last) {
			*a = ranges[i].a;
			*b = ranges[i].b;
			*r = ranges[i].r;
			return;
		}
	}
}

/* memory access opcodes 0x28..0x3e: log2 of the access size (the largest
 * alignment) and value type */
#define MEM_LOG2(op, vtype, ctype) (sizeof(ctype) == 8 ? 3 : sizeof(ctype) / 2),
#define MEM_TYPE(op, vtype, ctype) vtype,
static const uint8_t mem_log2[] = {MEM_LOADS(MEM_LOG2) MEM_STORES(MEM_LOG2)};
static const uint8_t mem_type[] = {MEM_LOADS(MEM_TYPE) MEM_STORES(MEM_TYPE)};

static bool need_memory(loader *L) {
	return L->inst->has_memory ? true : fail(L, WASM_ERR_INVALID, "unknown memory 0");
}

static bool rd_zero_byte(loader *L, reader *r) {
	uint8_t b;
	const uint8_t *at = r->p;
	if (!rd_byte(L, r, &b)) {
		return false;
	}
	if (b != 0) {
		return fail_at(L, at, WASM_ERR_MALFORMED, "zero byte expected");
	}
	return true;
}

/* call_sig pops the parameters and pushes the result of type t. */
static bool call_sig(loader *L, const wasm_type *t) {
	for (uint32_t k = t->nparams; k > 0; k--) {
		if (!pop_expect(L, t->params[k - 1])) {
			return false;
		}
	}
	return t->nresults == 0 || push_val(L, t->result);
}

static bool translate_op(loader *L, reader *r, uint8_t op);

/* translate validates and translates the body of defined function fi. */
static bool translate(loader *L, uint32_t fi, reader *body) {
	wasm_instance *inst = L->inst;
	wasm_func *f = &inst->funcs[fi];
	uint8_t *hi = L->hi;
	uint32_t ndecl;
	L->fn = f;
	L->lo = (uint8_t *)(inst->code + inst->ncode); /* scratch must stay above the code */
	L->at = body->p;
	if (!rd_count(L, body, 2, &ndecl)) {
		return false;
	}
	L->run_end = scratch(L, (size_t)ndecl * 4 + 8);
	L->run_type = scratch(L, (size_t)ndecl + 8);
	L->vals = scratch(L, MAX_OPERANDS);
	L->ctrls = scratch(L, MAX_NESTING * sizeof(ctrl));
	if (L->run_end == NULL || L->run_type == NULL || L->vals == NULL || L->ctrls == NULL) {
		return false;
	}
	L->code_cap = (uint32_t)(((uintptr_t)L->hi - (uintptr_t)inst->code) / 4);
	if (L->code_cap > IMM_MAX) {
		L->code_cap = IMM_MAX;
	}
	L->nparams = f->nparams;
	uint64_t nlocals = f->nparams;
	L->nruns = 0;
	for (uint32_t i = 0; i < ndecl; i++) {
		uint32_t cnt;
		uint8_t t;
		L->at = body->p;
		if (!rd_u32(L, body, &cnt)) {
			return false;
		}
		nlocals += cnt;
		if (nlocals > inst->cfg.max_locals) {
			wasm_status_set(&L->m, WASM_ERR_LIMIT, "more than ");
			wasm_status_append_int(&L->m, inst->cfg.max_locals);
			wasm_status_append(&L->m, " locals");
			return fail(L, WASM_ERR_LIMIT, L->m.msg);
		}
		if (!rd_valtype(L, body, &t)) {
			return false;
		}
		if (cnt > 0) {
			L->run_end[L->nruns] = (uint32_t)nlocals;
			L->run_type[L->nruns] = t;
			L->nruns++;
		}
	}
	L->nlocals = (uint32_t)nlocals;
	L->nvals = L->max_vals = 0;
	L->nctrls = 0;
	f->code = here(L);
	f->nlocals = L->nlocals;
	L->last_op = NONE24;
	const wasm_type *ft = &inst->types[f->type];
	if (!push_ctrl(L, K_FUNC, ft->nresults ? ft->result : T_NONE)) {
		return false;
	}
	while (L->nctrls > 0) {
		uint8_t op;
		L->at = body->p;
		if (body->p >= body->end) {
			return fail(L, WASM_ERR_MALFORMED, "unexpected end of function body (missing end)");
		}
		op = *body->p++;
		if (!translate_op(L, body, op)) {
			return false;
		}
	}
	if (body->p != body->end) {
		return fail_at(L, body->p, WASM_ERR_MALFORMED, "bytes after the end of the function body");
	}
	f->frame = L->nlocals + L->max_vals;
	L->hi = hi; /* release the scratch space */
	return true;
}

static bool translate_op(loader *L, reader *r, uint8_t op) {
	wasm_instance *inst = L->inst;
	const uint8_t *at = L->at;
	uint32_t idx, depth;
	uint8_t t = T_NONE, t2 = T_NONE;
	switch (op) {
	case 0x00: /* unreachable */
		if (!emit_op(L, OP_UNREACHABLE, 0)) {
			return false;
		}
		set_unreachable(L);
		return true;
	case 0x01: /* nop */
		return true;
	case 0x02: /* block */
	case 0x03: /* loop */
		L->last_op = NONE24; /* a loop's start is a branch target */
		return rd_blocktype(L, r, &t) && push_ctrl(L, op == 0x02 ? K_BLOCK : K_LOOP, t);
	case 0x04: { /* if */
		if (!rd_blocktype(L, r, &t) || !pop_expect(L, T_I32)) {
			return false;
		}
		bool live = emitting(L);
		uint32_t w = here(L);
		if (live && !put(L, OP_BR_UNLESS | NONE24 << 8)) {
			return false;
		}
		if (!push_ctrl(L, K_IF, t)) {
			return false;
		}
		L->ctrls[L->nctrls - 1].else_patch = live ? w : NONE24;
		return true;
	}
	case 0x05: { /* else */
		ctrl *c = &L->ctrls[L->nctrls - 1];
		if (c->kind != K_IF) {
			return fail(L, WASM_ERR_MALFORMED, "else without if");
		}
		L->last_op = NONE24; /* the else is a branch target */
		if (!end_frame(L)) {
			return false;
		}
		if (emitting(L) && !put(L, OP_BR | target_word(c, here(L)) << 8)) {
			return false;
		}
		if (c->else_patch != NONE24) {
			patch(L, c->else_patch, here(L));
			c->else_patch = NONE24;
		}
		c->kind = K_ELSE;
		c->unreachable = 0;
		L->nvals = c->height;
		return true;
	}
	case 0x0b: { /* end */
		ctrl *c = &L->ctrls[L->nctrls - 1];
		L->last_op = NONE24; /* the end is a branch target */
		if (!end_frame(L)) {
			return false;
		}
		if (c->kind == K_IF && c->result != T_NONE) {
			return fail(L, WASM_ERR_INVALID, "type mismatch: if without else must not have a result");
		}
		if (c->else_patch != NONE24) {
			patch(L, c->else_patch, here(L));
		}
		patch(L, c->patches, here(L));
		ctrl done = *c;
		L->nctrls--;
		if (done.kind == K_FUNC) {
			return put(L, OP_RETURN);
		}
		return done.result == T_NONE || push_val(L, done.result);
	}
	case 0x0c: { /* br */
		if (!rd_depth(L, r, &depth)) {
			return false;
		}
		ctrl *c = &L->ctrls[L->nctrls - 1 - depth];
		uint32_t h = L->nvals;
		if (label_type(c) != T_NONE && !pop_expect(L, label_type(c))) {
			return false;
		}
		if (c->kind == K_FUNC) {
			if (!emit_op(L, OP_RETURN, 0)) {
				return false;
			}
		} else if (!emit_branch(L, OP_BR, OP_BR_ADJ, depth, h)) {
			return false;
		}
		set_unreachable(L);
		return true;
	}
	case 0x0d: { /* br_if */
		if (!rd_depth(L, r, &depth) || !pop_expect(L, T_I32)) {
			return false;
		}
		ctrl *c = &L->ctrls[L->nctrls - 1 - depth];
		uint32_t h = L->nvals;
		t = label_type(c);
		if (t != T_NONE && (!pop_expect(L, t) || !push_val(L, t))) {
			return false;
		}
		return emit_branch(L, OP_BR_IF, OP_BR_IF_ADJ, depth, h);
	}
	case 0x0e: { /* br_table */
		uint32_t n;
		if (!rd_count(L, r, 1, &n)) {
			return false;
		}
		if (n >= IMM_MAX) {
			return fail(L, WASM_ERR_UNSUPPORTED, "br_table too large");
		}
		if (!pop_expect(L, T_I32)) {
			return false;
		}
		uint32_t h = L->nvals;
		bool live = emitting(L);
		if (live && !put(L, OP_BR_TABLE | n << 8)) {
			return false;
		}
		/* The operand's type when known; every label must take it. */
		const ctrl *top = &L->ctrls[L->nctrls - 1];
		uint8_t have = L->nvals > top->height ? L->vals[L->nvals - 1] : T_NONE;
		uint32_t arity = 0;
		for (uint32_t i = 0; i <= n; i++) {
			L->at = r->p;
			if (!rd_depth(L, r, &depth)) {
				return false;
			}
			ctrl *c = &L->ctrls[L->nctrls - 1 - depth];
			uint32_t a = label_arity(c);
			if (i == 0) {
				arity = a;
				if (arity == 1 && h == top->height && !top->unreachable) {
					return fail(L, WASM_ERR_INVALID, "type mismatch: br_table expects a value but the stack is empty");
				}
			} else if (a != arity) {
				return fail(L, WASM_ERR_INVALID, "type mismatch: br_table labels of different arity");
			}
			if (a == 1 && have != T_NONE && label_type(c) != have) {
				return fail(L, WASM_ERR_INVALID, "type mismatch: br_table label type");
			}
			if (live) {
				uint32_t w = here(L);
				uint32_t drop = h - c->height - a;
				if (!put(L, target_word(c, w) << 8) || !put(L, drop << 1 | a)) {
					return false;
				}
			}
		}
		L->at = at;
		if (arity == 1 && !pop_val(L, T_NONE, NULL)) {
			return false;
		}
		set_unreachable(L);
		return true;
	}
	case 0x0f: { /* return */
		const ctrl *fc = &L->ctrls[0];
		if (fc->result != T_NONE && !pop_expect(L, fc->result)) {
			return false;
		}
		if (!emit_op(L, OP_RETURN, 0)) {
			return false;
		}
		set_unreachable(L);
		return true;
	}
	case 0x10: { /* call */
		if (!rd_u32(L, r, &idx)) {
			return false;
		}
		if (idx >= inst->nfuncs) {
			return fail(L, WASM_ERR_INVALID, "unknown function");
		}
		const wasm_func *callee = &inst->funcs[idx];
		return call_sig(L, &inst->types[callee->type]) &&
		       emit_op(L, callee->is_host ? OP_CALL_HOST : OP_CALL, idx);
	}
	case 0x11: { /* call_indirect */
		uint32_t table;
		if (!rd_u32(L, r, &idx) || !rd_u32(L, r, &table)) {
			return false;
		}
		if (idx >= inst->ntypes) {
			return fail(L, WASM_ERR_INVALID, "unknown type");
		}
		if (table != 0 || !inst->has_table) {
			return fail(L, WASM_ERR_INVALID, "unknown table");
		}
		return pop_expect(L, T_I32) && call_sig(L, &inst->types[idx]) &&
		       emit_op(L, OP_CALL_INDIRECT, inst->types[idx].canon);
	}
	case 0x1a: /* drop */
		return pop_val(L, T_NONE, NULL) && emit_op(L, OP_DROP, 0);
	case 0x1b: /* select */
	case 0x1c: { /* select t */
		uint8_t want = T_NONE;
		if (op == 0x1c) {
			uint32_t n;
			if (!rd_u32(L, r, &n)) {
				return false;
			}
			if (n != 1) {
				return fail(L, WASM_ERR_INVALID, "invalid result arity of select");
			}
			if (!rd_valtype(L, r, &want)) {
				return false;
			}
		}
		if (!pop_expect(L, T_I32) || !pop_val(L, want, &t) || !pop_val(L, want, &t2)) {
			return false;
		}
		if (t != T_NONE && t2 != T_NONE && t != t2) {
			return fail(L, WASM_ERR_INVALID, "type mismatch: select operands differ");
		}
		if (want == T_NONE) {
			want = t != T_NONE ? t : t2;
		}
		return push_val(L, want) && emit_op(L, OP_SELECT, 0);
	}
	case 0x20: /* local.get */
	case 0x21: /* local.set */
	case 0x22: /* local.tee */
		if (!rd_u32(L, r, &idx) || !local_type(L, idx, &t)) {
			return false;
		}
		if (op == 0x20) {
			return push_val(L, t) && emit_local_get(L, idx);
		}
		if (!pop_expect(L, t)) {
			return false;
		}
		return (op == 0x21 || push_val(L, t)) && emit_op(L, op, idx);
	case 0x23: /* global.get */
	case 0x24: /* global.set */
		if (!rd_u32(L, r, &idx)) {
			return false;
		}
		if (idx >= inst->nglobals) {
			return fail(L, WASM_ERR_INVALID, "unknown global");
		}
		t = inst->gtypes[idx] & 0x7f;
		if (op == 0x23) {
			return push_val(L, t) && emit_op(L, OP_GLOBAL_GET, idx);
		}
		if (!(inst->gtypes[idx] & 0x80)) {
			return fail(L, WASM_ERR_INVALID, "global is immutable");
		}
		return pop_expect(L, t) && emit_op(L, OP_GLOBAL_SET, idx);
	case 0x3f: /* memory.size */
	case 0x40: /* memory.grow */
		if (!rd_zero_byte(L, r) || !need_memory(L)) {
			return false;
		}
		if (op == 0x40 && !pop_expect(L, T_I32)) {
			return false;
		}
		return push_val(L, T_I32) && emit_op(L, op, 0);
	case 0x41: /* i32.const */
	case 0x42: /* i64.const */
	case 0x43: /* f32.const */
	case 0x44: { /* f64.const */
		uint64_t v;
		if (!rd_const(L, r, op, &v, &t) || !push_val(L, t)) {
			return false;
		}
		/* Integers that fit 24 bits go in the immediate; the rest follows
		 * in one or two words. */
		int64_t s = op == 0x41 ? (int32_t)(uint32_t)v : (int64_t)v;
		if (op <= 0x42 && s >= -0x800000 && s < 0x800000) {
			return emit_op(L, op == 0x41 ? OP_I32_CONST_S : OP_I64_CONST_S, (uint32_t)s & 0xffffffu);
		}
		bool wide = t == T_I64 || t == T_F64;
		return emit_op(L, op, 0) && emit(L, (uint32_t)v) && (!wide || emit(L, (uint32_t)(v >> 32)));
	}
	case 0xfc: { /* prefixed: saturating truncation, bulk memory */
		uint32_t sub;
		if (!rd_u32(L, r, &sub)) {
			return false;
		}
		if (sub <= 7) {
			static const uint8_t from[8] = {T_F32, T_F32, T_F64, T_F64, T_F32, T_F32, T_F64, T_F64};
			return pop_expect(L, from[sub]) && push_val(L, sub < 4 ? T_I32 : T_I64) &&
			       emit_op(L, (uint8_t)(OP_TRUNC_SAT + sub), 0);
		}
		if (sub == 10 || sub == 11) {
			if (!rd_zero_byte(L, r) || (sub == 10 && !rd_zero_byte(L, r)) || !need_memory(L)) {
				return false;
			}
			return pop_expect(L, T_I32) && pop_expect(L, T_I32) && pop_expect(L, T_I32) &&
			       emit_op(L, sub == 10 ? OP_MEMORY_COPY : OP_MEMORY_FILL, 0);
		}
		return fail(L, WASM_ERR_UNSUPPORTED, "unsupported 0xfc instruction");
	}
	default:
		break;
	}
	if (op >= 0x28 && op <= 0x3e) { /* loads and stores */
		uint32_t align, offset;
		if (!rd_u32(L, r, &align) || !rd_u32(L, r, &offset)) {
			return false;
		}
		L->at = at;
		if (!need_memory(L)) {
			return false;
		}
		if (align > mem_log2[op - 0x28]) {
			return fail(L, WASM_ERR_INVALID, "alignment must not be larger than natural");
		}
		t = mem_type[op - 0x28];
		if (op <= 0x35) {
			if (!pop_expect(L, T_I32) || !push_val(L, t)) {
				return false;
			}
		} else if (!pop_expect(L, t) || !pop_expect(L, T_I32)) {
			return false;
		}
		if (offset < NONE24) {
			return emit_op(L, op, offset);
		}
		return emit_op(L, op, NONE24) && emit(L, offset);
	}
	if (op >= 0x45 && op <= 0xc4) { /* numeric */
		uint8_t a, b, res;
		numeric_sig(op, &a, &b, &res);
		if ((b != T_NONE && !pop_expect(L, b)) || !pop_expect(L, a) || !push_val(L, res)) {
			return false;
		}
		if (op == 0xa7 || (op >= 0xbc && op <= 0xbf)) {
			return true; /* wrap and reinterpret leave the slot as it is */
		}
		return emit_numeric(L, op);
	}
	if ((op >= 0x06 && op <= 0x0a) || op == 0x12 || op == 0x13 || op == 0x14 || op == 0x15 || op == 0x18 ||
	    op == 0x19 || op == 0x25 || op == 0x26 || (op >= 0xd0 && op <= 0xd6) || op == 0xfb || op == 0xfd ||
	    op == 0xfe) {
		return fail(L, WASM_ERR_UNSUPPORTED, "unsupported instruction (a post-MVP proposal)");
	}
	return fail(L, WASM_ERR_MALFORMED, "illegal opcode");
}

static bool read_code(loader *L) {
	wasm_instance *inst = L->inst;
	reader *r = &L->sec[10];
	uint32_t n;
	uint32_t ndefined = inst->nfuncs - inst->nimports;
	if (!open_section(L, 10, 2, UINT32_MAX, NULL, &n)) {
		return false;
	}
	if (n != ndefined) {
		return fail_at(L, NULL, WASM_ERR_MALFORMED, "function and code section have inconsistent lengths");
	}
	inst->code = (uint32_t *)align8(L->lo);
	inst->ncode = 0;
	L->lo = (uint8_t *)inst->code;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t size;
		const uint8_t *b;
		set_entry(L, r, "function", inst->nimports + i);
		if (!rd_u32(L, r, &size) || !rd_bytes(L, r, size, &b)) {
			return false;
		}
		reader body = {b, b + size};
		if (!translate(L, inst->nimports + i, &body)) {
			return false;
		}
	}
	L->lo = (uint8_t *)(inst->code + inst->ncode);
	return close_section(L, 10);
}

static bool read_data(loader *L) {
	wasm_instance *inst = L->inst;
	reader *r = &L->sec[11];
	uint32_t n;
	if (!open_section(L, 11, 1, UINT32_MAX, NULL, &n)) {
		return false;
	}
	if (L->ndata != UINT32_MAX && L->ndata != n) {
		return fail_at(L, NULL, WASM_ERR_MALFORMED, "data count and data section have inconsistent lengths");
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t prefix, len;
		wasm_value off;
		const uint8_t *bytes;
		set_entry(L, r, "data segment", i);
		if (!rd_u32(L, r, &prefix)) {
			return false;
		}
		if (prefix == 1 || prefix == 2) {
			return fail(L, WASM_ERR_UNSUPPORTED, "passive data segments and memory indices are not supported");
		}
		if (prefix != 0) {
			return fail(L, WASM_ERR_MALFORMED, "bad data segment prefix");
		}
		if (!need_memory(L) || !const_expr(L, r, T_I32, &off) || !rd_u32(L, r, &len) ||
		    !rd_bytes(L, r, len, &bytes)) {
			return false;
		}
		if ((uint64_t)off.i32 + len > inst->mem_size) {
			return fail_at(L, NULL, WASM_ERR_INVALID,
			               "out of bounds memory access: segment does not fit the memory");
		}
		memcpy(inst->mem + off.i32, bytes, len);
	}
	return close_section(L, 11);
}

/* place_runtime allocates the stacks and the linear memory. */
static bool place_runtime(loader *L) {
	wasm_instance *inst = L->inst;
	set_ctx(L, NULL, false, 0);
	L->at = NULL;
	inst->stack_slots = inst->cfg.stack_slots;
	inst->stack = alloc(L, (size_t)inst->stack_slots * sizeof(wasm_value), "the value stack");
	inst->max_frames = inst->cfg.call_depth;
	inst->frames = alloc(L, (size_t)inst->max_frames * sizeof(wasm_frame), "the call stack");
	if (inst->stack == NULL || inst->frames == NULL) {
		return false;
	}
	uint8_t *mem = align8(L->lo);
	if (mem > L->hi) {
		mem = L->hi;
	}
	inst->used_end = mem;
	if (!inst->has_memory) {
		return true;
	}
	uint64_t room = (uint64_t)(inst->arena_end - mem) / PAGE_SIZE;
	if (L->mem_min > room) {
		wasm_status_set(&L->m, WASM_ERR_ARENA, "arena too small for ");
		wasm_status_append_int(&L->m, L->mem_min);
		wasm_status_append(&L->m, " memory pages");
		return fail(L, WASM_ERR_ARENA, L->m.msg);
	}
	uint64_t max = L->mem_has_max ? L->mem_max : MAX_PAGES;
	if (max > inst->cfg.memory_pages) {
		max = inst->cfg.memory_pages;
	}
	if (max > room) {
		max = room;
	}
	inst->mem = mem;
	inst->pages = L->mem_min;
	inst->max_pages = (uint32_t)max;
	inst->mem_size = (uint64_t)L->mem_min * PAGE_SIZE;
	memset(mem, 0, (size_t)inst->mem_size);
	return true;
}

static bool read_datacount(loader *L) {
	L->ndata = UINT32_MAX;
	if (!L->has_sec[12]) {
		return true;
	}
	set_ctx(L, section_names[12], false, 0);
	return rd_u32(L, &L->sec[12], &L->ndata) && section_done(L, &L->sec[12]);
}

wasm_code wasm_instantiate(wasm_instance **out, void *arena, size_t arena_size, const uint8_t *bin,
                           size_t len, const wasm_config *cfg, wasm_status *st) {
	wasm_status local;
	loader L;
	if (st == NULL) {
		st = &local;
	}
	wasm_status_set(st, WASM_OK, "");
	*out = NULL;
	if (bin == NULL) {
		wasm_status_set(st, WASM_ERR_MALFORMED, "no module");
		return st->code;
	}
	memset(&L, 0, sizeof L);
	L.st = st;
	L.bin = bin;
	uint8_t *base = align8(arena);
	uint8_t *end = (uint8_t *)arena + arena_size;
	if (arena == NULL || base > end || (size_t)(end - base) < sizeof(wasm_instance)) {
		wasm_status_set(st, WASM_ERR_ARENA, "arena too small for the instance");
		return st->code;
	}
	wasm_instance *inst = (wasm_instance *)base;
	memset(inst, 0, sizeof *inst);
	inst->arena_end = end;
	if (cfg != NULL) {
		inst->cfg = *cfg;
	}
	wasm_config *c = &inst->cfg;
	if (c->memory_pages == 0) c->memory_pages = 16;
	if (c->memory_pages > MAX_PAGES) c->memory_pages = MAX_PAGES;
	if (c->stack_slots == 0) c->stack_slots = 2048;
	if (c->call_depth == 0) c->call_depth = 128;
	if (c->max_locals == 0) c->max_locals = 50000;
	if (c->max_locals > IMM_MAX) c->max_locals = IMM_MAX;
	if (c->max_table == 0) c->max_table = 65536;
	if (c->start_fuel == 0) c->start_fuel = 10000000;
	inst->user = c->user;
	L.inst = inst;
	L.lo = base + sizeof *inst;
	L.hi = end;
	if (!scan_sections(&L, bin, len) || !read_types(&L) || !read_imports_and_functions(&L) ||
	    !read_table(&L) || !read_memory(&L) || !read_globals(&L) || !read_exports(&L) ||
	    !read_start(&L) || !read_elements(&L) || !read_datacount(&L) || !read_code(&L) ||
	    !place_runtime(&L) || !read_data(&L)) {
		return st->code;
	}
	if (inst->start_func != UINT32_MAX) {
		wasm_code code = wasm_call(inst, inst->start_func, NULL, 0, NULL, c->start_fuel, st);
		if (code != WASM_OK) {
			return code;
		}
	}
	*out = inst;
	return WASM_OK;
}

/* ---- introspection ---- */

/* find_export returns the export of that kind and name, or NULL. */
static const wasm_export *find_export(const wasm_instance *inst, uint8_t kind, const char *name) {
	for (uint32_t i = 0; i < inst->nexports; i++) {
		const wasm_export *e = &inst->exports[i];
		if (e->kind == kind && names_equal((const uint8_t *)e->name, e->len, name)) {
			return e;
		}
	}
	return NULL;
}

bool wasm_export_func(const wasm_instance *inst, const char *name, uint32_t *func) {
	const wasm_export *e = find_export(inst, 0, name);
	if (e != NULL) {
		*func = e->index;
	}
	return e != NULL;
}

bool wasm_export_memory(const wasm_instance *inst, const char *name) {
	return find_export(inst, 2, name) != NULL;
}

bool wasm_func_arity(const wasm_instance *inst, uint32_t func, uint32_t *params, uint32_t *results) {
	if (func >= inst->nfuncs) {
		return false;
	}
	*params = inst->funcs[func].nparams;
	*results = inst->funcs[func].nresults;
	return true;
}

bool wasm_func_signature(const wasm_instance *inst, uint32_t func, char *params, char *results) {
	if (func >= inst->nfuncs) {
		return false;
	}
	const wasm_type *t = &inst->types[inst->funcs[func].type];
	for (uint32_t i = 0; i < t->nparams; i++) {
		params[i] = type_letter(t->params[i]);
	}
	params[t->nparams] = 0;
	results[0] = t->nresults ? type_letter(t->result) : 0;
	results[1] = 0;
	return true;
}

uint32_t wasm_import_count(const wasm_instance *inst) { return inst->nimports; }

const wasm_host_func *wasm_import(const wasm_instance *inst, uint32_t i) {
	return i < inst->nimports ? inst->funcs[i].host : NULL;
}

bool wasm_table_limits(const wasm_instance *inst, uint32_t *size, uint32_t *max, bool *has_max) {
	if (!inst->has_table) {
		return false;
	}
	*size = inst->table_size;
	*max = inst->table_max;
	*has_max = inst->table_has_max;
	return true;
}

void *wasm_user(const wasm_instance *inst) { return inst->user; }

wasm_status *wasm_host_status(wasm_instance *inst) { return &inst->host_st; }

uint8_t *wasm_memory(const wasm_instance *inst, uint32_t *size) {
	if (size != NULL) {
		*size = (uint32_t)inst->mem_size;
	}
	return inst->mem;
}

uint8_t *wasm_memory_range(const wasm_instance *inst, uint32_t ptr, uint32_t len) {
	if ((uint64_t)ptr + len > inst->mem_size) {
		return NULL;
	}
	return inst->mem + ptr;
}

/* mem_get and mem_put copy n bytes from or to memory at ptr, when the
 * range is inside it. */
static bool mem_get(const wasm_instance *inst, uint32_t ptr, void *v, uint32_t n) {
	const uint8_t *p = wasm_memory_range(inst, ptr, n);
	if (p != NULL) {
		memcpy(v, p, n);
	}
	return p != NULL;
}

static bool mem_put(wasm_instance *inst, uint32_t ptr, const void *v, uint32_t n) {
	uint8_t *p = wasm_memory_range(inst, ptr, n);
	if (p != NULL) {
		memcpy(p, v, n);
	}
	return p != NULL;
}

bool wasm_memory_get_u32(const wasm_instance *inst, uint32_t ptr, uint32_t *v) {
	return mem_get(inst, ptr, v, 4);
}

bool wasm_memory_set_u32(wasm_instance *inst, uint32_t ptr, uint32_t v) {
	return mem_put(inst, ptr, &v, 4);
}

bool wasm_memory_set_u64(wasm_instance *inst, uint32_t ptr, uint64_t v) {
	return mem_put(inst, ptr, &v, 8);
}

void wasm_get_stats(const wasm_instance *inst, wasm_stats *s) {
	s->arena_used = (size_t)(inst->used_end - (const uint8_t *)inst) + (size_t)inst->mem_size;
	s->code_bytes = (size_t)inst->ncode * 4;
	s->stack_bytes = (size_t)inst->stack_slots * sizeof(wasm_value) + (size_t)inst->max_frames * sizeof(wasm_frame);
	s->memory_pages = inst->pages;
	s->max_pages = inst->max_pages;
	s->functions = inst->nfuncs;
	s->stack_peak = inst->stack_peak;
	s->depth_peak = inst->depth_peak;
}
