// source: https://github.com/astronomer/houston-api/pull/462 (one PrismaClient per process)
// expect: none
const express = require('express');
const { PrismaClient } = require('@prisma/client');
const prisma = new PrismaClient();
const app = express();
app.get('/users', async (req, res) => res.json(await prisma.user.findMany()));
app.listen(3000);
