// source: https://gyaan.pman47.cc/nodejs/25-memory-leaks (the fix: remove the listener when the response closes)
// expect: none
const express = require('express');
const { EventEmitter } = require('events');
const feed = new EventEmitter();
const app = express();
app.get('/stream', (req, res) => {
  const forward = (chunk) => res.write(chunk);
  feed.on('data', forward);
  res.on('close', () => feed.off('data', forward));
});
app.listen(3000);
