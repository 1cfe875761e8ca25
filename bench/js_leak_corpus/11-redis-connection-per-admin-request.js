// source: https://github.com/NodeBB/NodeBB/pull/5091 (a redis connection per request to the admin database page)
// expect: client-per-request
const redis = require('redis');
module.exports = function (router) {
  router.get('/api/admin/advanced/database', (req, res) => {
    const conn = redis.createClient();
    conn.info((err, info) => res.json({ err, info }));
  });
};
