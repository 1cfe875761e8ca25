import express from "express";

const app = express();
app.use(express.json());

app.get("/healthz", (_req, res) => {
  res.json({ ok: true, rss: process.memoryUsage().rss });
});

const port = Number(process.env.PORT ?? 8080);
app.listen(port, () => console.log(`clean-service on ${port}`));
