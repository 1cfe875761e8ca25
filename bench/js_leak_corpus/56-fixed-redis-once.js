// source: https://github.com/tj/connect-redis/issues/254 (the fix: the store and its client created once)
// expect: none
const express = require('express');
const session = require('express-session');
const { createClient } = require('redis');
const client = createClient({ url: process.env.REDIS_URL });
client.connect();
const app = express();
app.use(session({ store: { client }, secret: 'keyboard cat', resave: false }));
app.listen(3000);
