// source: https://github.com/prisma/orm/issues/2695 ("I was creating multiple instances of the PrismaClient in my app")
// expect: client-per-request
const express = require('express');
const { PrismaClient } = require('@prisma/client');
const app = express();
async function listProjects(owner) {
  const prisma = new PrismaClient();
  return prisma.project.findMany({ where: { owner } });
}
app.get('/projects', async (req, res) => res.json(await listProjects(req.query.owner)));
app.listen(3000);
