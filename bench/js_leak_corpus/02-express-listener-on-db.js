// source: https://compilenrun.com/docs/framework/express/express-performance/express-memory-leaks (§2 listeners not removed)
// expect: listener-per-call
const express = require('express');
const db = require('./database');
const app = express();
app.get('/api/listen', (req, res) => {
  db.on('update', (row) => console.log('updated', row.id));
  res.send('listening');
});
app.listen(3000);
