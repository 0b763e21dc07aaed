#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/cleanup.h"

typedef struct cmd {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
	const char *usage;
} cmd;

static const cmd cmds[] = {
	{ "convert", cli_convert, "checkpoint (FP8/BF16/F16/F32 safetensors) → GGUF that llama.cpp loads",
	  "qforge convert [-o OUT] [--outtype f32|f16|bf16|auto] [-t N] [--dry-run] [--json] [--force]\n"
	  "               [--keep-mtp | --no-mtp] [--legacy-kv-b] [--allow-nonfinite] [--ignore-input-hashes] [--pre NAME]\n"
	  "               [--quiet] CHECKPOINT\n"
	  "  CHECKPOINT: a Hugging Face folder, a tar of one, or a .safetensors file.\n"
	  "  Llama 2/3.x and Mistral, Qwen2/2.5, Qwen3, Qwen3-MoE, DeepSeek V2/V3/V3.1/R1 and V3.2 (deepseek32,\n"
	  "  MTP kept unless --no-mtp; other DeepSeeks drop it unless --keep-mtp); FP8 weights are dequantized with their\n"
	  "  _scale_inv block scales.  auto: BF16 for BF16/FP8, F16 for F16, F32 for F32; norms,\n"
	  "  routers and 1-D tensors stay F32.  Output goes to a unique OUT.qftmp-* and is renamed when complete.\n"
	  "  --legacy-kv-b writes one attn_kv_b (llama.cpp before April 2025) instead of attn_k_b/attn_v_b.\n"
	  "  --pre NAME writes llama.cpp's pre-tokenizer NAME for a tokenizer.json regex qforge does not know.\n"
	  "  A GGUF or bundle source whose recorded hashes fail is refused (exit 3, nothing written) unless\n"
	  "  --ignore-input-hashes.\n" },
	{ "quantize", cli_quantize, "FP8/INT8/INT4/ggml block quantization per target chip → GGUF or packed bundle",
	  "qforge quantize (--target NAME | --profile FILE | --type REGEX=FORMAT) [-o OUT] [--format gguf|packed]\n"
	  "                [--type REGEX=FORMAT]... [--keep REGEX]... [--allow-requantize] [-t N] [--dry-run]\n"
	  "                [--json] [--force] [--quiet] [--no-quality] [--ignore-input-hashes] [--pre NAME] SOURCE\n"
	  "       qforge quantize --list-targets [--json]\n"
	  "  SOURCE: a checkpoint (FP8 release or BF16; read in one pass), or a GGUF or bundle from convert.\n"
	  "  Formats: f32 f16 bf16 q8_0 q6_k q5_k q5_1 q5_0 q4_k q4_1 q4_0 q3_k q2_k mxfp4 (GGUF or bundle);\n"
	  "  fp8-b128 mxfp8 int8-ch int4-g128 int4-g128-asym (bundle only).  Routers, norms and 1-D tensors\n"
	  "  stay F32.  --type rules are tried in order before the profile (first match wins); --keep leaves\n"
	  "  matching tensors unquantized.\n"
	  "  A format whose block does not divide a row falls back to BF16/F16/F32 (reported).\n"
	  "  A GGUF or bundle SOURCE whose recorded hashes fail is refused unless --ignore-input-hashes.\n" },
	{ "verify", cli_verify, "hashes, per-tensor error and a reference forward pass: perplexity, KL divergence, top-1",
	  "qforge verify [--reference ORIG] [--text FILE [--ctx N] [--chunks N]] [--max-ppl-ratio R] [--max-kld K]\n"
	  "              [-t N] [--mem GIB] [--top N] [--no-tensors] [--json] [--quiet] MODEL...\n"
	  "  Every MODEL (GGUF, bundle or checkpoint): its recorded hashes are recomputed (any mismatch fails).\n"
	  "  --reference: each tensor is compared with the original (relative RMS, max |Δ|, cosine).\n"
	  "  --text (plain or gzip): fp32 forward passes of the reference and every MODEL on the same tokens,\n"
	  "  chunks of --ctx (512) with BOS first, second half scored: PPL ± error, and against the reference\n"
	  "  the PPL ratio, mean KLD (and 99th percentile), same-top-1 rate and RMS Δp (llama.cpp's definitions).\n"
	  "  Weights stay decoded when they fit in --mem GiB (4), else they stream per chunk.\n"
	  "  Exit 1 when a hash mismatches or a --max-* limit is exceeded.\n" },
	{ "calibrate", cli_calibrate, "an importance matrix (llama.cpp's GGUF imatrix) from the reference forward pass",
	  "qforge calibrate --text FILE [--ctx N] [--chunks N] [--process-output] [--legacy-kv-b] [-t N] [--mem GIB]\n"
	  "                 [--json] [--quiet] [--force] -o IMATRIX.gguf MODEL\n"
	  "  MODEL: a checkpoint (the FP8 release too), a GGUF or a bundle.  The text (plain or gzip) is cut into\n"
	  "  chunks of --ctx (512, at least 16, at most the model's context_length) with BOS first, and every\n"
	  "  position of every chunk goes through the fp32 forward pass.  For each blk.* weight the file holds\n"
	  "  Σx² per input column of the input that weight sees in llama.cpp's graph, and a token count;\n"
	  "  routed experts per expert, counting routed (token, slot) pairs; DeepSeek's attn_k_b and attn_v_b\n"
	  "  per head with the inputs of llama.cpp's absorbed MLA (--legacy-kv-b: attn_kv_b instead);\n"
	  "  output.weight only with --process-output.  Written in llama-imatrix's GGUF format, for\n"
	  "  quantize --imatrix; the same bytes for any -t or --mem.  Exit 3 for an empty text; 2 for a text\n"
	  "  shorter than one chunk or --ctx out of range; 4 when the output cannot be written (checked first).\n" },
	{ "tokenize", cli_tokenize, "text → token ids with a model's own tokenizer (as Hugging Face encodes)",
	  "qforge tokenize [--ids] [--json] [--no-special] MODEL TEXTFILE\n"
	  "  MODEL: a checkpoint folder (tokenizer.json), a GGUF or a packed bundle.  TEXTFILE may be gzip'd;\n"
	  "  '-' reads stdin.  Default output: offset, id, piece, text per token; --ids: the ids on one line;\n"
	  "  --json: ids, pieces and byte offsets.  BOS/EOS are added as the tokenizer says unless --no-special.\n" },
	{ "inspect", cli_inspect, "show what is in a checkpoint, safetensors, GGUF or packed bundle",
	  "qforge inspect [--json] [--hashes] PATH\n"
	  "  PATH: a checkpoint folder or tar, a .safetensors file, a .gguf file or a packed bundle.\n"
	  "  Reads headers only (--hashes also reads tensor data to print each xxh64).\n" },
};

