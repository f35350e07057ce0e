/*
 * Base64 as RFC 4648 section 4 defines it, padded, and only in its canonical
 * form: no whitespace, no missing padding, no stray bits in the last
 * character.  A guest image has one encoding, so a request that differs
 * from what a well-behaved encoder writes is refused rather than guessed at.
 */
#include <stdint.h>

#include "kvmrun-proto.h"

static const char alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of each character, or -1 for one outside the alphabet ('=' too). */
/* clang-format off */
static const int8_t values[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};
/* clang-format on */

/* Characters of LENGTH bytes encoded (no NUL), or SIZE_MAX past size_t. */
size_t
proto_base64_encoded_length(size_t length)
{
	if (length / 3 >= SIZE_MAX / 4)
		return SIZE_MAX;
	return (length + 2) / 3 * 4;
}

/*
 * Checks all of TEXT, so the daemon's event loop can refuse a bad payload
 * without decoding it: length a multiple of 4, alphabet characters, at most
 * two '=' and only at the end, and zero bits where a short last group's
 * character holds more bits than bytes remain.
 */
size_t
proto_base64_decoded_length(const char *text, size_t length)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t padding = 0;
	int last;

	if (length % 4 != 0)
		return SIZE_MAX;
	if (length == 0)
		return 0;
	if (s[length - 1] == '=')
		padding = s[length - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < length - padding; i++)
		if (values[s[i]] < 0)
			return SIZE_MAX;
	last = values[s[length - padding - 1]];
	if ((padding == 1 && (last & 0x03) != 0) ||
	    (padding == 2 && (last & 0x0f) != 0))
		return SIZE_MAX;
	return length / 4 * 3 - padding;
}

/* Writes exactly proto_base64_encoded_length(LENGTH) characters, no NUL. */
void
proto_base64_encode(const uint8_t *data, size_t length, char *out)
{
	size_t i;

	for (i = 0; i + 3 <= length; i += 3) {
		uint32_t group = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 |
				 data[i + 2];

		*out++ = alphabet[group >> 18];
		*out++ = alphabet[(group >> 12) & 0x3f];
		*out++ = alphabet[(group >> 6) & 0x3f];
		*out++ = alphabet[group & 0x3f];
	}
	if (i < length) {
		uint32_t group = (uint32_t)data[i] << 16;

		if (i + 1 < length)
			group |= (uint32_t)data[i + 1] << 8;
		*out++ = alphabet[group >> 18];
		*out++ = alphabet[(group >> 12) & 0x3f];
		*out++ = i + 1 < length ? alphabet[(group >> 6) & 0x3f] : '=';
		*out = '=';
	}
}

/* OUT must hold proto_base64_decoded_length(TEXT, LENGTH) bytes. */
long long
proto_base64_decode(const char *text, size_t length, uint8_t *out)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t decoded = proto_base64_decoded_length(text, length);
	size_t o = 0;

	if (decoded == SIZE_MAX || decoded > INT64_MAX)
		return -1;
	for (size_t i = 0; i < length; i += 4) {
		uint32_t group =
			(uint32_t)values[s[i]] << 18 | (uint32_t)values[s[i + 1]] << 12;

		out[o++] = (uint8_t)(group >> 16);
		if (s[i + 2] == '=')
			break;
		group |= (uint32_t)values[s[i + 2]] << 6;
		out[o++] = (uint8_t)(group >> 8);
		if (s[i + 3] == '=')
			break;
		group |= (uint32_t)values[s[i + 3]];
		out[o++] = (uint8_t)group;
	}
	return (long long)decoded;
}
