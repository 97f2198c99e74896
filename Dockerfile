# syntax=docker/dockerfile:1
# clinvqa server image. CPU (default):
#   docker build -t clinvqa .
#   docker run -p 8080:8080 -e CLINVQA_API_KEYS="clinician:<key>,admin:<key>" -v clinvqa-data:/var/lib/clinvqa clinvqa
# CUDA 12 (onnxruntime-node's CUDA provider is fetched by its installer at build time; the base
# image brings the CUDA 12 + cuDNN 9 runtime libraries it links against):
#   docker build -t clinvqa:cuda \
#     --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#     --build-arg ORT_INSTALL=cuda12 --build-arg EXECUTION_PROVIDERS=cuda,cpu .
#   docker run --gpus all -p 8080:8080 -e CLINVQA_API_KEYS=… clinvqa:cuda
# Without a usable GPU the CUDA image still serves, on CPU, and logs one line saying so.
ARG BASE_IMAGE=node:20-slim

# Node 20 itself always comes from the official image, so the CUDA variant runs the same Node.
FROM node:20-slim AS node

FROM ${BASE_IMAGE}
# skip = the CPU build bundled with onnxruntime-node; cuda12 = also install the CUDA provider.
ARG ORT_INSTALL=skip
ARG EXECUTION_PROVIDERS=cpu

COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && (id -u clinvqa >/dev/null 2>&1 || useradd --system --create-home --uid 10001 clinvqa) \
 && mkdir -p /var/lib/clinvqa && chown clinvqa /var/lib/clinvqa

WORKDIR /app
# Dependencies first, so code changes do not re-run the install. Production dependencies only:
# the server runs TypeScript through tsx (a dependency), no build step.
# onnxruntime-node's installer would fetch its CUDA provider on linux/x64: package.json denies it
# (allowScripts), the variable does the same for npm versions that predate allowScripts, and the
# CUDA build runs it on purpose.
COPY package.json package-lock.json ./
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev \
 && if [ "${ORT_INSTALL}" != skip ]; then node node_modules/onnxruntime-node/script/install.js --onnxruntime-node-install=${ORT_INSTALL}; fi \
 && npm cache clean --force

COPY tsconfig.json openapi.yaml ./
COPY assets ./assets
COPY src ./src
COPY models ./models

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    CLINVQA_DATA_DIR=/var/lib/clinvqa \
    CLINVQA_MODELS_DIR=/app/models \
    CLINVQA_EXECUTION_PROVIDERS=${EXECUTION_PROVIDERS}
VOLUME ["/var/lib/clinvqa"]
EXPOSE 8080
USER clinvqa
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node itself is PID 1 (exec form, no npm and no shell in between): `docker stop`'s SIGTERM reaches
# the server, which drains in-flight requests before exiting. npm would exit on SIGTERM without
# passing it on, and the container would stop with requests cut.
CMD ["node", "--import", "tsx", "src/main.ts"]