static void usage(FILE *f)
{
	fprintf(f, "qforge %s — convert, quantize and verify LLM checkpoints\n\n"
		   "usage: qforge COMMAND [OPTIONS] ARGS\n\ncommands:\n", PACKAGE_VERSION);
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f, "\n'qforge help COMMAND' shows a command's options; 'man qforge' the manual.\n"
		   "Exit codes: 0 ok, 1 verification failed, 2 usage, 3 bad input, 4 I/O error.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *c = argv[1];
	if (strcmp(c, "--version") == 0 || strcmp(c, "version") == 0) {
		printf("qforge %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (strcmp(c, "help") == 0 || strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0) {
		if (argc > 2) {
			for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
				if (strcmp(cmds[i].name, argv[2]) == 0) {
					printf("%s", cmds[i].usage);
					return 0;
				}
			}
			fprintf(stderr, "qforge: no command '%s'\n", argv[2]);
			return 2;
		}
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		if (strcmp(cmds[i].name, c) == 0) {
			for (int k = 2; k < argc; k++) {
				if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
					printf("%s", cmds[i].usage);
					return 0;
				}
			}
			cli_install_signals();
			int rc = cmds[i].fn(argc - 1, argv + 1);
			qf_err changed = { { 0 } };
			if ((rc == 0 || rc == 1) && qf_guard_check(&changed)) /* what it printed came from a file that changed */
				rc = cli_error(cmds[i].name, QF_EFORMAT, &changed);
			return rc;
		}
	}
	fprintf(stderr, "qforge: unknown command '%s'\n", c);
	usage(stderr);
	return 2;
}
