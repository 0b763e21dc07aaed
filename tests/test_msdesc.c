/*
 * test_msdesc.c — msModelSlim sources: known dequantized values from the
 * format's definition (ascendv1.md: deq_weight = (weight − weight_offset) ·
 * weight_scale; static W8A8: deq_scale = input_scale · weight_scale), and a
 * table of broken checkpoints, each refused (QF_EFORMAT) with the file and
 * tensor named.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/checkpoint.h"
#include "formats/msdesc.h"
#include "tests/tap.h"
#include "tests/util.h"

typedef struct tspec {
	const char *name;
	qf_dtype dt;
	int ndim;
	int64_t d0, d1;
	const char *type;         /* its description entry, NULL: none */
} tspec;

#define MAXT 12

/* The good module set: a float embedding, a W8A16 linear, a static W8A8 linear. */
static const tspec base[] = {
	{ "m.embed.weight", QF_BF16, 2, 4, 8, "FLOAT" },
	{ "m.q.weight", QF_I8, 2, 4, 8, "W8A16" },
	{ "m.q.weight_scale", QF_F32, 2, 4, 1, "W8A16" },
	{ "m.q.weight_offset", QF_F32, 2, 4, 1, "W8A16" },
	{ "m.s.weight", QF_I8, 2, 4, 8, "W8A8" },
	{ "m.s.deq_scale", QF_F32, 1, 4, 0, "W8A8" },
	{ "m.s.input_scale", QF_F32, 1, 1, 0, "W8A8" },
	{ "m.s.input_offset", QF_F32, 1, 1, 0, "W8A8" },
	{ "m.s.quant_bias", QF_I32, 1, 4, 0, "W8A8" },
};
#define NBASE (sizeof base / sizeof base[0])

typedef struct bcase {
	const char *why;
	tspec change[3];          /* replaces the base tensor of that name, or adds it; d0 < 0 removes it */
	const char *head;         /* global keys of the description ("" for the default), or NULL */
	const char *whole;        /* the whole description text instead, or NULL */
	float input_scale;        /* 0: 0.5 */
	const char *want[2];      /* substrings of the message */
} bcase;

