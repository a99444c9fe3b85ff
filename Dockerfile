# syntax=docker/dockerfile:1
# Stage 1: compile TypeScript with the full toolchain.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts \
 && npm rebuild @ffmpeg-installer/linux-x64 esbuild
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts

# Stage 2: a slim runtime with only what the broker runs, as a non-root user.
FROM node:20-bookworm-slim
# MALLOC_ARENA_MAX: glibc keeps one malloc arena per thread that ever allocated; the scrypt password hashes
# (16 MB each, on libuv's threads) left ~100 MB resident in them after the first start's seeding.
# MALLOC_MMAP_THRESHOLD_: glibc's own initial value, fixed. Left dynamic, glibc raises it to the largest block
# freed (a 16 MB scrypt buffer), after which such blocks come from the arenas and stay resident when freed; at
# 128 KiB they are mmap'ed and given back (~40 MB less resident after a first start that hashes 21 passwords at once).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    BROKER_HOST=0.0.0.0 \
    BROKER_DATA_DIR=/var/lib/sharp-eyes
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
COPY policies ./policies
COPY web ./web
# Lua scripts are read at run time (tsc does not copy them).
COPY src/store/redis/lua ./src/store/redis/lua
# The operator commands' pre-script (`npm run import`, `report`, ...): here it finds no compiler and runs dist/ as is.
COPY src/cli/build-if-stale.mjs ./src/cli/build-if-stale.mjs
RUN groupadd --system broker && useradd --system --gid broker --home /var/lib/sharp-eyes broker \
 && mkdir -p /var/lib/sharp-eyes && chown broker:broker /var/lib/sharp-eyes
USER broker
VOLUME ["/var/lib/sharp-eyes"]
EXPOSE 8080 8000 1935
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.BROKER_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--enable-source-maps", "dist/main.js"]
