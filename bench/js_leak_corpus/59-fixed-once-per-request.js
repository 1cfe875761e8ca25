// source: https://github.com/request/request/pull/2420 (change .on to .once)
// expect: none
const express = require('express');
const jobs = require('./jobs');
const app = express();
app.post('/jobs', (req, res) => {
  const id = jobs.start(req.body);
  jobs.once(`done:${id}`, (result) => res.json(result));
});
app.listen(3000);
