// source: https://compilenrun.com/docs/framework/express/express-performance/express-memory-leaks (§1 unbounded caches)
// expect: unbounded-module-cache
const express = require('express');
const app = express();
const responses = {};
app.get('/api/data/:id', (req, res) => {
  const key = req.params.id;
  if (responses[key]) return res.json(responses[key]);
  const data = { id: key, at: Date.now() };
  responses[key] = data;
  res.json(data);
});
app.listen(3000);
