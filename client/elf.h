/*
 * ELF executables as guest images: their PT_LOAD segments become the run's
 * image and regions, their entry point its rip.  Only what a fresh,
 * identity-mapped guest can honour is accepted; the rest is refused with a
 * message saying why.
 */
#ifndef KVMRUN_ELF_H
#define KVMRUN_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmrun.h"

/* True when DATA starts with the ELF magic, \x7fELF. */
bool elf_is_elf(const uint8_t *data, size_t length);
/* True for an ELF file of class ELFCLASS64, whose code is long mode's. */
bool elf_is_64(const uint8_t *data, size_t length);

/*
 * Loads the ELF executable DATA (LENGTH bytes, named NAME in messages) into
 * SPEC, whose image must still be empty and whose memory_size must be final.
 * It must be little-endian, 32- or 64-bit, EM_386 or EM_X86_64, ET_EXEC.
 *
 * Each PT_LOAD segment's file bytes go to its p_paddr, the guest-physical
 * address (GNU ld makes it equal to p_vaddr unless a linker script says
 * AT()); the bytes between p_filesz and p_memsz are left to the guest's
 * fresh, zeroed memory.  Every segment must end within SPEC->memory_size.
 * The first segment with file bytes becomes SPEC->image, the others are
 * appended to SPEC->regions, and rip is set to e_entry unless SPEC already
 * sets rip.
 *
 * Returns 0, or -EINVAL / -ENOMEM with ERR saying what is wrong.
 */
int elf_load(const char *name, const uint8_t *data, size_t length,
	     struct kvmrun_spec *spec, struct kvmrun_error *err);

#endif
