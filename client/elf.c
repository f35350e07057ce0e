/*
 * ELF executables as guest images: checks the headers against what a fresh
 * x86 guest can honour and turns the PT_LOAD segments into the spec's image
 * and regions.  The host is x86_64 (configure insists), so the little-endian
 * fields are read in host order, through memcpy because the file bytes need
 * not be aligned.
 */
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elf.h"

#define ELF_MIB (UINT64_C(1) << 20)
/* The engine's reserved area at the top of memory outside real mode. */
#define ELF_RESERVED (UINT64_C(64) << 10)
/* The daemon's default --max-memory: no --memory past it is suggested. */
#define ELF_MEMORY_HINT_MAX (UINT64_C(256) << 20)

/* The fields of an ELF header or program header either class provides. */
struct elf_header {
	uint64_t entry;
	uint64_t phoff;
	uint16_t type;
	uint16_t machine;
	uint16_t phentsize;
	uint16_t phnum;
};

struct elf_segment {
	uint32_t type;
	uint64_t offset;
	uint64_t paddr;
	uint64_t filesz;
	uint64_t memsz;
};

static int elf_fail(struct kvmrun_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Fills ERR and returns -ERRNUM: ENOMEM is this side's trouble, the rest the file's. */
static int
elf_fail(struct kvmrun_error *err, int errnum, const char *fmt, ...)
{
	enum kvmrun_errcode code;
	va_list ap;

	code = errnum == ENOMEM ? KVMRUN_ERR_INTERNAL : KVMRUN_ERR_BAD_REQUEST;
	err->code = code;
	err->errnum = 0;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -errnum;
}

bool
elf_is_elf(const uint8_t *data, size_t length)
{
	return length >= SELFMAG && memcmp(data, ELFMAG, SELFMAG) == 0;
}

bool
elf_is_64(const uint8_t *data, size_t length)
{
	return elf_is_elf(data, length) && length > EI_CLASS &&
	       data[EI_CLASS] == ELFCLASS64;
}

static int
elf_read_header(const char *name, const uint8_t *data, size_t length,
		struct elf_header *hdr, struct kvmrun_error *err)
{
	Elf64_Ehdr e64;
	Elf32_Ehdr e32;

	if (length < EI_NIDENT)
		goto out_truncated;
	if (data[EI_CLASS] != ELFCLASS32 && data[EI_CLASS] != ELFCLASS64)
		return elf_fail(err, EINVAL,
				"%s: wrong ELF class %u (neither 32- nor 64-bit)", name,
				data[EI_CLASS]);
	if (data[EI_DATA] != ELFDATA2LSB)
		return elf_fail(err, EINVAL, "%s: not a little-endian ELF file", name);
	if (data[EI_CLASS] == ELFCLASS64) {
		if (length < sizeof(e64))
			goto out_truncated;
		memcpy(&e64, data, sizeof(e64));
		*hdr = (struct elf_header){
		    .entry = e64.e_entry,
		    .phoff = e64.e_phoff,
		    .type = e64.e_type,
		    .machine = e64.e_machine,
		    .phentsize = e64.e_phentsize,
		    .phnum = e64.e_phnum,
		};
	} else {
		if (length < sizeof(e32))
			goto out_truncated;
		memcpy(&e32, data, sizeof(e32));
		*hdr = (struct elf_header){
		    .entry = e32.e_entry,
		    .phoff = e32.e_phoff,
		    .type = e32.e_type,
		    .machine = e32.e_machine,
		    .phentsize = e32.e_phentsize,
		    .phnum = e32.e_phnum,
		};
	}
	if (hdr->machine != EM_386 && hdr->machine != EM_X86_64)
		return elf_fail(err, EINVAL,
				"%s: wrong machine %u (not EM_386 or EM_X86_64)", name,
				hdr->machine);
	if (hdr->type == ET_DYN)
		return elf_fail(err, EINVAL,
				"%s: a position-independent executable (ELF type ET_DYN), "
				"not ET_EXEC: link it with -no-pie, or -static",
				name);
	if (hdr->type == ET_REL)
		return elf_fail(err, EINVAL,
				"%s: an object file (ELF type ET_REL), not an executable "
				"(ET_EXEC): link it first, as in ld -Ttext=0x1000 -o "
				"guest.elf %s",
				name, name);
	if (hdr->type != ET_EXEC)
		return elf_fail(err, EINVAL, "%s: ELF type %u, not ET_EXEC", name,
				hdr->type);
	return 0;

out_truncated:
	return elf_fail(err, EINVAL,
			"%s: truncated file (%zu bytes, shorter than an ELF header)",
			name, length);
}

/* Program header I, already known to lie within DATA. */
static void
elf_read_segment(const uint8_t *data, bool is64, const struct elf_header *hdr,
		 unsigned int i, struct elf_segment *seg)
{
	const uint8_t *p = data + hdr->phoff + (uint64_t)i * hdr->phentsize;
	Elf64_Phdr p64;
	Elf32_Phdr p32;

	if (is64) {
		memcpy(&p64, p, sizeof(p64));
		*seg = (struct elf_segment){
		    .type = p64.p_type,
		    .offset = p64.p_offset,
		    .paddr = p64.p_paddr,
		    .filesz = p64.p_filesz,
		    .memsz = p64.p_memsz,
		};
	} else {
		memcpy(&p32, p, sizeof(p32));
		*seg = (struct elf_segment){
		    .type = p32.p_type,
		    .offset = p32.p_offset,
		    .paddr = p32.p_paddr,
		    .filesz = p32.p_filesz,
		    .memsz = p32.p_memsz,
		};
	}
}

static int
elf_check_segment(const char *name, size_t length, uint64_t memory_size, unsigned int i,
		  const struct elf_segment *seg, struct kvmrun_error *err)
{
	uint64_t end, mib;

	if (seg->filesz > seg->memsz)
		return elf_fail(err, EINVAL,
				"%s: segment %u has more file bytes (%" PRIu64
				") than memory bytes (%" PRIu64 ")",
				name, i, seg->filesz, seg->memsz);
	if (seg->offset > length || seg->filesz > length - seg->offset)
		return elf_fail(err, EINVAL, "%s: truncated file (segment %u)", name,
				i);
	if (seg->paddr > memory_size || seg->memsz > memory_size - seg->paddr) {
		end = seg->paddr + seg->memsz;
		if (end < seg->paddr || end > ELF_MEMORY_HINT_MAX - ELF_RESERVED)
			return elf_fail(err, EINVAL,
					"%s: segment %u (0x%" PRIx64 "..0x%" PRIx64
					") is past guest memory (0x0..0x%" PRIx64
					"): link it at a lower address (ld -Ttext=0x1000)",
					name, i, seg->paddr, end, memory_size);
		/* Room for the segment and the engine's reserved area above it. */
		mib = (end + ELF_RESERVED + ELF_MIB - 1) / ELF_MIB;
		return elf_fail(err, EINVAL,
				"%s: segment %u (0x%" PRIx64 "..0x%" PRIx64
				") is past guest memory (0x0..0x%" PRIx64
				"): run it with --memory %" PRIu64
				"M, or link it at a lower address (ld -Ttext=0x1000)",
				name, i, seg->paddr, end, memory_size, mib);
	}
	return 0;
}

/* Copies SEG's file bytes into BLOB. */
static int
elf_copy_segment(const char *name, const uint8_t *data, const struct elf_segment *seg,
		 struct kvmrun_blob *blob, struct kvmrun_error *err)
{
	blob->data = malloc(seg->filesz);
	if (blob->data == NULL)
		return elf_fail(err, ENOMEM,
				"%s: no memory for a %" PRIu64 "-byte segment", name,
				seg->filesz);
	memcpy(blob->data, data + seg->offset, seg->filesz);
	blob->address = seg->paddr;
	blob->length = seg->filesz;
	return 0;
}

int
elf_load(const char *name, const uint8_t *data, size_t length, struct kvmrun_spec *spec,
	 struct kvmrun_error *err)
{
	struct kvmrun_blob *regions;
	struct elf_header hdr = {0};
	struct elf_segment seg;
	size_t phsize;
	bool is64;
	int r;

	r = elf_read_header(name, data, length, &hdr, err);
	if (r < 0)
		return r;
	is64 = data[EI_CLASS] == ELFCLASS64;
	phsize = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	if (hdr.phnum == PN_XNUM)
		return elf_fail(err, EINVAL,
				"%s: too many program headers (extended numbering)",
				name);
	if (hdr.phnum > 0 && hdr.phentsize != phsize)
		return elf_fail(err, EINVAL, "%s: program headers of %u bytes, not %zu",
				name, hdr.phentsize, phsize);
	if (hdr.phoff > length || (uint64_t)hdr.phnum * phsize > length - hdr.phoff)
		return elf_fail(err, EINVAL, "%s: truncated file (program headers)",
				name);

	/* Check everything before copying anything. */
	for (unsigned int i = 0; i < hdr.phnum; i++) {
		elf_read_segment(data, is64, &hdr, i, &seg);
		if (seg.type != PT_LOAD)
			continue;
		r = elf_check_segment(name, length, spec->memory_size, i, &seg, err);
		if (r < 0)
			return r;
	}

	for (unsigned int i = 0; i < hdr.phnum; i++) {
		elf_read_segment(data, is64, &hdr, i, &seg);
		/* The guest's memory is fresh, so a segment of zeros needs no bytes. */
		if (seg.type != PT_LOAD || seg.filesz == 0)
			continue;
		if (spec->image.data == NULL) {
			r = elf_copy_segment(name, data, &seg, &spec->image, err);
			if (r < 0)
				return r;
			continue;
		}
		regions = reallocarray(spec->regions, spec->region_count + 1,
				       sizeof(*regions));
		if (regions == NULL)
			return elf_fail(err, ENOMEM, "%s: no memory for segment %u",
					name, i);
		spec->regions = regions;
		r = elf_copy_segment(name, data, &seg, &regions[spec->region_count],
				     err);
		if (r < 0)
			return r;
		spec->region_count++;
	}
	if (spec->image.data == NULL)
		return elf_fail(err, EINVAL,
				"%s: no PT_LOAD segment with bytes to load", name);

	if (!(spec->regs_set & (1u << KVMRUN_REG_RIP))) {
		spec->regs[KVMRUN_REG_RIP] = hdr.entry;
		spec->regs_set |= 1u << KVMRUN_REG_RIP;
	}
	return 0;
}
