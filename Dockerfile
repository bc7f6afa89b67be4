# syntax=docker/dockerfile:1
# skr: secure key release sidecar. Build: docker build -t skr .
# The entrypoint is fixed (pin it in confidential container policies):
#   ["/nodejs/bin/node", "/app/bin/skr.js"]
# Configuration comes from the reference sidecar's environment variables (SkrSideCarArgs,
# Port, LogLevel, LogFile, ServerType) or flags; see README.md.

FROM node:24-bookworm AS build
WORKDIR /src
# Dependencies first (cached layer); scripts are skipped so the addon builds explicitly below.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY binding.gyp ./
COPY native ./native
# Build against the image's own Node headers (no header download).
ENV npm_config_nodedir=/usr/local
RUN npm run build:native
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
RUN npm run build:ts && npm prune --omit=dev --no-audit --no-fund

FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY --from=build /src/build/Release/snp_guest.node ./build/Release/snp_guest.node
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/skr.js"]
