// source: https://memory-leak-school.pages.dev/node/timers-handles/ (the fix: keep the id, clear at shutdown)
// expect: none
const http = require('http');
const server = http.createServer((req, res) => res.end('ok')).listen(3000);
const timers = [];
function track(id) { timers.push(id); return id; }
track(setInterval(() => console.log('tick'), 1000));
function shutdown() { for (const id of timers) clearInterval(id); server.close(); }
process.on('SIGTERM', shutdown);
