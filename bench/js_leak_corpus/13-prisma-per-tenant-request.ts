// source: https://github.com/prisma/orm/issues/13232 (multitenant app: a new PrismaClient per request)
// expect: client-per-request
import express from 'express';
import { PrismaClient } from '@prisma/client';
const app = express();
app.get('/orders', async (req, res) => {
  const prisma = new PrismaClient({ datasources: { db: { url: tenantUrl(req.headers['x-tenant'] as string) } } });
  res.json(await prisma.order.findMany());
});
function tenantUrl(t: string) { return `postgres://db/${t}`; }
app.listen(3000);
