# Switchyard container image: node:20 slim, the compiled proxy, production
# dependencies only, running as the unprivileged "node" user.
#   docker build -t switchyard .
#   docker run -p 8080:8080 -v $PWD/switchyard.yaml:/etc/switchyard/switchyard.yaml switchyard
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
# "prepare" would compile before the sources are here: build explicitly below.
RUN npm ci --ignore-scripts
COPY src ./src
COPY test ./test
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY bin ./bin
USER node
# The proxy listener (as the config says) and the admin listener.
EXPOSE 8080 9901
# SIGTERM drains: tunnels get 1001 close frames at drain.rate, requests finish
# within timeouts.drain. Give the container at least that long to stop.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/switchyard.js"]
CMD ["run", "-c", "/etc/switchyard/switchyard.yaml"]
