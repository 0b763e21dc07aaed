/*
 * libFuzzer entry point for the bundle tar walker: the input is a tar held
 * in memory; every member it accepts must lie inside the input, with a
 * plain top-level name, each name once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/packed_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	qf_mapfile m;
	memset(&m, 0, sizeof m);
	m.path = (char *)"<fuzz>";
	m.data = data;
	m.size = size;
	member *mb = NULL;
	size_t n = 0;
	qf_err err = { { 0 } };
	if (pk_tar_members(&m, &mb, &n, &err) == QF_OK) {
		for (size_t i = 0; i < n; i++) {
			if (mb[i].off > size || mb[i].size > size - mb[i].off || !mb[i].name[0] || strchr(mb[i].name, '/'))
				abort();
			for (size_t j = 0; j < i; j++)
				if (strcmp(mb[i].name, mb[j].name) == 0)
					abort();
		}
		free(mb);
	}
	return 0;
}
