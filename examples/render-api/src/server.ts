import express from "express";
import compression from "compression";
import { PrismaClient } from "@prisma/client";

// One client for the process: Prisma keeps a connection pool per client.
const prisma = new PrismaClient();
const app = express();

app.use(compression({ level: 6 }));
app.use(express.json({ limit: "1mb" }));

app.get("/healthz", (_req, res) => {
  res.json({ ok: true });
});

app.get("/workouts", async (req, res) => {
  const page = Number(req.query.page ?? 0);
  const workouts = await prisma.workout.findMany({
    skip: page * 20,
    take: 20,
    select: { id: true, title: true, durationMinutes: true },
  });
  res.json(workouts);
});

app.post("/workouts", async (req, res) => {
  const workout = await prisma.workout.create({ data: req.body });
  res.status(201).json(workout);
});

const port = Number(process.env.PORT ?? 3000);
app.listen(port, () => {
  console.log(`fitness-api listening on ${port}`);
});
