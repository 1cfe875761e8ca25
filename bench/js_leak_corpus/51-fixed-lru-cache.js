// source: https://iamanuragh.in/blog/2026-05-13-nodejs-memory-leaks-your-server-is-eating-ram-for-breakfast (the fix: an LRU)
// expect: none
const express = require('express');
const { LRUCache } = require('lru-cache');
const app = express();
const cache = new LRUCache({ max: 500, ttl: 300_000 });
app.get('/user/:id', async (req, res) => {
  if (!cache.has(req.params.id)) cache.set(req.params.id, { id: req.params.id });
  res.json(cache.get(req.params.id));
});
app.listen(3000);
