// source: https://github.com/redis/node-redis/issues/2204 (connects to redis for every request and quits)
// expect: client-per-request
const express = require('express');
const { createClient } = require('redis');
const app = express();
app.get('/profile/:id', async (req, res) => {
  const client = createClient({ url: process.env.REDIS_URL });
  await client.connect();
  const profile = await client.hGetAll(`profile:${req.params.id}`);
  await client.quit();
  res.json(profile);
});
app.listen(3000);
