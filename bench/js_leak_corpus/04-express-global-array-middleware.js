// source: https://compilenrun.com/docs/framework/express/express-performance/express-memory-leaks (§4 global array)
// expect: unbounded-module-cache
const express = require('express');
const app = express();
const seen = [];
app.use((req, res, next) => {
  seen.push({ url: req.url, at: Date.now(), headers: req.headers });
  next();
});
app.listen(3000);
