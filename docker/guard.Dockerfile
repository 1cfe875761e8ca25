# memfit-guard alone, to `COPY --from` into any image: the static binary at /memfit-guard and
# nothing else (it needs no libc, so it runs on Debian slim, alpine, distroless and scratch).
#
# The build context is the directory that holds the static binary:
#   scripts/dist.sh                                            # dist/memfit-guard, static, stripped
#   docker build -f docker/guard.Dockerfile -t memfit-guard dist/
#
# Then, in a service's Dockerfile:
#   COPY --from=memfit-guard /memfit-guard /memfit-guard
#   ENTRYPOINT ["/memfit-guard", "--"]
#   CMD ["node", "server.js"]
FROM scratch
COPY memfit-guard /memfit-guard
ENTRYPOINT ["/memfit-guard"]
CMD ["--help"]
