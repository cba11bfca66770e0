package sandbox

import (
	"errors"
	"fmt"
	"math"
)

// Fixed limits checked before a module is compiled, on top of Limits. They
// bound the host memory an app can claim outside its linear memory.
const (
	// MaxTableElements caps the elements of all tables a module defines
	// together. Each table must declare a maximum size, since table.grow
	// allocates host memory (8 bytes an element) outside MemoryPages.
	MaxTableElements = 65536
	// MaxFunctionLocals caps the locals one function may declare, the limit
	// WebAssembly engines commonly share.
	MaxFunctionLocals = 50000
)

// WebAssembly binary format section ids (core spec 2.0, section 5.5.2, with
// the exception-handling tag section).
const (
	sectionCustom    = 0
	sectionType      = 1
	sectionImport    = 2
	sectionFunction  = 3
	sectionTable     = 4
	sectionMemory    = 5
	sectionGlobal    = 6
	sectionExport    = 7
	sectionStart     = 8
	sectionElement   = 9
	sectionCode      = 10
	sectionData      = 11
	sectionDataCount = 12
	sectionTag       = 13
)

var sectionNames = [...]string{
	sectionCustom: "custom", sectionType: "type", sectionImport: "import", sectionFunction: "function",
	sectionTable: "table", sectionMemory: "memory", sectionGlobal: "global", sectionExport: "export",
	sectionStart: "start", sectionElement: "element", sectionCode: "code", sectionData: "data",
	sectionDataCount: "data count", sectionTag: "tag",
}

// binaryFacts are what the checks need from a module binary that wazero's
// compiled module does not expose, and the binary to compile.
type binaryFacts struct {
	imports   uint32 // entries of the import section, of every kind
	hasMemory bool   // the module defines a memory
	memoryMin uint32 // declared minimum of that memory, in 64 KiB pages
	binary    []byte // the module without its custom sections
}

// preflight walks a module binary before wazero decodes it. wazero sizes
// its allocations by the counts a binary declares, so a few malformed bytes
// could make it request gigabytes and crash the process; preflight refuses
// every count larger than the bytes left to hold its elements, checks
// function type indices (wazero's validator panics on one out of range),
// bounds locals and tables, and drops custom sections (names, debug info),
// which the sandbox never shows. Its structure walk mirrors wazero's decoder. Errors
// wrap ErrInvalidModule.
func preflight(wasm []byte) (binaryFacts, error) {
	var f binaryFacts
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return f, fmt.Errorf("%w: not WebAssembly (no \\0asm magic number)", ErrInvalidModule)
	}
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return f, fmt.Errorf("%w: unsupported binary format version % x", ErrInvalidModule, wasm[4:8])
	}
	c := &cursor{b: wasm, pos: 8}
	var (
		kept          = wasm[:8:8] // appended to only once a custom section is dropped
		dropped       bool
		tableElements uint64
		types         uint32 // function types, counting each member of a rec group
	)
	for c.left() > 0 {
		start := c.pos
		id, _ := c.readByte()
		size, err := c.u32()
		if err == nil && uint64(size) > uint64(c.left()) {
			err = fmt.Errorf("size %d is over the %d bytes left", size, c.left())
		}
		name := fmt.Sprintf("section %d", id)
		if int(id) < len(sectionNames) {
			name = sectionNames[id] + " section"
		}
		if err != nil {
			return f, fmt.Errorf("%w: %s: %w", ErrInvalidModule, name, err)
		}
		body := &cursor{b: c.b[c.pos : c.pos+int(size)]}
		c.pos += int(size)

		switch id {
		case sectionCustom:
			if !dropped {
				kept = append(kept, wasm[8:start]...)
				dropped = true
			}
			continue
		case sectionType:
			err = body.vector("type", func() error {
				n, err := body.typeEntry()
				types += n
				return err
			})
		case sectionImport:
			f.imports, err = body.count("import")
			for i := uint32(0); err == nil && i < f.imports; i++ {
				if err = body.importEntry(types); err != nil {
					err = fmt.Errorf("import %d: %w", i, err)
				}
			}
		case sectionFunction:
			err = body.vector("function", func() error { return body.typeIndex(types) })
		case sectionTable:
			err = body.vector("table", func() error {
				_, max, hasMax, err := body.table()
				switch {
				case err != nil:
					return err
				case !hasMax:
					return fmt.Errorf("a table declares no maximum size; tables must declare one, of at most %d elements in all", MaxTableElements)
				}
				if tableElements += uint64(max); tableElements > MaxTableElements {
					return fmt.Errorf("tables allow %d elements or more in all, over the limit of %d", tableElements, MaxTableElements)
				}
				return nil
			})
		case sectionMemory:
			err = body.vector("memory", func() error {
				min, _, _, err := body.limits()
				if err == nil && !f.hasMemory {
					f.hasMemory, f.memoryMin = true, min
				}
				return err
			})
		case sectionExport:
			err = body.vector("export", func() error {
				if err := body.name("export name"); err != nil {
					return err
				}
				if _, err := body.readByte(); err != nil {
					return err
				}
				_, err := body.u32()
				return err
			})
		case sectionElement:
			err = body.vector("element segment", body.elementSegment)
		case sectionCode:
			err = body.vector("function body", body.code)
		case sectionData:
			err = body.vector("data segment", body.dataSegment)
		case sectionGlobal, sectionTag:
			// Entries hold no counts: bounding the entry count is enough.
			_, err = body.count(sectionNames[id] + " entry")
			body.pos = len(body.b)
		case sectionStart, sectionDataCount:
			body.pos = len(body.b)
		default:
			err = errors.New("unknown section id")
		}
		if err == nil && body.left() != 0 {
			err = fmt.Errorf("%d bytes after the last entry", body.left())
		}
		if err != nil {
			return f, fmt.Errorf("%w: %s: %w", ErrInvalidModule, name, err)
		}
		if dropped {
			kept = append(kept, wasm[start:c.pos]...)
		}
	}
	f.binary = wasm
	if dropped {
		f.binary = kept
	}
	return f, nil
}

