// A stand-in for a JavaScript production build (`next build`, `vite build`, webpack):
// it "parses" a few thousand generated modules into an object graph held in memory,
// then hands chunks to minifier workers, one per visible CPU minus one, as
// terser-webpack-plugin does (os.availableParallelism() - 1, at least 1).
//
//   node examples/node-build/build.js [MODULES]
//
// Memory grows with MODULES (default 3000) and with the number of CPUs the build sees,
// which is why `memfit run --cpus` matters.
"use strict";
const os = require("os");
const { fork } = require("child_process");

if (process.argv[2] === "--worker") {
  // A minifier worker: builds large strings from the chunk it is sent.
  process.on("message", (chunk) => {
    const out = [];
    for (let round = 0; round < 4; round++) {
      for (const mod of chunk) {
        out.push(mod.source.replace(/\s+/g, " ").split("").reverse().join(""));
      }
    }
    process.send({ bytes: out.reduce((n, s) => n + s.length, 0) });
    process.exit(0);
  });
  return;
}

const modules = Number(process.argv[2] || 3000);
const started = Date.now();
const graph = [];
for (let i = 0; i < modules; i++) {
  const body = [];
  for (let line = 0; line < 40; line++) {
    body.push(`export const value_${i}_${line} = compute(${i} * ${line}, "${"x".repeat(24)}");`);
  }
  const source = body.join("\n");
  // A crude AST: one node object per token, as parsers keep them.
  const tokens = source.split(/\s+/).map((text, index) => ({ type: "Token", text, index, parent: i }));
  graph.push({ id: i, source, tokens, imports: [i - 1, i - 2].filter((n) => n >= 0) });
}
console.log(`parsed ${modules} modules in ${Date.now() - started} ms`);

const workers = Math.max(1, (os.availableParallelism ? os.availableParallelism() : os.cpus().length) - 1);
const chunkSize = Math.ceil(graph.length / workers);
let pending = workers;
let total = 0;
for (let w = 0; w < workers; w++) {
  const chunk = graph.slice(w * chunkSize, (w + 1) * chunkSize).map((m) => ({ source: m.source }));
  const child = fork(__filename, ["--worker"]);
  child.on("message", (msg) => {
    total += msg.bytes;
  });
  child.on("exit", (code) => {
    if (code !== 0) {
      console.error(`minifier worker ${w} failed with ${code}`);
      process.exitCode = 1;
    }
    if (--pending === 0) {
      console.log(`minified with ${workers} worker(s): ${total} bytes in ${Date.now() - started} ms`);
    }
  });
  child.send(chunk);
}
