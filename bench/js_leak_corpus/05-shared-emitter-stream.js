// source: https://gyaan.pman47.cc/nodejs/25-memory-leaks (§2 EventEmitter listener leaks)
// expect: listener-per-call
const express = require('express');
const { EventEmitter } = require('events');
const feed = new EventEmitter();
const app = express();
app.get('/stream', (req, res) => {
  feed.on('data', (chunk) => res.write(chunk));
});
app.listen(3000);