// errShort reports a read past the end of a section or entry.
var errShort = errors.New("unexpected end")

// cursor reads WebAssembly binary values from b. Every method checks bounds.
type cursor struct {
	b   []byte
	pos int
}

func (c *cursor) left() int { return len(c.b) - c.pos }

func (c *cursor) readByte() (byte, error) {
	if c.pos >= len(c.b) {
		return 0, errShort
	}
	c.pos++
	return c.b[c.pos-1], nil
}

func (c *cursor) skip(n uint64) error {
	if n > uint64(c.left()) {
		return errShort
	}
	c.pos += int(n)
	return nil
}

// leb reads a LEB128 number of at most maxBytes bytes, returning its
// unsigned value (meaningful up to 64 bits).
func (c *cursor) leb(maxBytes int) (uint64, error) {
	var v uint64
	for i := range maxBytes {
		b, err := c.readByte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 number too long")
}

func (c *cursor) u32() (uint32, error) {
	v, err := c.leb(5)
	if err == nil && v > math.MaxUint32 {
		err = errors.New("LEB128 number over 32 bits")
	}
	return uint32(v), err
}

// count reads the length of a vector whose every element takes at least a
// byte, refusing one larger than the bytes left.
func (c *cursor) count(what string) (uint32, error) {
	n, err := c.u32()
	if err == nil && uint64(n) > uint64(c.left()) {
		err = fmt.Errorf("%s count %d is over the %d bytes left", what, n, c.left())
	}
	return n, err
}

// vector reads a count, then that many entries with entry.
func (c *cursor) vector(what string, entry func() error) error {
	n, err := c.count(what)
	for i := uint32(0); err == nil && i < n; i++ {
		if err = entry(); err != nil {
			err = fmt.Errorf("%s %d: %w", what, i, err)
		}
	}
	return err
}

// name skips a length-prefixed byte string.
func (c *cursor) name(what string) error {
	n, err := c.u32()
	if err == nil && uint64(n) > uint64(c.left()) {
		err = fmt.Errorf("%s of %d bytes is over the %d bytes left", what, n, c.left())
	}
	if err != nil {
		return err
	}
	return c.skip(uint64(n))
}

// valType skips a value type: one byte, or a reference-type prefix (0x63,
// 0x64) and its heap type.
func (c *cursor) valType() error {
	b, err := c.readByte()
	if err == nil && (b == 0x63 || b == 0x64) {
		_, err = c.leb(5)
	}
	return err
}

// typeIndex reads a reference to one of types function types. wazero's
// validator indexes its type list with it unchecked, so it is checked here.
func (c *cursor) typeIndex(types uint32) error {
	i, err := c.u32()
	if err == nil && i >= types {
		err = fmt.Errorf("type index %d is over the %d types", i, types)
	}
	return err
}

// typeEntry reads a function type, or a rec group (0x4e) of them, and
// returns how many types it defines.
func (c *cursor) typeEntry() (uint32, error) {
	b, err := c.readByte()
	if err != nil {
		return 0, err
	}
	if b != 0x4e {
		c.pos--
		return 1, c.funcType()
	}
	var n uint32
	err = c.vector("rec group type", func() error {
		n++
		return c.funcType()
	})
	return n, err
}

func (c *cursor) funcType() error {
	b, err := c.readByte()
	if err != nil {
		return err
	}
	if b != 0x60 {
		return fmt.Errorf("type form %#x, want 0x60", b)
	}
	if err := c.vector("parameter", c.valType); err != nil {
		return err
	}
	return c.vector("result", c.valType)
}

// limits reads limits as wazero does: flags 0x00-0x03, 32-bit bounds.
func (c *cursor) limits() (min, max uint32, hasMax bool, err error) {
	flag, err := c.readByte()
	if err != nil {
		return 0, 0, false, err
	}
	if flag > 0x03 {
		return 0, 0, false, fmt.Errorf("limits flag %#x, want 0x00 to 0x03", flag)
	}
	if min, err = c.u32(); err != nil || flag&1 == 0 {
		return min, 0, false, err
	}
	max, err = c.u32()
	return min, max, true, err
}

// table reads a table type with its optional initializer (0x40 0x00 form).
func (c *cursor) table() (min, max uint32, hasMax bool, err error) {
	init := c.left() > 0 && c.b[c.pos] == 0x40
	if init {
		c.pos++
		if b, err := c.readByte(); err != nil || b != 0x00 {
			return 0, 0, false, errors.New("table initializer prefix 0x40 not followed by 0x00")
		}
	}
	if err := c.refType(); err != nil {
		return 0, 0, false, err
	}
	if min, max, hasMax, err = c.limits(); err != nil {
		return 0, 0, false, err
	}
	if init {
		err = c.constExpr()
	}
	return min, max, hasMax, err
}

// refType skips a reference type: a byte, or a prefix and heap type.
func (c *cursor) refType() error { return c.valType() }

// importEntry reads one import of a module defining types function types.
func (c *cursor) importEntry(types uint32) error {
	if err := c.name("import module name"); err != nil {
		return err
	}
	if err := c.name("import name"); err != nil {
		return err
	}
	kind, err := c.readByte()
	if err != nil {
		return err
	}
	switch kind {
	case 0x00: // function: type index
		err = c.typeIndex(types)
	case 0x01:
		_, _, _, err = c.table()
	case 0x02:
		_, _, _, err = c.limits()
	case 0x03: // global: value type, mutability
		if err = c.valType(); err == nil {
			_, err = c.readByte()
		}
	case 0x04: // tag: attribute, type index
		if _, err = c.readByte(); err == nil {
			_, err = c.u32()
		}
	default:
		err = fmt.Errorf("import kind %#x", kind)
	}
	return err
}

// constExpr skips a constant expression up to its end opcode, accepting the
// instructions wazero accepts there.
func (c *cursor) constExpr() error {
	for {
		op, err := c.readByte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41, 0x23, 0xd0, 0xd2: // i32.const, global.get, ref.null, ref.func
			_, err = c.leb(5)
		case 0x42: // i64.const
			_, err = c.leb(10)
		case 0x43: // f32.const
			err = c.skip(4)
		case 0x44: // f64.const
			err = c.skip(8)
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const arithmetic
		case 0xfd: // v128.const
			var sub byte
			if sub, err = c.readByte(); err == nil && sub != 0x0c {
				err = fmt.Errorf("vector opcode %#x in a constant expression", sub)
			}
			if err == nil {
				err = c.skip(16)
			}
		default:
			err = fmt.Errorf("opcode %#x in a constant expression", op)
		}
		if err != nil {
			return err
		}
	}
}

