// Test-only oracle: Hugging Face tokenizers (Rust, via its Node binding) encodes
// each text of a JSON array with a tokenizer.json; prints a JSON array of id arrays.
// usage: node tokenize.js TOKENIZER_JSON TEXTS_JSON
const fs = require('fs');
const path = require('path');
// the npm modules live in QF_ORACLE_DIR when set (a build tree elsewhere), else next to this script
const base = process.env.QF_ORACLE_DIR || __dirname;
const { Tokenizer } = require(path.join(base, 'node_modules', 'tokenizers'));
(async () => {
  const tok = Tokenizer.fromFile(process.argv[2]);
  const texts = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
  const out = [];
  for (const t of texts) {
    const enc = await tok.encode(t);
    out.push(enc.getIds());
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