#define OKMSG { NULL, NULL }
static const bcase cases[] = {
	{ "the good checkpoint opens", { { NULL } }, NULL, NULL, 0, OKMSG },
	{ "a tensor missing from the description", { { "m.q.weight_offset", QF_F32, 2, 4, 1, NULL } }, NULL, NULL, 0,
	  { "quant_model_description.json: no entry for tensor 'm.q.weight_offset'", "quant_model_weights.safetensors" } },
	{ "an unknown type", { { "m.q.weight_scale", QF_F32, 2, 4, 1, "W9A9" } }, NULL, NULL, 0,
	  { "quant_model_description.json", "tensor 'm.q.weight_scale' has unknown type 'W9A9'" } },
	{ "a type msModelSlim has that qforge does not read", { { "m.embed.weight", QF_BF16, 2, 4, 8, "W4A8_DYNAMIC" } }, NULL,
	  NULL, 0, { "quant_model_weights.safetensors: tensor 'm.embed.weight' is W4A8_DYNAMIC", "does not read" } },
	{ "scale columns that do not divide the row", { { "m.q.weight_scale", QF_F32, 2, 4, 3, "W8A16" } }, NULL, NULL, 0,
	  { "quant_model_weights.safetensors: tensor 'm.q.weight_scale' is [4, 3]", "'m.q.weight' [4, 8]" } },
	{ "scale rows not the weight's", { { "m.q.weight_scale", QF_F32, 2, 3, 1, "W8A16" } }, NULL, NULL, 0,
	  { "quant_model_weights.safetensors: tensor 'm.q.weight_scale' is [3, 1]", "needs [4, 1]" } },
	{ "a 1-D scale", { { "m.q.weight_scale", QF_F32, 1, 4, 0, "W8A16" } }, NULL, NULL, 0,
	  { "tensor 'm.q.weight_scale' is [4]", "quant_model_weights.safetensors" } },
	{ "an offset without a scale", { { "m.q.weight_scale", QF_F32, -1, -1, 0, NULL } }, NULL, NULL, 0,
	  { "quant_model_weights.safetensors: tensor 'm.q.", "'m.q.weight_scale'" } },
	{ "a scale without an offset", { { "m.q.weight_offset", QF_F32, -1, -1, 0, NULL } }, NULL, NULL, 0,
	  { "quant_model_weights.safetensors: tensor 'm.q.weight' (W8A16)", "no 'm.q.weight_offset'" } },
	{ "an offset shaped unlike its scale", { { "m.q.weight_offset", QF_F32, 2, 4, 2, "W8A16" } }, NULL, NULL, 0,
	  { "tensor 'm.q.weight_offset' is [4, 2]", "the shape of its weight_scale" } },
	{ "an int scale", { { "m.q.weight_scale", QF_I32, 2, 4, 1, "W8A16" } }, NULL, NULL, 0,
	  { "quant_model_weights.safetensors: tensor 'm.q.weight_scale' is I32", "F32, BF16 or F16" } },
	{ "an int8 weight typed FLOAT",
	  { { "m.q.weight", QF_I8, 2, 4, 8, "FLOAT" }, { "m.q.weight_scale", QF_F32, -1, -1, 0, NULL },
	    { "m.q.weight_offset", QF_F32, -1, -1, 0, NULL } },
	  NULL, NULL, 0, { "quant_model_weights.safetensors: tensor 'm.q.weight' is I8 but typed FLOAT", "needs its type" } },
	{ "a W8A16 weight stored as BF16", { { "m.q.weight", QF_BF16, 2, 4, 8, "W8A16" } }, NULL, NULL, 0,
	  { "quant_model_weights.safetensors: tensor 'm.q.weight' is typed W8A16 but stored as BF16", "I8" } },
	{ "a 3-D quantized weight", { { "m.q.weight", QF_I8, 3, 4, 8, "W8A16" } }, NULL, NULL, 0,
	  { "tensor 'm.q.weight' (W8A16) has 3 dims", "quant_model_weights.safetensors" } },
	{ "a scale typed unlike its weight", { { "m.q.weight_scale", QF_F32, 2, 4, 1, "W8A8_DYNAMIC" } }, NULL, NULL, 0,
	  { "quant_model_description.json: tensor 'm.q.weight_scale' is typed W8A8_DYNAMIC", "its weight 'm.q.weight' is W8A16" } },
	{ "a scale without its weight", { { "m.z.weight_scale", QF_F32, 2, 4, 1, "W8A16" } }, NULL, NULL, 0,
	  { "quant_model_weights.safetensors: tensor 'm.z.weight_scale'", "no weight 'm.z.weight'" } },
	{ "groups unlike group_size", { { "m.q.weight_scale", QF_F32, 2, 4, 4, "W8A16" }, { "m.q.weight_offset", QF_F32, 2, 4, 4, "W8A16" } },
	  "\"model_quant_type\": \"W8A8\", \"group_size\": 4, ", NULL, 0, { "tensor 'm.q.weight_scale' is [4, 4]: groups of 2 columns", "group_size is 4" } },
	{ "static W8A8 without deq_scale", { { "m.s.deq_scale", QF_F32, -1, -1, 0, NULL } }, NULL, NULL, 0,
	  { "quant_model_weights.safetensors: tensor 'm.s.weight' (W8A8)", "no 'm.s.deq_scale'" } },
	{ "a deq_scale of the wrong length", { { "m.s.deq_scale", QF_F32, 1, 3, 0, "W8A8" } }, NULL, NULL, 0,
	  { "tensor 'm.s.deq_scale' is F32 [3]", "F32 or I64 [4]" } },
	{ "an input_scale of zero", { { NULL } }, NULL, NULL, -1, { "tensor 'm.s.input_scale' is 0", "positive" } },
	{ "a description that is not an object", { { NULL } }, NULL, "[1, 2]", 0,
	  { "quant_model_description.json: not a JSON object", NULL } },
	{ "a description that is not JSON", { { NULL } }, NULL, "{\"model_quant_type\": ", 0,
	  { "quant_model_description.json: invalid JSON", NULL } },
	{ "no model_quant_type", { { NULL } }, "", NULL, 0, { "quant_model_description.json: no \"model_quant_type\"", NULL } },
	{ "a type that is not a string", { { NULL } }, NULL, "{\"model_quant_type\": \"W8A16\", \"m.q.weight\": 8}", 0,
	  { "quant_model_description.json: the type of tensor 'm.q.weight' is not a string", NULL } },
	{ "group_size not an integer", { { NULL } }, "\"model_quant_type\": \"W8A16\", \"group_size\": 1.5, ", NULL, 0,
	  { "quant_model_description.json: \"group_size\" must be an integer", NULL } },
	{ "QuaRot rotation", { { NULL } }, "\"model_quant_type\": \"W8A16\", \"is_rot_used\": true, ", NULL, 0,
	  { "quant_model_description.json: \"is_rot_used\" is true", "rotation" } },
	{ "a tensor listed twice", { { NULL } }, NULL,
	  "{\"model_quant_type\": \"W8A16\", \"m.q.weight\": \"W8A16\", \"m.q.weight\": \"W8A16\"}", 0,
	  { "quant_model_description.json: tensor 'm.q.weight' is listed twice", NULL } },
};

