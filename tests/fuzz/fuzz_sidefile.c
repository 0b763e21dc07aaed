/*
 * libFuzzer entry point for the side-file checks (formats/sidefile.h): the files an output
 * carries only after they parse.  The first byte picks the kind; the rest is the file.
 */
#include <stddef.h>
#include <stdint.h>

#include "formats/sidefile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const qf_side_kind kinds[] = { QF_SIDE_JSON, QF_SIDE_MERGES, QF_SIDE_TEMPLATE, QF_SIDE_SPM, QF_SIDE_TIKTOKEN };
	if (size < 1)
		return 0;
	qf_err err = { { 0 } };
	(void)qf_side_check(kinds[data[0] % 5], "fuzz", data + 1, size - 1, &err);
	return 0;
}
