// source: https://github.com/tj/connect-redis/issues/254 (a new RedisStore, and its client, on every request)
// expect: client-per-request
const express = require('express');
const session = require('express-session');
const { createClient } = require('redis');
const app = express();
app.use((req, res, next) => {
  const client = createClient({ url: process.env.REDIS_URL });
  client.connect();
  session({ store: makeStore(client), secret: 'keyboard cat', resave: false })(req, res, next);
});
function makeStore(client) { return { client }; }
app.listen(3000);