/* Writes case c's folder and opens it. */
static qf_status open_case(const bcase *c, const char *dir, qf_ckpt **ck, qf_err *err)
{
	tspec ts[MAXT];
	size_t n = 0;
	for (size_t i = 0; i < NBASE; i++)
		ts[n++] = base[i];
	for (int k = 0; k < 3 && c->change[k].name; k++) {
		size_t i = 0;
		while (i < n && strcmp(ts[i].name, c->change[k].name))
			i++;
		if (c->change[k].ndim < 0) {
			if (i < n)
				ts[i] = ts[--n];
			continue;
		}
		ts[i] = c->change[k];
		if (i == n)
			n++;
	}
	qf_st_entry e[MAXT];
	uint8_t *bufs[MAXT];
	char desc[4096];
	size_t dk = 0;
	if (c->whole)
		dk = (size_t)snprintf(desc, sizeof desc, "%s", c->whole);
	else
		dk = (size_t)snprintf(desc, sizeof desc, "{%s", c->head ? c->head : "\"model_quant_type\": \"W8A8\", \"version\": \"1.0.0\", ");
	for (size_t i = 0; i < n; i++) {
		memset(&e[i], 0, sizeof e[i]);
		e[i].name = ts[i].name;
		e[i].dtype = ts[i].dt;
		e[i].ndim = ts[i].ndim;
		e[i].shape[0] = ts[i].d0;
		e[i].shape[1] = ts[i].d1;
		e[i].shape[2] = 2;
		uint64_t ne = 1;
		for (int d = 0; d < ts[i].ndim; d++)
			ne *= (uint64_t)e[i].shape[d];
		size_t nb = (size_t)ne * qf_dtype_info(ts[i].dt)->block_bytes;
		bufs[i] = calloc(1, nb + 1);
		if (!strcmp(ts[i].name, "m.s.input_scale")) {
			float v = c->input_scale < 0 ? 0.0f : 0.5f;
			memcpy(bufs[i], &v, 4);
		}
		e[i].data = bufs[i];
		if (!c->whole && ts[i].type)
			dk += (size_t)snprintf(desc + dk, sizeof desc - dk, "%s\"%s\": \"%s\"", dk > 1 && desc[dk - 2] != ',' ? ", " : "",
					       ts[i].name, ts[i].type);
	}
	if (!c->whole)
		snprintf(desc + dk, sizeof desc - dk, "}");
	char path[1024];
	snprintf(path, sizeof path, "%s/quant_model_weights.safetensors", dir);
	qf_status s = qf_st_write(path, e, n, NULL, err);
	for (size_t i = 0; i < n; i++)
		free(bufs[i]);
	if (s)
		return s;
	snprintf(path, sizeof path, "%s/quant_model_description.json", dir);
	if (tu_write(path, desc, strlen(desc)))
		return qf_fail(err, QF_EIO, "cannot write %s", path);
	return qf_ckpt_open(dir, ck, err);
}

static void bad_inputs(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const bcase *c = &cases[i];
		char dir[64];
		snprintf(dir, sizeof dir, "case%zu", i);
		const char *d = tu_path(dir);
		char cmd[1100];
		snprintf(cmd, sizeof cmd, "mkdir -p '%s'", d);
		if (system(cmd) != 0)
			bail("mkdir %s", d);
		qf_err err = { { 0 } };
		qf_ckpt *ck = NULL;
		qf_status s = open_case(c, d, &ck, &err);
		if (!c->want[0]) {
			is_int(QF_OK, s, "%s (%s)", c->why, err.msg);
			if (s)
				continue;
			/* what each tensor of the good set is to a reader */
			static const struct { const char *name; qf_ms_role role; } roles[] = {
				{ "m.embed.weight", QF_MS_PLAIN }, { "m.q.weight", QF_MS_QUANT }, { "m.q.weight_scale", QF_MS_DROPPED },
				{ "m.q.weight_offset", QF_MS_DROPPED }, { "m.s.weight", QF_MS_QUANT }, { "m.s.deq_scale", QF_MS_DROPPED },
				{ "m.s.input_scale", QF_MS_DROPPED }, { "m.s.input_offset", QF_MS_DROPPED }, { "m.s.quant_bias", QF_MS_DROPPED },
			};
			for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++) {
				qf_ms_weight mw;
				const qf_tensor *t = qf_st_find(ck->st, roles[k].name);
				is_int(roles[k].role, t ? (int)qf_ms_resolve(ck->ms, ck->st, t, &mw) : -1, "  %s: %s", roles[k].name,
				       roles[k].role == QF_MS_QUANT ? "dequantized" : roles[k].role == QF_MS_DROPPED ? "read with its weight" : "kept");
				if (t && roles[k].role == QF_MS_QUANT)
					ok(!strcmp(roles[k].name, "m.s.weight") ? mw.deq && mw.in_scale && !mw.scale : mw.scale && mw.offset && mw.group == 8,
					   "  … %s", !strcmp(roles[k].name, "m.s.weight") ? "static W8A8 through deq_scale / input_scale" : "per channel, with its offset");
			}
			qf_ckpt_close(ck);
			continue;
		} else {
			is_int(QF_EFORMAT, s, "%s: exit 3", c->why);
			for (int k = 0; k < 2 && c->want[k]; k++)
				ok(strstr(err.msg, c->want[k]) != NULL, "  … names '%s': %s", c->want[k], err.msg);
		}
		qf_ckpt_close(ck);
	}
}

