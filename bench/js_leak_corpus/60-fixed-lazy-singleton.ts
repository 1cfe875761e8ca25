// source: https://github.com/prisma/nextjs-prisma-postgres-demo/issues/2 (the fix: keep the client on globalThis and reuse it)
// expect: none
import { PrismaClient } from '@prisma/client';
const g = globalThis as unknown as { prisma?: PrismaClient };
export function db(): PrismaClient {
  return g.prisma ?? (g.prisma = new PrismaClient());
}
export async function GET() {
  return Response.json(await db().user.findMany());
}