// elementSegment reads one of the eight element segment encodings.
func (c *cursor) elementSegment() error {
	prefix, err := c.u32()
	if err != nil {
		return err
	}
	if prefix > 7 {
		return fmt.Errorf("element segment prefix %d", prefix)
	}
	funcIndices := func() error { return c.vector("function index", c.index) }
	exprs := func() error { return c.vector("element expression", c.constExpr) }
	var steps []func() error
	switch prefix {
	case 0:
		steps = []func() error{c.constExpr, funcIndices}
	case 1, 3:
		steps = []func() error{c.elemKind, funcIndices}
	case 2:
		steps = []func() error{c.index, c.constExpr, c.elemKind, funcIndices}
	case 4:
		steps = []func() error{c.constExpr, exprs}
	case 5, 7:
		steps = []func() error{c.refType, exprs}
	case 6:
		steps = []func() error{c.index, c.constExpr, c.refType, exprs}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (c *cursor) elemKind() error { _, err := c.readByte(); return err }

func (c *cursor) index() error { _, err := c.u32(); return err }

// code reads one function body: its size, then its local declarations,
// whose total is capped at MaxFunctionLocals.
func (c *cursor) code() error {
	size, err := c.u32()
	if err != nil {
		return err
	}
	if uint64(size) > uint64(c.left()) {
		return fmt.Errorf("size %d is over the %d bytes left", size, c.left())
	}
	body := &cursor{b: c.b[c.pos : c.pos+int(size)]}
	c.pos += int(size)
	var locals uint64
	return body.vector("local declaration", func() error {
		n, err := body.u32()
		if err != nil {
			return err
		}
		if locals += uint64(n); locals > MaxFunctionLocals {
			return fmt.Errorf("%d locals or more, over %d", locals, MaxFunctionLocals)
		}
		return body.valType()
	})
}

// dataSegment reads one data segment: active (0), passive (1) or active
// with a memory index (2), then its bytes.
func (c *cursor) dataSegment() error {
	prefix, err := c.u32()
	if err != nil {
		return err
	}
	switch prefix {
	case 0:
		err = c.constExpr()
	case 1:
	case 2:
		if err = c.index(); err == nil {
			err = c.constExpr()
		}
	default:
		err = fmt.Errorf("data segment prefix %d", prefix)
	}
	if err != nil {
		return err
	}
	return c.name("data segment")
}