/* ---- known answers ------------------------------------------------------------------- */

static qf_tensor tens(const char *name, qf_dtype dt, int ndim, int64_t d0, int64_t d1, const void *data)
{
	qf_tensor t;
	memset(&t, 0, sizeof t);
	t.name = name;
	t.dtype = dt;
	t.ndim = ndim;
	t.shape[0] = d0;
	t.shape[1] = d1;
	t.nelems = (uint64_t)d0 * (uint64_t)(ndim > 1 ? d1 : 1);
	t.nbytes = t.nelems * qf_dtype_info(dt)->block_bytes;
	t.data = data;
	return t;
}

static void known_answers(void)
{
	/* W8A16 per group of 4 with offsets: w = (q − o) · s */
	int8_t q[2 * 8] = { -128, -1, 0, 1, 127, 5, -7, 64, 3, 2, 1, 0, -1, -2, -3, -4 };
	float sc[2 * 2] = { 0.5f, 0.25f, 2.0f, 1.0f / 64 }, of[2 * 2] = { 0, 1, -2, 3 };
	qf_tensor w = tens("x.weight", QF_I8, 2, 2, 8, q), s = tens("x.weight_scale", QF_F32, 2, 2, 2, sc),
		  o = tens("x.weight_offset", QF_F32, 2, 2, 2, of);
	qf_ms_weight mw = { .type = QF_MS_W8A16, .scale = &s, .offset = &o, .group = 4 };
	float row[8];
	int bad = 0;
	for (int r = 0; r < 2; r++) {
		qf_ms_row_f32(&w, &mw, r, row);
		for (int k = 0; k < 8; k++)
			bad += row[k] != ((float)q[r * 8 + k] - of[r * 2 + k / 4]) * sc[r * 2 + k / 4];
	}
	is_int(0, bad, "W8A16 groups of 4: (q − offset) · scale, element by element");
	qf_ms_row_f32(&w, &mw, 0, row);
	is_double(-64.0, row[0], 0, "q = −128, offset 0, scale 0.5 → −64");
	is_double(1.0, row[5], 0, "q = 5, offset 1, scale 0.25 → 1");

	/* static W8A8: the weight scale is deq_scale / input_scale; deq_scale F32 or I64 holding the f32's bits */
	float dq[2] = { 0.02f, 0.5f }, is = 0.5f;
	int64_t dq64[2];
	for (int i = 0; i < 2; i++) {
		int32_t b;
		memcpy(&b, &dq[i], 4);
		dq64[i] = b; /* int32 bits widened, as AscendV1Saver stores it for a float16 model */
	}
	qf_tensor d32 = tens("x.deq_scale", QF_F32, 1, 2, 0, dq), d64 = tens("x.deq_scale", QF_I64, 1, 2, 0, dq64),
		  in = tens("x.input_scale", QF_F32, 1, 1, 0, &is);
	for (int v = 0; v < 2; v++) {
		qf_ms_weight m8 = { .type = QF_MS_W8A8, .deq = v ? &d64 : &d32, .in_scale = &in, .group = 8 };
		bad = 0;
		for (int r = 0; r < 2; r++) {
			qf_ms_row_f32(&w, &m8, r, row);
			for (int k = 0; k < 8; k++)
				bad += row[k] != (float)q[r * 8 + k] * (dq[r] / is);
		}
		is_int(0, bad, "static W8A8, deq_scale %s: q · deq_scale / input_scale", v ? "I64" : "F32");
	}
	qf_ms_row_f32(&w, &(qf_ms_weight){ .type = QF_MS_W8A8, .deq = &d64, .in_scale = &in, .group = 8 }, 1, row);
	is_double(3.0, row[0], 0, "q = 3, deq_scale 0.5, input_scale 0.5 → 3");
}

int main(void)
{
	plan_lazy();
	known_answers();
	bad_inputs();
	return tap_failures() != 0;
}
