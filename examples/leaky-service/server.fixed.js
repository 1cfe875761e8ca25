// The same service with the four fixes `memfit audit` suggests.
const http = require("http");
const { EventEmitter } = require("events");

const prices = new EventEmitter();
const MAX_QUOTES = 200;
const quotes = new Map();
let lastPrice = null;

setInterval(() => prices.emit("tick", Math.random()), 1000).unref();
// Fix 1: one listener, registered once.
prices.on("tick", (price) => {
  lastPrice = price;
});

function remember(key, value) {
  // Fix 2: a bounded cache (oldest entry out first).
  if (quotes.size >= MAX_QUOTES) quotes.delete(quotes.keys().next().value);
  quotes.set(key, value);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  const symbol = url.searchParams.get("symbol") || "ACME";
  remember(url.search, { report: "x".repeat(16 * 1024), at: Date.now() });
  // Fix 3: no per-request interval; the shared tick above serves every request.

  if (req.method === "POST") {
    // Fix 4: a byte cap.
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > 64 * 1024) return req.destroy();
      chunks.push(chunk);
    });
    req.on("end", () => res.end(JSON.stringify({ received: size })));
    return;
  }
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ symbol, price: lastPrice }));
});

const port = Number(process.env.PORT || 3000);
server.listen(port, () => console.log(`listening on ${port}`));
if (process.env.SOAK_SECONDS) {
  setTimeout(() => server.close(() => process.exit(0)), Number(process.env.SOAK_SECONDS) * 1000).unref();
  setTimeout(() => process.exit(0), Number(process.env.SOAK_SECONDS) * 1000 + 2000);
}
