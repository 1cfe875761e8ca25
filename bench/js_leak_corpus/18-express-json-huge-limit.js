// source: https://github.com/goldbergyoni/nodebestpractices/pull/162 (limit request body size: the default is 100kb)
// expect: unbounded-buffer
const express = require('express');
const app = express();
app.use(express.json({ limit: '500mb' }));
app.post('/import', (req, res) => res.json({ n: req.body.length }));
app.listen(3000);
