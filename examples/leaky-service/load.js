// Load for the soak: RATE requests a second for SECONDS, each with a new query string (as
// real traffic has), against PORT. Waits for the server to listen.
const http = require("http");
const [port = 3000, seconds = 30, rate = 200] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
let sent = 0;
let done = 0;
let failed = 0;

function request(i) {
  const post = i % 10 === 0;
  const req = http.request(
    { port, agent, method: post ? "POST" : "GET", path: `/quote?symbol=S${i % 50}&n=${i}` },
    (res) => {
      res.resume();
      res.on("end", () => done++);
    },
  );
  req.on("error", () => failed++);
  if (post) req.write("y".repeat(8 * 1024));
  req.end();
}

function waitForServer(tries) {
  const probe = http.get({ port, path: "/quote" }, (res) => {
    res.resume();
    start();
  });
  probe.on("error", () => (tries > 0 ? setTimeout(() => waitForServer(tries - 1), 100) : process.exit(1)));
}

function start() {
  const started = Date.now();
  const timer = setInterval(() => {
    for (let k = 0; k < rate / 20; k++) request(sent++);
    if (Date.now() - started > seconds * 1000) {
      clearInterval(timer);
      setTimeout(() => {
        console.log(JSON.stringify({ sent, done, failed }));
        process.exit(0);
      }, 1000);
    }
  }, 50);
}

waitForServer(100);
