// source: https://github.com/npm/newww/pull/836 ("Don't make a fresh client on every request"; here with pg, the same shape)
// expect: client-per-request
const { Pool } = require('pg');
const fastify = require('fastify')();
fastify.get('/search', async (request, reply) => {
  const pool = new Pool({ connectionString: process.env.DATABASE_URL });
  const { rows } = await pool.query('select * from pkg where name like $1', [request.query.q + '%']);
  return rows;
});
fastify.listen({ port: 3000 });
