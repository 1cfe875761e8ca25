// source: https://compilenrun.com/docs/framework/express/express-performance/express-memory-leaks (§3 closure kept by an interval)
// expect: interval-never-cleared
const express = require('express');
const app = express();
app.get('/api/process', (req, res) => {
  const big = new Array(1e6).fill(req.query.seed);
  setInterval(() => processChunk(big), 1000);
  res.send('started');
});
function processChunk(rows) { return rows.length; }
app.listen(3000);
