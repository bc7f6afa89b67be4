# syntax=docker/dockerfile:1
# skr: secure key release sidecar, a drop-in for mcr.microsoft.com/aci/skr.
#
#   docker build -t skr .                  # default image: runs as uid 65532 (non-root)
#   docker build --target root -t skr:root .   # same files, runs as root like the reference
#
# Entrypoint to pin in confidential container policies (ccePolicy / Kata genpolicy):
#   ["/nodejs/bin/node", "/app/bin/skr.js"]
# /skr.sh and /bin/skr also exist (one Node script, there is no shell), so manifests that keep
# the reference's `command: ["/skr.sh"]` (its ACI templates) or `command: ["/bin/skr"]` (the AKS
# confidential-containers docs) still start skr; their policy then pins that command.
# Exec probes: ["/nodejs/bin/node", "/app/bin/skr.js", "healthcheck"].
# Configuration: the reference's SkrSideCarArgs, Port, LogFile, LogLevel, ServerType
# environment variables, its Go-style flags, or skr.sh's positional arguments. See
# deploy/README.md for the root/non-root choice and /dev/sev-guest.

# Base images are pinned by digest, not only by tag: the image's layers are measured into the
# confidential container's policy (HOST_DATA), so a base that changes silently under the same tag
# would change that measurement and stop every key release bound to it. The tag stays for
# readers; Docker pulls by the digest. Updating them: deploy/README.md "Base images".
# ---- build: compilers, dev dependencies, the addon and the bundle --------------------------
FROM node:24-bookworm@sha256:934240a162082fd8b8a2f90cd5114446443f1eba1c5378f6687167ca405e6584 AS build
WORKDIR /src
# Dependencies first, so this layer is cached until the lockfile changes. Scripts are off:
# the addon is built explicitly below, against this image's own Node.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY binding.gyp ./
COPY native ./native
# node:24 images ship the headers under /usr/local/include/node: no header download, and the
# addon matches the runtime's Node major (N-API would tolerate a mismatch; no reason to risk it).
ENV npm_config_nodedir=/usr/local
RUN npm run build:native
# skr and every JavaScript dependency bundled into dist/ (scripts/bundle.mjs): ES modules, one
# chunk per lazily loaded part, license notices and the few .proto files dependencies read at
# run time. The runtime gets no node_modules tree.
COPY tsconfig.json ./
COPY scripts/bundle.mjs ./scripts/bundle.mjs
COPY src ./src
RUN npm run build:js

# ---- app: distroless Node 24, no shell, no package manager, CA certificates included -------
FROM gcr.io/distroless/nodejs24-debian12:nonroot@sha256:14d42e2511532589a7c7e01a753667a74fcc96266e137e8125006b87b0c32d0a AS app
WORKDIR /app
ENV NODE_ENV=production
# Bound V8's heap growth and glibc's malloc arenas. The young generation grows to 64 MB under load
# with ~4 MB live; the old generation's collection threshold scales with its maximum (4 GB by
# default on a large host) and let RSS reach ~200-230 MB at 64 clients with ~30 MB live. 256 MB
# leaves ~8x that live set as headroom and held RSS under the same load at ~145 MB (~120 MB with
# skr's later changes and the setting below), with no
# measured throughput loss (bench/README.md). Only the process's options can set these.
# MALLOC_MMAP_THRESHOLD_ fixes glibc's mmap threshold at 32 KB: left dynamic, it rises after the
# first large free, and the large blocks freed after a release then stay resident in the arenas
# (~10 MB after the first release, measured with malloc_info; RSS after one release 98-103 MB,
# 92 MB with the fixed threshold, and after 160 more 106-112 against 99-101 MB).
ENV NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size=256" MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=32768
# The package's layout (src/package-root.ts): package.json ("type": "module", the version), the
# entry script, the bundle, skr's .proto files (read by @grpc/proto-loader) and the addon.
COPY package.json ./package.json
COPY bin ./bin
COPY proto ./proto
COPY --from=build /src/dist ./dist
COPY --from=build /src/build/Release/snp_guest.node ./build/Release/snp_guest.node
COPY --chmod=0755 deploy/image/skr.sh /skr.sh
COPY --chmod=0755 deploy/image/skr.sh /bin/skr

# ---- compile cache: V8 code for everything skr loads, made by the runtime's own node -------
# A container starts with an empty /tmp, so without this every start compiles skr and its
# dependencies again. Node keys the cache by its version, V8 flags and uid: fill it once per
# user the image runs as (65532, and 0 for the root target), with the runtime's NODE_OPTIONS
# (inherited from `app`), at the paths the runtime uses. Exec form: there is no shell here.
FROM app AS compile-cache
COPY deploy/image/warm-compile-cache.mjs /warm-compile-cache.mjs
ENV NODE_COMPILE_CACHE=/home/nonroot/compile-cache
USER 65532:65532
RUN ["/nodejs/bin/node", "/warm-compile-cache.mjs", "/app"]
USER 0:0
RUN ["/nodejs/bin/node", "/warm-compile-cache.mjs", "/app"]

# ---- runtime ---------------------------------------------------------------------------------
FROM app AS runtime
# Read-only and root-owned (--chown: a copy between stages keeps the source's owners, and the
# 65532 fill would stay 65532's, free to chmod it writable): part of the measured image layers like
# the code it caches. As 65532, skr's attempts to add entries at exit fail quietly (Node treats the
# cache as best effort); root ignores the mode (see docs/security.md).
COPY --from=compile-cache --chown=0:0 --chmod=0555 /home/nonroot/compile-cache /app/compile-cache
ENV NODE_COMPILE_CACHE=/app/compile-cache
# No EXPOSE: the API listens on loopback only and is reached from inside the pod.
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/skr.js"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s CMD ["/nodejs/bin/node", "/app/bin/skr.js", "healthcheck"]

# ---- root variant: where /dev/sev-guest (or configfs-tsm) is root-only in the guest --------
FROM runtime AS root
USER 0:0

# ---- default target: the non-root image ----------------------------------------------------
FROM runtime AS nonroot
USER 65532:65532
