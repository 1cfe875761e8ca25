// A price-quote service with the four leaks `memfit audit` finds (see README).
const http = require("http");
const { EventEmitter } = require("events");

const prices = new EventEmitter();
prices.setMaxListeners(0); // silences the warning, not the leak
const quotes = new Map(); // every symbol ever asked for, with its last report

setInterval(() => prices.emit("tick", Math.random()), 1000).unref();

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  const symbol = url.searchParams.get("symbol") || "ACME";

  // Leak 1: a listener per request on a module-level emitter, never removed.
  prices.on("tick", (price) => {
    quotes.set(symbol, { price, at: Date.now() });
  });

  // Leak 2: a cache keyed by request data that nothing bounds.
  quotes.set(url.search, { report: "x".repeat(16 * 1024), at: Date.now() });

  // Leak 3: an interval per request, never cleared.
  setInterval(() => {
    if (res.writableEnded) return;
  }, 60000);

  if (req.method === "POST") {
    // Leak 4: the whole body kept, with no byte cap.
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => res.end(JSON.stringify({ received: Buffer.concat(chunks).length })));
    return;
  }
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ symbol, price: quotes.get(symbol)?.price ?? null }));
});

const port = Number(process.env.PORT || 3000);
server.listen(port, () => console.log(`listening on ${port}`));
if (process.env.SOAK_SECONDS) {
  setTimeout(() => server.close(() => process.exit(0)), Number(process.env.SOAK_SECONDS) * 1000).unref();
  setTimeout(() => process.exit(0), Number(process.env.SOAK_SECONDS) * 1000 + 2000);
}
